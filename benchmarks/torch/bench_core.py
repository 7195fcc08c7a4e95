#!/usr/bin/python3
"""PyTorch side of bench_core: SGEMM 1024^3 (W1), conv2d/conv3d at bench-av-small's layer shapes, attention.

Run with Debian's python3 (torch 1.13; its BLAS is whatever libblas.so.3 points to, OpenBLAS when
libopenblas0-pthread is installed), on the CPU:

    /usr/bin/python3 benchmarks/torch/bench_core.py --threads 2 --json

Names and shapes match bench_core's benchmarks (without the BM_ prefix), so benchmarks/compare.py can
pair the rows:

  Sgemm/1024                               C = A B, float32 1024 x 1024
  Conv2dForward/N:.../Co:...               F.conv2d 3x3 padding 1, no bias, under no_grad
  Conv2dForwardBackward/...                forward, then backward to the input and the weight
  Conv3dForward/..., Conv3dForwardBackward/...  the same with F.conv3d 3x3x3
  AttentionForwardBackward/B:32/H:8/L:128/E:64  softmax(Q K^T / sqrt(E)) V and its backward to Q, K, V
                                           (torch 1.13 has no fused attention; this is what its users write)

Each row: median of --repeats timed runs after --warmup untimed ones, in milliseconds, and GFLOP/s with
the same FLOP counts as bench_core. --check DIR writes, per convolution shape, a float64 reference of
a smaller batch for `bench_core --core_check=DIR` (see there).
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests", "support"))
from safetensors_writer import write_safetensors  # noqa: E402
from timing import emit, timed  # noqa: E402

CONV2D = [(32, 1, (128, 100), 32), (32, 32, (64, 50), 64), (32, 64, (32, 25), 128), (32, 128, (16, 12), 128)]
CONV3D = [(32, 3, (8, 32, 32), 32), (32, 32, (8, 16, 16), 64), (32, 64, (4, 8, 8), 128)]
ATTENTION = (32, 8, 128, 64)


def conv_name(kind, n, c, spatial, co):
    axes = ("H", "W") if len(spatial) == 2 else ("T", "H", "W")
    return f"{kind}/N:{n}/C:{c}/" + "/".join(f"{a}:{v}" for a, v in zip(axes, spatial)) + f"/Co:{co}"


def conv_gflop(n, c, spatial, co):
    return 2.0 * n * co * math.prod(spatial) * c * 3 ** len(spatial) * 1e-9


def conv_fn(dims):
    return F.conv2d if dims == 2 else F.conv3d


def attention(q, k, v):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return scores.softmax(-1) @ v


def write_check(directory):
    """Per conv shape, batch 2, float64: input, weight, output, dL/dy and the two gradients; and attention."""
    os.makedirs(directory, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    for dims, cases in ((2, CONV2D), (3, CONV3D)):
        for n, c, spatial, co in cases:
            x = torch.randn((2, c) + spatial, generator=g, dtype=torch.float64, requires_grad=True)
            w = (0.05 * torch.randn((co, c) + (3,) * dims, generator=g, dtype=torch.float64)).requires_grad_()
            y = conv_fn(dims)(x, w, padding=1)
            seed = torch.randn(y.shape, generator=g, dtype=torch.float64)
            gx, gw = torch.autograd.grad(y, (x, w), seed)
            name = conv_name(f"Conv{dims}d", n, c, spatial, co).replace("/", "_").replace(":", "")
            write_safetensors(os.path.join(directory, name + ".safetensors"),
                              {"x": x.detach(), "w": w.detach(), "y": y.detach(), "seed": seed, "gx": gx, "gw": gw},
                              {"source": "bench_core.py", "torch": torch.__version__})
    b, h, l, e = ATTENTION
    q, k, v = (torch.randn((2, h, l, e), generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = attention(q, k, v)
    seed = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gq, gk, gv = torch.autograd.grad(out, (q, k, v), seed)
    write_safetensors(os.path.join(directory, "attention.safetensors"),
                      {"q": q.detach(), "k": k.detach(), "v": v.detach(), "out": out.detach(), "seed": seed,
                       "gq": gq, "gk": gk, "gv": gv}, {"source": "bench_core.py", "torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per benchmark (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    ap.add_argument("--check", metavar="DIR", help="write float64 references into DIR, then exit")
    args = ap.parse_args()
    if args.check:
        write_check(args.check)
        return
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(1)
    results = []

    def record(name, ms, gflop):
        results.append({"name": f"torch/{name}", "ms": ms, "GFLOP/s": gflop / (ms * 1e-3), "threads": args.threads,
                        "repeats": args.repeats})

    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    c = torch.empty(1024, 1024)
    record("Sgemm/1024", timed(lambda: torch.matmul(a, b, out=c), args.warmup, args.repeats), 2.0 * 1024 ** 3 * 1e-9)

    for dims, cases in ((2, CONV2D), (3, CONV3D)):
        conv = conv_fn(dims)
        for n, cin, spatial, co in cases:
            x = torch.randn((n, cin) + spatial, generator=g)
            w = 0.05 * torch.randn((co, cin) + (3,) * dims, generator=g)
            seed = torch.randn((n, co) + spatial, generator=g)
            gflop = conv_gflop(n, cin, spatial, co)

            def forward():
                with torch.no_grad():
                    conv(x, w, padding=1)

            xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()

            def forward_backward():
                torch.autograd.grad(conv(xg, wg, padding=1), (xg, wg), seed)

            record(conv_name(f"Conv{dims}dForward", n, cin, spatial, co), timed(forward, args.warmup, args.repeats),
                   gflop)
            record(conv_name(f"Conv{dims}dForwardBackward", n, cin, spatial, co),
                   timed(forward_backward, args.warmup, args.repeats), 3 * gflop)

    bsz, h, l, e = ATTENTION
    q, k, v = (torch.randn(bsz, h, l, e, generator=g).requires_grad_() for _ in range(3))
    seed = torch.randn(bsz, h, l, e, generator=g)
    record(f"AttentionForwardBackward/B:{bsz}/H:{h}/L:{l}/E:{e}",
           timed(lambda: torch.autograd.grad(attention(q, k, v), (q, k, v), seed), args.warmup, args.repeats),
           6 * 2.0 * bsz * h * l * l * e * 1e-9)

    emit(results, args.json, f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} runs",
         [("benchmark", lambda r: r["name"]), ("ms", lambda r: f"{r['ms']:.2f}"), ("GFLOP/s", lambda r: f"{r['GFLOP/s']:.1f}")])

if __name__ == "__main__":
    main()
