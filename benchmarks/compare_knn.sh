#!/usr/bin/env bash
# Runs workload W5 (exact kNN, k = 10, N = 20000, D = 1024, 2 threads) for avgrad and PyTorch back to back on this
# machine, after checking on a shared 2000-point set that both find the same neighbours (up to near-ties).
# Usage: benchmarks/compare_knn.sh [build-dir] (default build/release; needs bench_knn built and Debian's torch).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" benchmarks/torch/bench_knn.py --write-check "$tmp"
"$build/benchmarks/bench_knn" --knn_check="$tmp"
"$build/benchmarks/bench_knn" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_format=json >"$tmp/avgrad.json"
"$py" benchmarks/torch/bench_knn.py --threads 2 --repeats 5 --json >"$tmp/torch.json"
"$py" - "$tmp" <<'PY'
import json, sys, os
tmp = sys.argv[1]
ours = gflops = None
for b in json.load(open(os.path.join(tmp, "avgrad.json")))["benchmarks"]:
    if b.get("aggregate_name") == "median":
        ours, gflops = b["real_time"], b["GFLOP/s"]
theirs = json.load(open(os.path.join(tmp, "torch.json")))[0]["s"]
print("| workload | threads | avgrad s | avgrad GEMM GFLOP/s | torch s | avgrad / torch |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| W5_Knn | 2 | {ours:.3f} | {gflops:.0f} | {theirs:.3f} | {ours / theirs:.2f} |")
PY
