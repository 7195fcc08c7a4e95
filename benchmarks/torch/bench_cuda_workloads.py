#!/usr/bin/python3
"""PyTorch side of bench_cuda_workloads on the same GPU (eager mode, CUDA events):

    python3 benchmarks/torch/bench_cuda_workloads.py [--json] [--cudnn-benchmark]

  W2_TrainStep/B          bench-av-small training step (train mode, SGD lr 0.01 momentum 0.9), batch B
  W4_Pgd10/B              PGD-10 joint Linf from delta = 0, eval mode, input gradients only, batch B
  W4_ForwardBackward/B    one gradient of that attack: forward, CE, backward to the two inputs
  W5_Knn                  exact kNN, k = 10, N = 20000, D = 1024: torch.cdist blockwise + topk (4096 rows a block)
  W3_Fbank/0|1            torchaudio.compliance.kaldi.fbank of 16 clips x 10 s at 16 kHz on the GPU, one clip a
                          call (it takes one waveform), forward (0) or forward + backward of the sum (1);
                          the same call as bench_audio.py

B = 32 and 256. The model, attack and step are those of bench_av_small.py (imported from it). TF32 is off
(torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False), as avgrad's default.
Each row: the median of --repeats event-timed runs after --warmup untimed ones, in milliseconds.
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import bench_audio as w3  # noqa: E402
import bench_av_small as av  # noqa: E402
from bench_cuda_core import cuda_timed  # noqa: E402  (microseconds)
from timing import emit  # noqa: E402


def batch(b, dev):
    g = torch.Generator().manual_seed(5)
    xa = torch.randn((b, 1, 128, 100), generator=g).to(dev)
    xv = torch.rand((b, 3, 8, 32, 32), generator=g).to(dev)
    y = (torch.arange(b, dtype=torch.int64) * 7 % av.CLASSES).to(dev)
    return xa, xv, y


def knn(z, k=10, block=4096):
    out = []
    for q0 in range(0, z.shape[0], block):
        d = torch.cdist(z[q0:q0 + block], z)
        out.append(torch.topk(d, k, dim=1, largest=False).indices)
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_cuda_workloads.py: no CUDA device visible to PyTorch")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    dev = torch.device("cuda")
    rows = []

    def add(name, fn, items):
        ms = cuda_timed(fn, args.warmup, args.repeats) / 1e3
        rows.append({"name": name, "ms": ms, "items/s": items / (ms * 1e-3)})

    for b in (32, 256):
        model = av.make_model().to(dev)
        xa, xv, y = batch(b, dev)
        add(f"W4_Pgd10/{b}", lambda: av.pgd(model, xa, xv, y), b)
        zero = [torch.zeros_like(xa), torch.zeros_like(xv)]
        add(f"W4_ForwardBackward/{b}", lambda: av.gradient(model, xa, xv, y, zero), b)
        trainable, opt = av.train_setup(model)
        add(f"W2_TrainStep/{b}", lambda: av.train_step(trainable, opt, xa, xv, y), b)
    with torch.no_grad():
        z = torch.randn(20000, 1024, device=dev)
        add("W5_Knn", lambda: knn(z), 20000)
    wave = w3.make_clips().to(dev)
    with torch.no_grad():
        add("W3_Fbank/0", lambda: w3.fbank_all(wave), w3.CLIPS)
    wave_grad = wave.clone().requires_grad_()

    def fbank_backward():
        sum(f.sum() for f in w3.fbank_all(wave_grad)).backward()
        wave_grad.grad = None

    add("W3_Fbank/1", fbank_backward, w3.CLIPS)
    header = f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}"
    emit(rows, args.json, header,
         [("workload", lambda r: r["name"]), ("ms", lambda r: f"{r['ms']:.2f}"),
          ("examples/s", lambda r: f"{r['items/s']:.0f}")])


if __name__ == "__main__":
    main()
