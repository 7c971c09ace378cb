#!/usr/bin/python3
"""Turns the key=value lines of bench/run_trainer_bench.sh into a table.

Speeds are steps per CPU second (robust to time-slicing on a shared machine)
and, for reference, per wall-clock second. Ratios pair the two
implementations' runs of the same round, which ran next to each other.
"""

import statistics
import sys
from collections import defaultdict


def flops_per_step(widths, rows=7000, inputs=3, outputs=1):
    sizes = [inputs] + [int(w) for w in widths.split(",")] + [outputs]
    mac = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    # Forward, weight gradients, input gradients (none for the first layer).
    return 2 * rows * (2 * sum(mac) + sum(mac[1:]))


def parameters(widths, inputs=3, outputs=1):
    sizes = [inputs] + [int(w) for w in widths.split(",")] + [outputs]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def span(values):
    return f"{min(values):.3g}..{max(values):.3g}"


def main():
    records = [dict(kv.split("=", 1) for kv in line.split())
               for line in open(sys.argv[1]) if "=" in line]
    peak = defaultdict(list)
    cpu = defaultdict(lambda: defaultdict(dict))
    wall = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r["mode"] == "peak":
            peak[r["impl"]].append(float(r["gflops_per_cpu_second"]))
        elif r["mode"] == "steps":
            net = (r["widths"], r["activation"])
            cpu[net][r["impl"]][r["round"]] = float(r["steps_per_cpu_second"])
            wall[net][r["impl"]][r["round"]] = float(r["steps_per_second"])
    # One core's DGEMM peak: the best OpenBLAS square dgemm of the run.
    dgemm = max(peak["openblas"])
    print(f"DGEMM peak per CPU second, best of the run: OpenBLAS "
          f"{dgemm:.1f} GFLOP/s, torch.mm {max(peak['torch.mm']):.1f} GFLOP/s")
    print()

    def ratios(table, net):
        ours, theirs = table[net]["evonas"], table[net]["pytorch"]
        return [ours[k] / theirs[k] for k in sorted(set(ours) & set(theirs))]

    print("| network | params | evonas steps/CPU-s | PyTorch steps/CPU-s | "
          "ratio by CPU time: median (range) | ratio by wall clock: median | "
          "evonas % of DGEMM peak | PyTorch % of DGEMM peak |")
    print("|" + "---|" * 8)
    for net, impls in cpu.items():
        widths, activation = net
        if "evonas" not in impls or "pytorch" not in impls:
            continue
        ours = list(impls["evonas"].values())
        theirs = list(impls["pytorch"].values())
        o, t = statistics.median(ours), statistics.median(theirs)
        gflop = flops_per_step(widths) / 1e9
        r, w = ratios(cpu, net), ratios(wall, net)
        name = "3-" + "-".join(widths.split(",")) + "-1 " + activation
        print(f"| {name} | {parameters(widths):,} | {o:.3g} ({span(ours)}) | "
              f"{t:.3g} ({span(theirs)}) | {statistics.median(r):.2f}x "
              f"({span(r)}) | {statistics.median(w):.2f}x | "
              f"{100 * o * gflop / dgemm:.0f}% | "
              f"{100 * t * gflop / dgemm:.0f}% |")


if __name__ == "__main__":
    main()
