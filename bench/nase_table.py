#!/usr/bin/env python3
"""The NASE table on a bundled task: a whole evonas search on this machine
(controller + local workers), judged on the holdout file that the search
never saw.

    bench/nase_table.py --build build --task data/hartmann3 --seconds 840 \
        --workers 2 --strategy evolution

Prints a Markdown table of the final Pareto front: holdout max abs error,
fraction of holdout points within 1e-5 and 1e-6, parameters, model MB,
training seconds of the candidate, and the wall time of the whole search.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(repo, "build"))
    parser.add_argument("--task", default=os.path.join(repo, "data/hartmann3"))
    parser.add_argument("--seconds", type=float, default=840)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", choices=["random", "evolution"],
                        default="evolution")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-adam-steps", type=int, default=6000)
    parser.add_argument("--lbfgs-steps", type=int, default=500)
    parser.add_argument("--max-width", type=int, default=128)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="evonas-nase-")
    stubs = os.path.join(work, "stubs")
    subprocess.run([os.path.join(repo, "clients/python/generate_stubs.sh"),
                    stubs], check=True)
    sys.path[:0] = [stubs, os.path.join(repo, "clients/python")]
    from evonas.v1 import types_pb2
    from evonas_client import Client
    import numpy as np
    import torch

    task = json.load(open(os.path.join(args.task, "task.json")))
    req = task["requirements"]
    port_file = os.path.join(work, "port")
    procs = [subprocess.Popen(
        [os.path.join(args.build, "server/evonas-controller"),
         "--listen=127.0.0.1:0", f"--port-file={port_file}",
         f"--db={work}/evonas.db", f"--data-dir={work}/data",
         "--plaintext", "--no-auth"],  # loopback, one user
        stderr=open(os.path.join(work, "controller.log"), "w"))]
    try:
        while not os.path.exists(port_file):
            time.sleep(0.05)
        address = "127.0.0.1:" + open(port_file).read().strip()
        for i in range(args.workers):
            procs.append(subprocess.Popen(
                [os.path.join(args.build, "worker/evonas-worker"),
                 f"--controller={address}", "--plaintext",
                 f"--worker-id=bench-{i}",
                 "--threads=1", f"--cache-dir={work}/cache"],
                stderr=open(os.path.join(work, f"worker-{i}.log"), "w")))
        client = Client(address, plaintext=True)
        train = client.upload_dataset(os.path.join(args.task, task["train"]))
        holdout = client.upload_dataset(
            os.path.join(args.task, task["holdout"]))
        spec = types_pb2.ExperimentSpec(
            name=f"nase-{task['name']}", dataset_id=train.id,
            test_dataset_id=holdout.id, input_columns=task["inputs"],
            output_columns=task["outputs"], seed=args.seed,
            strategy=(types_pb2.STRATEGY_REGULARIZED_EVOLUTION
                      if args.strategy == "evolution"
                      else types_pb2.STRATEGY_RANDOM),
            budget=types_pb2.Budget(max_wall_seconds=args.seconds))
        r = spec.requirements
        r.max_abs_error = req["max_abs_error"]
        r.within_tolerance = req["within_tolerance"]
        r.min_fraction_within = req["min_fraction_within"]
        r.max_model_bytes = req["max_model_bytes"]
        r.max_training_seconds = req["max_train_seconds"]
        s = spec.search_space
        s.max_width = args.max_width
        s.max_adam_steps = args.max_adam_steps
        s.min_adam_steps = min(1000, args.max_adam_steps)
        s.lbfgs_steps = args.lbfgs_steps
        start = time.monotonic()
        experiment = client.create_experiment(spec)
        experiment = client.wait(experiment.id, poll_seconds=5)
        wall = time.monotonic() - start
        front = client.pareto_front(experiment.id)

        data = np.loadtxt(os.path.join(args.task, task["holdout"]),
                          delimiter=",", skiprows=1)
        x = torch.tensor(data[:, :len(task["inputs"])], dtype=torch.float64)
        y = data[:, len(task["inputs"]):]
        c = experiment.counts
        print(f"{task['name']}, strategy {args.strategy}, {args.workers} "
              f"workers, seed {args.seed}: {c.succeeded} candidates trained, "
              f"{c.failed} failed, search wall time {wall / 60:.1f} min, "
              f"front of {len(front.candidates)}, feasible: "
              f"{front.has_feasible}\n")
        print("| candidate | architecture | holdout max abs error | within "
              "1e-5 | within 1e-6 | parameters | model MB (float64 "
              "TorchScript) | training s |")
        print("|---|---|---|---|---|---|---|---|")
        for cand in front.candidates:
            path = os.path.join(work, cand.id + ".pt")
            client.download_model(cand.id, path)
            err = np.abs(torch.jit.load(path)(x).detach().numpy() - y)
            layers = "-".join(
                f"{l.width}{types_pb2.Activation.Name(l.activation)[11:].lower()}"
                for l in cand.genome.hidden_layers)
            m = cand.metrics
            print(f"| {cand.id[-6:]} | {layers} | {err.max():.3e} | "
                  f"{100 * np.mean(err <= 1e-5):.1f}% | "
                  f"{100 * np.mean(err <= 1e-6):.1f}% | {m.parameter_count:,} "
                  f"| {m.model_bytes / 1e6:.3f} | {m.training_seconds:.0f} |")
        client.close()
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
