"""What every PyTorch-side benchmark script shares: the timing rule and the output (JSON rows or a table)."""
import json
import statistics
import sys
import time


def timed(fn, warmup, repeats, reset=None):
    """Median wall time (ms) of `repeats` runs of fn after `warmup` untimed ones; reset() runs after
    each call, untimed (e.g. to clear gradients)."""
    for _ in range(warmup):
        fn()
        if reset:
            reset()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if reset:
            reset()
    return statistics.median(times)


def emit(results, as_json, header, columns):
    """Prints the result rows as JSON (for benchmarks/compare.py) or as a Markdown table under `header`;
    columns: (title, function of a row returning the cell text)."""
    if as_json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return
    print(header + "\n")
    print("| " + " | ".join(title for title, _ in columns) + " |")
    print("|---" + "|---:" * (len(columns) - 1) + "|")
    for r in results:
        print("| " + " | ".join(cell(r) for _, cell in columns) + " |")
