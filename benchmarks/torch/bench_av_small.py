#!/usr/bin/python3
"""PyTorch side of the bench-av-small workloads: W2 (a training step) and W4 (PGD-10 joint Linf, eval mode), batch 32.

Run with Debian's python3 (torch 1.13), on the CPU, with glibc's allocator told to keep freed memory
(otherwise every large activation is an mmap/munmap pair and page faults dominate; the whole suite's
PyTorch side runs this way, and benchmarks/compare.py sets it):

    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 \\
        /usr/bin/python3 benchmarks/torch/bench_av_small.py --threads 2 --repeats 20 --json
    /usr/bin/python3 benchmarks/torch/bench_av_small.py --write-check /tmp/w4_check.safetensors

The model (avgrad's models::bench_av_small, same state-dict names): audio (32, 1, 128, 100) -> four
conv3x3 (no bias) + BatchNorm2d + ReLU + max_pool2d(2) blocks (32, 64, 128, 128) -> mean over frequency
-> fusion.audio_proj Linear 128 -> 10 -> mean over time; video (32, 3, 8, 32, 32) -> three conv3d 3x3x3
(no bias) + BatchNorm3d + ReLU + max_pool3d blocks (32, 64, 128), windows (1,2,2), (2,2,2), (2,2,2) ->
spatial mean -> fusion.video_proj Linear 128 -> 10 without bias -> mean over time; logits = the sum.
float32, eval mode, every parameter requires_grad False (input gradients only).

What is timed (wall clock, median of --repeats runs after --warmup untimed runs, milliseconds per batch):

  W4_Pgd10          the attack as avgrad's Pgd runs it (random_start false): from delta = 0, 10 times
                    g = d/d(x+delta) sum CE(model(x + delta), y); delta <- clamp(delta + step sign(g), -eps, eps);
                    delta <- clamp(x + delta, lo, hi) - x (per modality: audio eps 0.1 step 0.01 unbounded, video
                    eps 8/255 step 1/255 in [0, 1]); then one forward without gradient at x + delta.
  W4_ForwardBackward  one such gradient: forward, CE, backward to the two inputs.
  W4_Forward          forward + CE under torch.no_grad().
  W2_TrainStep        one training step in train mode (batch-statistics BN): zero_grad, forward, mean CE,
                      backward to every parameter, SGD(lr 0.01, momentum 0.9) step.

--write-check FILE writes a safetensors file (F64; labels I64) computed in float64 with the same weights and
inputs: the weights (state.<name>), inputs and labels, the logits, the input gradient at delta = 0
(grad.audio, grad.video) and delta after one PGD step (delta1.audio, delta1.video); for W2, from the same weights,
the loss of one training step (w2.loss), every parameter's gradient (w2.grad.<name>) and the state after two steps
(w2.state.<name>: parameters, running statistics, so momentum is exercised). `bench_av_small --check=FILE` loads
it into avgrad's model (double and float) and compares.

--only NAME (repeatable) runs only the named benchmarks; --peak-rss adds each process's peak resident memory
(ru_maxrss, MiB) to its JSON rows. Output: a Markdown table, or with --json a list of {"name": "torch/W4_Pgd10", "ms": ..., "threads": ...,
"repeats": ...} on stdout.
"""
import argparse
import copy
import os
import resource
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests", "support"))
from safetensors_writer import write_safetensors  # noqa: E402
from timing import emit, timed  # noqa: E402

BATCH, CLASSES = 32, 10
AUDIO_SHAPE, VIDEO_SHAPE = (BATCH, 1, 128, 100), (BATCH, 3, 8, 32, 32)
VIDEO_POOLS = [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
# (eps, step, lo, hi) per modality
THREAT = {"audio": (0.1, 0.01, -float("inf"), float("inf")), "video": (8 / 255, 1 / 255, 0.0, 1.0)}


class ConvBnAct(nn.Module):
    def __init__(self, conv, bn):
        super().__init__()
        self.conv, self.bn = conv, bn

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Encoder(nn.Module):
    def __init__(self, dims, cin, channels):
        super().__init__()
        conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        blocks = []
        for c in channels:
            blocks.append(ConvBnAct(conv(cin, c, 3, padding=1, bias=False), bn(c)))
            cin = c
        self.blocks = nn.Sequential(*blocks)
        self.dims = dims

    def forward(self, x):
        h = x
        for i, b in enumerate(self.blocks):
            h = F.max_pool2d(b(h), 2) if self.dims == 2 else F.max_pool3d(b(h), VIDEO_POOLS[i])
        return (h.mean(3) if self.dims == 2 else h.mean((3, 4))).transpose(1, 2)  # (B, T', C)


class LateFusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.audio_proj = nn.Linear(128, CLASSES)
        self.video_proj = nn.Linear(128, CLASSES, bias=False)

    def forward(self, za, zv):
        return self.audio_proj(za).mean(1) + self.video_proj(zv).mean(1)


class BenchAvSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.audio = Encoder(2, 1, (32, 64, 128, 128))
        self.video = Encoder(3, 3, (32, 64, 128))
        self.fusion = LateFusion()

    def forward(self, xa, xv):
        return self.fusion(self.audio(xa), self.video(xv))


def make_model():
    torch.manual_seed(4)
    model = BenchAvSmall()
    with torch.no_grad():  # random BN statistics and affines: eval-mode BN is not the identity
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm3d)):
                m.weight.copy_(1 + 0.1 * torch.randn_like(m.weight))
                m.bias.copy_(0.1 * torch.randn_like(m.bias))
                m.running_mean.copy_(0.1 * torch.randn_like(m.running_mean))
                m.running_var.copy_(0.5 + torch.rand_like(m.running_var))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def make_batch():
    g = torch.Generator().manual_seed(5)
    xa = torch.randn(AUDIO_SHAPE, generator=g)
    xv = torch.rand(VIDEO_SHAPE, generator=g)
    y = torch.arange(BATCH, dtype=torch.int64) * 7 % CLASSES
    return xa, xv, y


