#!/usr/bin/python3
"""Turns the key=value lines of bench/run_precision_bench.sh into a table.

Speeds are steps per CPU second, medians over rounds with their range.
Ratios pair the runs of one round (which ran one after the other) and are
medians over rounds; the last column is the wall-clock ratio of evonas
float32 to PyTorch float32.
"""

import statistics
import sys
from collections import defaultdict


def fmt(v):
    """Three significant digits, with thousands separators."""
    v = float(f"{v:.3g}")
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def parameters(widths, inputs=3, outputs=1):
    sizes = [inputs] + [int(w) for w in widths.split(",")] + [outputs]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def main():
    records = [dict(kv.split("=", 1) for kv in line.split())
               for line in open(sys.argv[1]) if "=" in line]
    # net -> (impl, dtype) -> round -> steps per CPU second (and wall)
    cpu = defaultdict(lambda: defaultdict(dict))
    wall = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["mode"] not in ("kernels", "steps"):
            continue
        net, run = (r["widths"], r["activation"]), (r["impl"], r["dtype"])
        cpu[net][run][r["round"]] = float(r["steps_per_cpu_second"])
        wall[net][run][r["round"]] = float(r["steps_per_second"])

    def median_ratio(table, net, a, b):
        x, y = table[net][a], table[net][b]
        return statistics.median(x[k] / y[k] for k in set(x) & set(y))

    e64, e32 = ("evonas", "float64"), ("evonas", "float32")
    t32, t64 = ("pytorch", "float32"), ("pytorch", "float64")
    print("| network | params | evonas f64 | evonas f32 | PyTorch f32 | "
          "PyTorch f64 | evonas f32 / f64 | evonas f32 / PyTorch f32 | "
          "PyTorch f32 / f64 | evonas f32 / PyTorch f32, wall |")
    print("|" + "---|" * 10)
    for net, runs in cpu.items():
        if any(run not in runs for run in (e64, e32, t32, t64)):
            continue
        widths, activation = net
        cells = []
        for run in (e64, e32, t32, t64):
            v = list(runs[run].values())
            cells.append(f"{fmt(statistics.median(v))} "
                         f"({fmt(min(v))}..{fmt(max(v))})")
        name = "3-" + "-".join(widths.split(",")) + "-1 " + activation
        print(f"| {name} | {parameters(widths):,} | " + " | ".join(cells) +
              f" | {median_ratio(cpu, net, e32, e64):.2f}x"
              f" | {median_ratio(cpu, net, e32, t32):.2f}x"
              f" | {median_ratio(cpu, net, t32, t64):.2f}x"
              f" | {median_ratio(wall, net, e32, t32):.2f}x |")


if __name__ == "__main__":
    main()
