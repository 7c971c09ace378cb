#!/usr/bin/python3
"""Eager PyTorch reference for bench/trainer_bench.cc.

    pytorch_steps.py steps --data CSV --widths 64,64,64 --steps 300
        Adam steps per second (wall and CPU) of the same float64 MLP, data,
        learning-rate schedule and thread count as the worker's trainer
        (full batch); --dtype float32 runs the MLP and data in float32.
    pytorch_steps.py peak --size 1024
        torch.mm GFLOP/s on float64 (or --dtype float32) square matrices.

Prints "key=value" lines like trainer_bench. Run with Debian's python3-torch
(/usr/bin/python3); bench/run_trainer_bench.sh runs both side by side.
"""

import argparse
import csv
import math
import time

import torch

ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "silu": torch.nn.functional.silu,
    "gelu": torch.nn.functional.gelu,
    "sine": torch.sin,
}


DTYPES = {"float64": torch.float64, "float32": torch.float32}


def read_hartmann3(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = torch.tensor([[float(r["x1"]), float(r["x2"]), float(r["x3"])]
                      for r in rows], dtype=torch.float64)
    y = torch.tensor([[float(r["y"])] for r in rows], dtype=torch.float64)
    return x, y


def standardise(t):
    std = t.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (t - t.mean(0)) / std


def run_steps(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dtype = DTYPES[args.dtype]
    x, y = read_hartmann3(args.data)
    # Standardised in float64, as the trainer does, then rounded.
    x, y = standardise(x).to(dtype), standardise(y).to(dtype)
    act = ACTIVATIONS[args.activation]
    sizes = [x.shape[1]] + [int(w) for w in args.widths.split(",")] + [1]
    weights, biases = [], []
    # Glorot-uniform weights and zero biases, as the trainer initialises.
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = (torch.rand(fan_out, fan_in, dtype=dtype) * 2 - 1) * bound
        weights.append(w.requires_grad_())
        biases.append(torch.zeros(fan_out, dtype=dtype, requires_grad=True))
    params = [p for pair in zip(weights, biases) for p in pair]
    adam = torch.optim.Adam(params, lr=args.learning_rate)

    def forward(h):
        for w, b in zip(weights[:-1], biases[:-1]):
            h = act(torch.addmm(b, h, w.t()))
        return torch.addmm(biases[-1], h, weights[-1].t())

    def step(i, total):
        # The trainer's cosine decay to 1% of the initial rate.
        progress = i / total
        for group in adam.param_groups:
            group["lr"] = args.learning_rate * (
                0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
        adam.zero_grad()
        loss = torch.nn.functional.mse_loss(forward(x), y)
        if not math.isfinite(loss.item()):
            raise SystemExit("diverged")
        loss.backward()
        adam.step()

    for i in range(args.warmup):
        step(i, args.warmup)
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(args.steps):
        step(i, args.steps)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    print(f"mode=steps impl=pytorch dtype={args.dtype} widths={args.widths} "
          f"activation={args.activation} rows={x.shape[0]} "
          f"threads={torch.get_num_threads()} steps={args.steps} "
          f"cpu_seconds={cpu:.6f} steps_per_cpu_second={args.steps / cpu:.3f} "
          f"steps_per_second={args.steps / seconds:.3f}")


def run_peak(args):
    torch.set_num_threads(args.threads)
    n = args.size
    a = torch.rand(n, n, dtype=DTYPES[args.dtype])
    b = torch.rand(n, n, dtype=DTYPES[args.dtype])
    best, best_cpu, runs, start = 0.0, 0.0, 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < args.seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t0) / 1e9)
        best_cpu = max(best_cpu,
                       2.0 * n ** 3 / (time.process_time() - c0) / 1e9)
        runs += 1
    print(f"mode=peak impl=torch.mm dtype={args.dtype} size={n} "
          f"threads={torch.get_num_threads()} runs={runs} gflops={best:.3f} "
          f"gflops_per_cpu_second={best_cpu:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    steps = sub.add_parser("steps")
    steps.add_argument("--data", required=True)
    steps.add_argument("--widths", default="16,16")
    steps.add_argument("--activation", default="tanh",
                       choices=sorted(ACTIVATIONS))
    steps.add_argument("--steps", type=int, default=300)
    steps.add_argument("--warmup", type=int, default=5)
    steps.add_argument("--threads", type=int, default=1)
    steps.add_argument("--learning-rate", type=float, default=1e-3)
    steps.add_argument("--dtype", default="float64", choices=sorted(DTYPES))
    peak = sub.add_parser("peak")
    peak.add_argument("--size", type=int, default=1024)
    peak.add_argument("--seconds", type=float, default=2.0)
    peak.add_argument("--threads", type=int, default=1)
    peak.add_argument("--dtype", default="float64", choices=sorted(DTYPES))
    args = parser.parse_args()
    if args.mode == "steps":
        run_steps(args)
    else:
        run_peak(args)


if __name__ == "__main__":
    main()
