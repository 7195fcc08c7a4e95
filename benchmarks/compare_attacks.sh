#!/usr/bin/env bash
# Runs workload W4 (PGD-10 on bench-av-small) for avgrad and PyTorch on shared weights, then prints avgrad ms, PyTorch ms and their ratio.
# Usage: benchmarks/compare_attacks.sh [build-dir] (default build/release; needs bench_attacks built
# with AVGRAD_BUILD_BENCHMARKS and Debian's python3-torch). First both sides are checked to compute
# the same thing (bench_attacks.py --write-check, bench_attacks --check); a mismatch stops the run.
# Environment: REPEATS (PyTorch timed runs, default 20), AVGRAD_REPETITIONS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
py=/usr/bin/python3
bench="$build/benchmarks/bench_attacks"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# glibc keeps freed blocks instead of returning every large activation to the kernel (mmap/munmap
# and page faults on each pass); the suite's PyTorch side always runs this way.
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824

"$py" benchmarks/torch/bench_attacks.py --write-check "$tmp/check.safetensors"
"$bench" --check="$tmp/check.safetensors"
rm -f "$tmp/check.safetensors"

# the avgrad binary runs with the same allocator settings, so neither side is favoured by them
"$bench" --benchmark_repetitions="${AVGRAD_REPETITIONS:-5}" --benchmark_report_aggregates_only=true \
  --benchmark_format=json >"$tmp/avgrad.json"
"$py" benchmarks/torch/bench_attacks.py --threads 2 --repeats "${REPEATS:-20}" --json >"$tmp/torch.json"
"$py" - "$tmp" <<'PY'
import json, os, sys
tmp = sys.argv[1]
ours = {}
for b in json.load(open(os.path.join(tmp, "avgrad.json")))["benchmarks"]:
    if b.get("aggregate_name") == "median":
        name = b["run_name"].replace("BM_", "").split("/")[0]
        ours[name] = b["real_time"]
theirs = {r["name"].split("/")[-1]: r["ms"] for r in json.load(open(os.path.join(tmp, "torch.json")))}
print("| workload (batch 32, 2 threads) | avgrad ms | PyTorch ms | PyTorch / avgrad |")
print("|---|---:|---:|---:|")
for name in ("W4_Pgd10", "W4_ForwardBackward", "W4_Forward"):
    if name in ours and name in theirs:
        print(f"| {name} | {ours[name]:.1f} | {theirs[name]:.1f} | {theirs[name] / ours[name]:.2f} |")
PY
