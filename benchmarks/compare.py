#!/usr/bin/python3
"""avgrad against PyTorch on the reference workloads, side by side in one run.

    /usr/bin/python3 benchmarks/compare.py [--build build/release] [--repeats 20] [--output FILE] [--update-docs]

Needs the release build's benchmarks (`cmake --build --preset release`) and Debian's python3-torch and
python3-torchaudio with OpenBLAS (`apt-get install python3-torch python3-torchaudio libopenblas0-pthread`).

1. Checks that both sides compute the same thing on shared weights and inputs: every timed conv and
   attention shape (bench_core --core_check), bench-av-small's W2 step and W4 attack (bench_av_small
   --check), and the kNN (bench_knn --knn_check). A mismatch stops the run.
2. Times every workload on both sides with 2 threads: each row is the median of --repeats runs after a
   warm-up (Google Benchmark repetitions of one iteration on avgrad's side; perf_counter runs on
   PyTorch's). Both sides run with glibc's allocator told to keep freed memory, since otherwise PyTorch's
   timings are dominated by page faults.
3. Measures the peak resident memory of a W2 and of a W4 process on each side (getrusage of the child).
4. Prints a Markdown table (workload, avgrad, PyTorch, ratio, target) with the machine, versions and
   measured roofline above it; --output writes it to a file and --update-docs replaces the generated
   part of docs/PERFORMANCE.md.
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
# glibc keeps freed blocks instead of returning every large activation to the kernel
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296",
             "MALLOC_TOP_PAD_": "1073741824"}
THREADS = 2
BEGIN, END = "<!-- compare.py: begin -->", "<!-- compare.py: end -->"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def child_env():
    """The environment both sides run in: the thread count and the allocator settings."""
    return dict(os.environ, OMP_NUM_THREADS=str(THREADS), **ALLOCATOR)


def run(cmd):
    """Runs cmd with the shared environment; returns stdout, or exits naming the failing command."""
    p = subprocess.run(cmd, cwd=ROOT, env=child_env(), text=True, stdout=subprocess.PIPE)
    if p.returncode != 0:
        sys.exit(f"compare.py: `{' '.join(cmd)}` failed with exit status {p.returncode}")
    return p.stdout


def peak_rss_mib(cmd):
    """Peak resident memory (MiB) of the process running cmd."""
    p = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"compare.py: `{' '.join(cmd)}` failed ({status})")
    return usage.ru_maxrss / 1024  # Linux: KiB


def gbench(binary, flt, repeats, one_iteration=True):
    """Median real time (ms) and counters per benchmark of a Google Benchmark binary."""
    cmd = [binary, f"--benchmark_filter={flt}", f"--benchmark_repetitions={repeats}",
           "--benchmark_report_aggregates_only=true", "--benchmark_format=json"]
    if one_iteration:
        cmd.append("--benchmark_min_time=0")  # one iteration per repetition
    out = {}
    for b in json.loads(run(cmd))["benchmarks"]:
        if b.get("aggregate_name") == "median":
            name = re.sub(r"/(iterations:\d+|real_time|threads:\d+)", "", b["run_name"].replace("BM_", ""))
            scale = {"ms": 1, "s": 1e3, "us": 1e-3, "ns": 1e-6}[b["time_unit"]]
            out[name] = dict(b, ms=b["real_time"] * scale)
    return out


def torch_rows(script, *args):
    rows = json.loads(run([PY, script, "--json", *args]))
    return {r["name"].split("/", 1)[1]: dict(r, ms=r["ms"] if "ms" in r else r["s"] * 1e3) for r in rows}


def machine(build):
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    torch_v = run([PY, "-c", "import torch, torchaudio; print(torch.__version__, torchaudio.__version__)"]).split()
    gxx = run(["g++", "-dumpfullversion"]).strip()
    commit = run(["git", "rev-parse", "--short", "HEAD"]).strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "blas": blas, "torch": torch_v[0],
            "torchaudio": torch_v[1], "gxx": gxx, "commit": commit, "build": build}


def check(build, tmp):
    log("== checking that avgrad and PyTorch compute the same thing")
    b = os.path.join(build, "benchmarks")
    run([PY, "benchmarks/torch/bench_core.py", "--check", os.path.join(tmp, "core")])
    log(run([os.path.join(b, "bench_core"), f"--core_check={os.path.join(tmp, 'core')}"]).rstrip())
    run([PY, "benchmarks/torch/bench_av_small.py", "--write-check", os.path.join(tmp, "av_small.safetensors")])
    log(run([os.path.join(b, "bench_av_small"), f"--check={os.path.join(tmp, 'av_small.safetensors')}"]).rstrip())
    os.makedirs(os.path.join(tmp, "knn"), exist_ok=True)
    run([PY, "benchmarks/torch/bench_knn.py", "--write-check", os.path.join(tmp, "knn")])
    log(run([os.path.join(b, "bench_knn"), f"--knn_check={os.path.join(tmp, 'knn')}"]).rstrip())


def measure(build, repeats):
    b = os.path.join(build, "benchmarks")
    t = str(THREADS)
    ours, theirs = {}, {}
    log("== roofline probe and core kernels")
    ours.update(gbench(os.path.join(b, "bench_core"), ".", repeats, one_iteration=False))
    theirs.update(torch_rows("benchmarks/torch/bench_core.py", "--threads", t, "--repeats", str(repeats)))
    log("== W2 train step and W4 PGD-10 (bench-av-small)")
    ours.update(gbench(os.path.join(b, "bench_av_small"), ".", repeats))
    theirs.update(torch_rows("benchmarks/torch/bench_av_small.py", "--threads", t, "--repeats", str(repeats)))
    log("== W3 fbank")
    ours.update(gbench(os.path.join(b, "bench_audio"), f"/{t}/", repeats))
    theirs.update({k + f"/{t}": v for k, v in
                   torch_rows("benchmarks/torch/bench_audio.py", "--threads", t, "--repeats", str(repeats)).items()})
    log("== W5 kNN")
    ours.update(gbench(os.path.join(b, "bench_knn"), ".", repeats))
    theirs.update({k + f"/{t}": v for k, v in
                   torch_rows("benchmarks/torch/bench_knn.py", "--threads", t, "--repeats", str(repeats)).items()})
    log("== data loader (avgrad only)")
    ours.update(gbench(os.path.join(b, "bench_loader"), ".", 3, one_iteration=False))
    log("== peak resident memory of W2 and W4 processes")
    memory = {}
    for w in ("W2_TrainStep", "W4_Pgd10"):
        memory[w] = (peak_rss_mib([os.path.join(b, "bench_av_small"), f"--benchmark_filter={w}",
                                   "--benchmark_min_time=0", "--benchmark_repetitions=3"]),
                     peak_rss_mib([PY, "benchmarks/torch/bench_av_small.py", "--threads", t, "--repeats", "3",
                                   "--only", w, "--json"]))
    memory["import torch"] = (0.0, peak_rss_mib([PY, "-c", "import torch"]))
    return ours, theirs, memory


# (label, avgrad key, PyTorch key, target: ("time", max ratio) | ("rate", min ratio) | None)
ROWS = [
    ("W1 SGEMM 1024³ (GFLOP/s)", "Sgemm/1024", "Sgemm/1024", ("rate", 0.8)),
    ("W2 train step, batch 32", "W2_TrainStep/2", "W2_TrainStep", ("time", 0.7)),
    ("W3 Kaldi fbank 16 × 10 s, forward", "W3_fbank_fwd/2", "W3_fbank_fwd/2", ("time", 0.5)),
    ("W3 fbank, forward + backward", "W3_fbank_fwdbwd/2", "W3_fbank_fwdbwd/2", None),
    ("W4 PGD-10, batch 32", "W4_Pgd10/2", "W4_Pgd10", ("time", 0.7)),
    ("W4 forward + input backward", "W4_ForwardBackward/2", "W4_ForwardBackward", None),
    ("W4 forward", "W4_Forward/2", "W4_Forward", None),
    ("W5 kNN N 20000, D 1024, k 10", "W5_Knn/2", "W5_Knn/2", ("time", 0.3)),
]


def layer_rows(ours):
    for k in ours:
        if k.startswith(("Conv", "Attention")):
            yield k.replace("/", " ", 1).replace("/", ", "), k, k, None


def table(info, ours, theirs, memory, repeats):
    peak = ours.get("PeakFp32Fma", {}).get("GFLOP/s", float("nan"))
    triad = ours.get("StreamTriad/16777216", {}).get("GB/s", float("nan"))
    lines = [
        f"Measured {datetime.date.today().isoformat()} at commit {info['commit']} with "
        f"`/usr/bin/python3 benchmarks/compare.py --build {info['build']}`.",
        "",
        f"- Machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}; both sides use {THREADS} threads.",
        f"- Measured peak: {peak:.0f} GFLOP/s fp32 (FMA loop on every thread), {triad:.1f} GB/s (STREAM triad).",
        f"- avgrad: g++ {info['gxx']}, release preset (-O3 -march=native), Eigen GEMM + OpenMP.",
        f"- PyTorch {info['torch']}, torchaudio {info['torchaudio']} (Debian), BLAS {info['blas']}.",
        f"- Median of {repeats} runs after warm-up on each side; glibc allocator settings "
        + " ".join(f"{k}={v}" for k, v in ALLOCATOR.items()) + " on both sides.",
        "",
        "| workload | avgrad | PyTorch | avgrad / PyTorch | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for label, ok, tk, target in ROWS + list(layer_rows(ours)):
        if ok not in ours or tk not in theirs:
            continue
        rate = target is not None and target[0] == "rate"
        if rate:
            a, p = ours[ok]["GFLOP/s"], theirs[tk]["GFLOP/s"]
            ratio, cells = a / p, (f"{a:.0f}", f"{p:.0f}")
        else:
            a, p = ours[ok]["ms"], theirs[tk]["ms"]
            ratio, cells = a / p, (f"{a:.1f} ms", f"{p:.1f} ms")
        if target is None:
            goal, met = "", ""
        elif rate:
            goal, met = f"≥ {target[1]}", "yes" if ratio >= target[1] else "no"
        else:
            goal, met = f"≤ {target[1]}", "yes" if ratio <= target[1] else "no"
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio:.2f} | {goal} | {met} |")
    lines += ["", "Peak resident memory of one process running the workload (MiB; PyTorch's includes the "
              f"interpreter and libtorch: `import torch` alone peaks at {memory['import torch'][1]:.0f} MiB):", "",
              "| workload | avgrad MiB | PyTorch MiB |", "|---|---:|---:|"]
    for w, (a, p) in memory.items():
        if w != "import torch":
            lines.append(f"| {w} | {a:.0f} | {p:.0f} |")
    loader = [(k, v) for k, v in ours.items() if k.startswith(("LoaderThroughput", "TrainStepW2Audio"))]
    if loader:
        lines += ["", "Data loader (avgrad only; samples/s):", "", "| benchmark | samples/s |", "|---|---:|"]
        for k, v in loader:
            lines.append(f"| {k} | {v.get('samples/s', v.get('items_per_second', float('nan'))):.0f} |")
    return "\n".join(lines) + "\n"


def update_docs(text):
    path = os.path.join(ROOT, "docs", "PERFORMANCE.md")
    doc = open(path).read()
    if BEGIN not in doc or END not in doc:
        sys.exit(f"compare.py: {path} lacks the markers {BEGIN} … {END}")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + BEGIN + "\n" + text + END + tail)
    os.replace(tmp, path)  # atomic: a failed run leaves the old table


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build/release", help="build folder with benchmarks/ (default build/release)")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per workload and side (default 20)")
    ap.add_argument("--output", help="also write the Markdown table to this file")
    ap.add_argument("--update-docs", action="store_true", help="replace the generated table in docs/PERFORMANCE.md")
    ap.add_argument("--skip-check", action="store_true", help="time without the agreement checks first")
    args = ap.parse_args()
    for name in ("bench_core", "bench_av_small", "bench_audio", "bench_knn", "bench_loader"):
        if not os.access(os.path.join(ROOT, args.build, "benchmarks", name), os.X_OK):
            sys.exit(f"compare.py: {args.build}/benchmarks/{name} is missing; build it with "
                     "`cmake --preset release && cmake --build --preset release`")
    if subprocess.run([PY, "-c", "import torch, torchaudio"], capture_output=True).returncode != 0:
        sys.exit("compare.py: Debian's python3-torch and python3-torchaudio are needed: "
                 "apt-get install python3-torch python3-torchaudio libopenblas0-pthread")
    info = machine(args.build)
    if "openblas" not in info["blas"]:
        log(f"warning: libblas.so.3 is {info['blas']}, not OpenBLAS; PyTorch's GEMM will be slow "
            "(apt-get install libopenblas0-pthread)")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_check:
            check(args.build, tmp)
    ours, theirs, memory = measure(args.build, args.repeats)
    text = table(info, ours, theirs, memory, args.repeats)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    if args.update_docs:
        update_docs(text)


if __name__ == "__main__":
    main()
