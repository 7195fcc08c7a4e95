#!/usr/bin/python3
"""PyTorch side of bench_cuda_core on the same GPU (eager mode, CUDA events):

    python3 benchmarks/torch/bench_cuda_core.py [--json]

  Sgemm/N                    torch.mm, float32, TF32 off (torch.backends.cuda.matmul.allow_tf32 = False)
  GemmBf16/N, GemmFp16/N     torch.mm of float32 tensors under torch.autocast (bfloat16, float16)
  GemmExBf16Bare/N           torch.mm of tensors already in bfloat16
  AddBroadcast/16384         (16384, 1024) + (1024,) under no_grad
  SumRows/R/C                x.sum(1) under no_grad
  LogSoftmaxFwdBwd/R/C       F.log_softmax(x, 1).backward(seed)
  PgdStepLinf/64             delta = clamp(x + clamp(delta + a*sign(g), -eps, eps), 0, 1) - x, what an
                             eager PyTorch attack loop writes (four kernels or more)

Each row: the median of --repeats event-timed runs after --warmup untimed ones, in microseconds.
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from timing import emit  # noqa: E402


def cuda_timed(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_cuda_core.py: no CUDA device visible to PyTorch")
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = torch.device("cuda")
    rows = []

    def add(name, fn, per_call=None, unit="GB/s"):
        us = cuda_timed(fn, args.warmup, args.repeats)
        row = {"name": name, "us": us}
        if per_call:
            row[unit] = per_call / (us * 1e-6) / 1e9
        rows.append(row)

    with torch.no_grad():
        for n in (1024, 4096):
            a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
            add(f"Sgemm/{n}", lambda: torch.mm(a, b), 2.0 * n**3, "GFLOP/s")
            for name, dt in (("GemmBf16", torch.bfloat16), ("GemmFp16", torch.float16)):

                def lowered(dt=dt):
                    with torch.autocast("cuda", dtype=dt):
                        return torch.mm(a, b)

                add(f"{name}/{n}", lowered, 2.0 * n**3, "GFLOP/s")
            ab, bb = a.to(torch.bfloat16), b.to(torch.bfloat16)
            add(f"GemmExBf16Bare/{n}", lambda: torch.mm(ab, bb), 2.0 * n**3, "GFLOP/s")
        x, bias = torch.randn(1 << 14, 1024, device=dev), torch.randn(1024, device=dev)
        add("AddBroadcast/16384", lambda: x + bias, 2.0 * x.numel() * 4)
        for r, c in ((1 << 14, 1024), (64, 1 << 18)):
            s = torch.randn(r, c, device=dev)
            add(f"SumRows/{r}/{c}", lambda: s.sum(1), 1.0 * s.numel() * 4)
    for r, c in ((4096, 10), (4096, 527)):
        z = torch.randn(r, c, device=dev, requires_grad=True)
        seed = torch.randn(r, c, device=dev)

        def step():
            F.log_softmax(z, 1).backward(seed)
            z.grad = None

        add(f"LogSoftmaxFwdBwd/{r}/{c}", step, 5.0 * r * c * 4)
    with torch.no_grad():
        n = 3 * 16 * 112 * 112 // 4
        xi, g = torch.rand(64, n, device=dev), torch.randn(64, n, device=dev)
        state = {"delta": torch.zeros(64, n, device=dev)}
        eps, alpha = 8 / 255, 2 / 255

        def pgd():
            moved = torch.clamp(state["delta"] + alpha * g.sign(), -eps, eps)
            state["delta"] = torch.clamp(xi + moved, 0, 1) - xi

        add("PgdStepLinf/64", pgd, 4.0 * xi.numel() * 4)
    header = f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}"
    emit(rows, args.json, header,
         [("workload", lambda r: r["name"]), ("µs", lambda r: f"{r['us']:.1f}"),
          ("rate", lambda r: next((f"{r[k]:.0f} {k}" for k in ("GFLOP/s", "GB/s") if k in r), ""))])


if __name__ == "__main__":
    main()
