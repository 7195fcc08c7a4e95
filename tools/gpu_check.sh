#!/usr/bin/env bash
# The CUDA side of avgrad on a machine with a GPU, from an existing release build: every CUDA
# test binary, then each again under compute-sanitizer (memcheck, and racecheck with --race)
# with the allocator's cache off, then the GPU benchmarks beside their PyTorch twins. Writes
# few files, so that a remote run can return them all:
#   device.txt     the GPU, driver and toolkit
#   tests.log      every CUDA test's output; a FAILED line per failing test
#   sanitizer.log  compute-sanitizer's reports ("ERROR SUMMARY: 0 errors" per binary when clean)
#   bench.json     Google Benchmark's JSON of bench_cuda_core and bench_cuda_workloads
#   torch.json     the PyTorch twins' rows (benchmarks/torch/bench_cuda_*.py --json)
#   summary.md     pass/fail per binary and sanitizer run
# Usage: tools/gpu_check.sh [--build DIR] [--out DIR] [--no-sanitizer] [--race] [--no-bench]
# A build made elsewhere can be carried: the test binaries need the CUDA runtime, cuBLAS and
# cuDNN; the benchmark binaries also Google Benchmark's shared library, which can travel in
# DIR/carried-libs (cp /lib/x86_64-linux-gnu/libbenchmark.so.1* build/release/carried-libs/).
# Exit status: 0 when every test and sanitizer run passed.
set -uo pipefail
cd "$(dirname "$0")/.."

build=build/release out=gpu-check sanitize=1 race=0 bench=1
while (($#)); do
  case $1 in
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    --no-sanitizer) sanitize=0 ;;
    --race) race=1 ;;
    --no-bench) bench=0 ;;
    *) echo "gpu_check.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
  shift
done
[[ -d $build/tests ]] || { echo "gpu_check.sh: no build at '$build' (cmake --preset release first)" >&2; exit 2; }
mkdir -p "$out"
: > "$out/tests.log"; : > "$out/sanitizer.log"

# Run-time libraries a carried build may not find there: anything copied into
# $build/carried-libs (libbenchmark for the benchmark binaries), and cuDNN from PyTorch's
# wheel when the system has none. Appended: the machine's own libraries win.
libs=()
[[ -d $build/carried-libs ]] && libs+=("$(cd "$build/carried-libs" && pwd)")
if ! ldconfig -p 2> /dev/null | grep -q 'libcudnn\.so\.9'; then
  cudnn=$(python3 -c 'import os, nvidia.cudnn as c; print(os.path.join(list(c.__path__)[0], "lib"))' 2> /dev/null) &&
    libs+=("$cudnn")
fi
if ((${#libs[@]})); then
  extra=$(IFS=:; echo "${libs[*]}")
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$extra"
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
  command -v nvcc > /dev/null && nvcc --version | tail -1
} > "$out/device.txt"
gpu=1
nvidia-smi -L > /dev/null 2>&1 || { gpu=0; echo "gpu_check.sh: no GPU visible; the CUDA tests will skip" >&2; }
echo "| run | result |" > "$out/summary.md"
echo "| --- | --- |" >> "$out/summary.md"

status=0
binaries=()
for t in "$build"/tests/cuda_test_*; do
  [[ -f $t && -x $t ]] && binaries+=("$t")
done
((${#binaries[@]})) || { echo "gpu_check.sh: no CUDA test binaries under $build/tests" >&2; exit 2; }

record() {  # name, exit status
  if (($2 != 0)); then
    echo "| $1 | FAIL ($2) |" >> "$out/summary.md"
    status=1
  elif ((gpu)); then
    echo "| $1 | pass |" >> "$out/summary.md"
  else
    echo "| $1 | skipped (no GPU) |" >> "$out/summary.md"
  fi
}

for t in "${binaries[@]}"; do
  name=$(basename "$t")
  echo "=== $name" >> "$out/tests.log"
  "$t" --gtest_brief=1 >> "$out/tests.log" 2>&1
  record "$name" $?
done

if ((sanitize)); then
  tools=(memcheck)
  ((race)) && tools+=(racecheck)
  if command -v compute-sanitizer > /dev/null; then
    for tool in "${tools[@]}"; do
      for t in "${binaries[@]}"; do
        name=$(basename "$t")
        echo "=== $tool $name" >> "$out/sanitizer.log"
        AVGRAD_CUDA_NO_CACHING=1 compute-sanitizer --tool "$tool" --error-exitcode 1 "$t" --gtest_brief=1 \
          >> "$out/sanitizer.log" 2>&1
        record "$tool $name" $?
      done
    done
  else
    echo "compute-sanitizer not found" >> "$out/sanitizer.log"
    echo "| compute-sanitizer | not found |" >> "$out/summary.md"
  fi
fi

if ((bench)); then
  files=()
  for b in bench_cuda_core bench_cuda_workloads; do
    [[ -x $build/benchmarks/$b ]] || continue
    "$build/benchmarks/$b" --benchmark_format=json --benchmark_out="$out/$b.json" > /dev/null 2>> "$out/tests.log"
    record "$b" $?
    files+=("$out/$b.json")
  done
  # one file back: the two reports as one JSON list
  ((${#files[@]})) && python3 -c 'import json,sys; json.dump([json.load(open(f)) for f in sys.argv[2:]], open(sys.argv[1], "w"))' \
    "$out/bench.json" "${files[@]}" && rm -f "${files[@]}"
  py=/usr/bin/python3
  [[ -x $py ]] || py=python3
  {
    echo "["
    "$py" benchmarks/torch/bench_cuda_core.py --json
    echo ","
    "$py" benchmarks/torch/bench_cuda_workloads.py --json
    echo "]"
  } > "$out/torch.json" 2>> "$out/tests.log"
  record "PyTorch twins" $?
fi

cat "$out/summary.md"
exit $status