def gradient(model, xa, xv, y, delta):
    adv = [(xa + delta[0]).detach().requires_grad_(True), (xv + delta[1]).detach().requires_grad_(True)]
    logits = model(*adv)
    loss = F.cross_entropy(logits, y, reduction="none").sum()
    return logits.detach(), torch.autograd.grad(loss, adv)


def pgd(model, xa, xv, y, steps=10):
    x = [xa, xv]
    delta = [torch.zeros_like(xa), torch.zeros_like(xv)]
    for _ in range(steps):
        _, g = gradient(model, xa, xv, y, delta)
        with torch.no_grad():
            for i, m in enumerate(("audio", "video")):
                eps, step, lo, hi = THREAT[m]
                d = (delta[i] + step * g[i].sign()).clamp_(-eps, eps)
                delta[i] = (x[i] + d).clamp_(lo, hi) - x[i]
    with torch.no_grad():
        logits = model(xa + delta[0], xv + delta[1])
    return delta, logits


def train_setup(model):
    """A trainable copy of the model in train mode and its SGD optimizer (W2's)."""
    model = copy.deepcopy(model)
    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def train_step(model, opt, xa, xv, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(xa, xv), y)
    loss.backward()
    opt.step()
    return loss.detach()


def write_check(path, model, xa, xv, y):
    """The reference in float64, where no max-pool window is a near tie that rounding decides (in float32 a
    batch of this size has a few, and the two frameworks' convolutions round differently), so avgrad's
    double model must agree to 1e-9 with every sign of the first step; its float model is compared
    against the same numbers with float32 tolerances."""
    model = copy.deepcopy(model).double()
    xa, xv = xa.double(), xv.double()
    logits, g = gradient(model, xa, xv, y, [torch.zeros_like(xa), torch.zeros_like(xv)])
    delta, _ = pgd(model, xa, xv, y, steps=1)
    # avgrad's num_batches_tracked buffer is a floating tensor; only the labels stay I64
    out = {f"state.{n}": t.double() for n, t in model.state_dict().items()}
    out.update({"audio": xa, "video": xv, "labels": y, "logits": logits, "grad.audio": g[0], "grad.video": g[1],
                "delta1.audio": delta[0], "delta1.video": delta[1]})
    trained, opt = train_setup(model)
    out["w2.loss"] = train_step(trained, opt, xa, xv, y)
    out.update({f"w2.grad.{n}": p.grad.detach().clone() for n, p in trained.named_parameters()})
    train_step(trained, opt, xa, xv, y)
    out.update({f"w2.state.{n}": t.detach().double() for n, t in trained.state_dict().items()})
    write_safetensors(path, out, {"source": "bench_av_small.py", "torch": torch.__version__})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per benchmark (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs before timing")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    ap.add_argument("--only", action="append", metavar="NAME", help="run only this benchmark (e.g. W4_Pgd10; repeatable)")
    ap.add_argument("--write-check", metavar="FILE", help="write weights, inputs and expected outputs, then exit")
    ap.add_argument("--peak-rss", action="store_true", help="report the process's peak resident memory in each row")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    model = make_model()
    xa, xv, y = make_batch()
    if args.write_check:
        write_check(args.write_check, model, xa, xv, y)
        return

    results = []

    def record(name, ms):
        row = {"name": f"torch/{name}", "ms": ms, "threads": args.threads, "repeats": args.repeats}
        if args.peak_rss:  # Linux reports ru_maxrss in KiB
            row["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(row)

    zero = [torch.zeros_like(xa), torch.zeros_like(xv)]

    def forward():
        with torch.no_grad():
            F.cross_entropy(model(xa, xv), y, reduction="none").sum()

    trained, opt = train_setup(model)
    benchmarks = {"W4_Pgd10": lambda: pgd(model, xa, xv, y), "W4_ForwardBackward": lambda: gradient(model, xa, xv, y, zero),
                  "W4_Forward": forward, "W2_TrainStep": lambda: train_step(trained, opt, xa, xv, y)}
    for name, fn in benchmarks.items():
        if not args.only or name in args.only:
            record(name, timed(fn, args.warmup, args.repeats))

    emit(results, args.json, f"torch {torch.__version__}, {args.threads} threads, batch {BATCH}, median of {args.repeats} runs",
         [("benchmark", lambda r: r["name"]), ("ms", lambda r: f"{r['ms']:.1f}"),
          ("examples/s", lambda r: f"{BATCH / r['ms'] * 1e3:.1f}")])

if __name__ == "__main__":
    main()
