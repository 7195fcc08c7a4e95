#!/usr/bin/python3
"""PyTorch side of benchmark workload W5: exact kNN, k = 10, over N = 20000 float32 latents of D = 1024.

Run with Debian's python3 (torch 1.13), on the CPU:

    /usr/bin/python3 benchmarks/torch/bench_knn.py --threads 2 --repeats 5 --json
    /usr/bin/python3 benchmarks/torch/bench_knn.py --write-check DIR   # agreement set for bench_knn --knn_check=DIR

What is timed (wall clock, median over --repeats runs after one untimed warm-up, seconds):
    d = torch.cdist(x, x)            (x = queries = base, (N, D); cdist's matrix-product path for large inputs)
    d.topk(k + 1, largest=False)     then the first column (the point itself, at distance 0) is dropped.
Input: torch.randn with seed 0.

--write-check DIR writes DIR/x.npy (2000 x 1024 float32, numpy seed 1) and DIR/torch_idx.npy (2000 x 10 int64,
the neighbours from the same cdist + topk recipe, self removed by index) and times nothing.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

N, D, K = 20000, 1024, 10


def knn(x, k):
    d = torch.cdist(x, x)
    # k + 1 and then drop the point itself: by index, not by position, since a duplicate could tie with it.
    idx = d.topk(k + 1, dim=1, largest=False, sorted=True).indices
    self_idx = torch.arange(x.shape[0]).unsqueeze(1)
    keep = idx != self_idx
    out = torch.empty(x.shape[0], k, dtype=torch.int64)
    for i in range(x.shape[0]):  # only used on the small check set
        out[i] = idx[i][keep[i]][:k]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-check", metavar="DIR")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    if a.write_check:
        x = np.random.default_rng(1).standard_normal((2000, D)).astype(np.float32)
        np.save(os.path.join(a.write_check, "x.npy"), x)
        np.save(os.path.join(a.write_check, "torch_idx.npy"), knn(torch.from_numpy(x), K).numpy())
        return

    torch.manual_seed(0)
    x = torch.randn(N, D)

    def run():
        d = torch.cdist(x, x)
        return d.topk(K + 1, dim=1, largest=False, sorted=True)

    with torch.no_grad():
        run()  # warm-up
        times = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    if a.json:
        print(json.dumps([{"name": "torch/W5_Knn", "s": s, "threads": a.threads, "repeats": a.repeats}]))
    else:
        print(f"| workload | threads | torch s |\n|---|---:|---:|\n| W5_Knn | {a.threads} | {s:.3f} |")


if __name__ == "__main__":
    main()
