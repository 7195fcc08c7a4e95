#!/usr/bin/env bash
# Runs workload W3 (audio front-end) for avgrad and torchaudio back to back on this machine
# and prints one Markdown table of median milliseconds and the torchaudio/avgrad ratio.
# Usage: benchmarks/compare_audio.sh [build-dir] (default build/release; needs bench_audio built
# and Debian's python3-torchaudio).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/benchmarks/bench_audio" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_format=json >"$tmp/avgrad.json"
for t in 1 2; do "$py" benchmarks/torch/bench_audio.py --threads "$t" --repeats 5 --json >"$tmp/torch$t.json"; done
"$py" - "$tmp" <<'PY'
import json, sys, os
tmp = sys.argv[1]
ours = {}
for b in json.load(open(os.path.join(tmp, "avgrad.json")))["benchmarks"]:
    if b.get("aggregate_name") == "median":
        name, threads = b["run_name"].replace("BM_", "").split("/")[:2]
        ours[(name, int(threads))] = b["real_time"]
theirs = {}
for t in (1, 2):
    for r in json.load(open(os.path.join(tmp, f"torch{t}.json"))):
        theirs[(r["name"].split("/")[-1], r["threads"])] = r["ms"]
print("| workload | threads | avgrad ms | torchaudio ms | torchaudio / avgrad |")
print("|---|---:|---:|---:|---:|")
for key in sorted(ours):
    if key in theirs:
        print(f"| {key[0]} | {key[1]} | {ours[key]:.1f} | {theirs[key]:.1f} | {theirs[key] / ours[key]:.2f} |")
PY
