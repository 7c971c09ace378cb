#!/usr/bin/python3
"""float32 against float64, genome by genome (issues 3 and 4).

Runs the same random search twice on one local worker: once with float64
networks (the default) and once with `--precisions float32`. Random search
draws a genome's precision after every other gene, so both runs train the
same architectures with the same training genes and seeds; only the
precision differs. Prints one row per pair: training CPU seconds, the
error (max abs error on the test data for regression, test accuracy for
classification) and the model bytes of each, and the medians of the ratios.

    /usr/bin/python3 bench/precision_pairs.py --build build --data fashion \
        --candidates 8
    /usr/bin/python3 bench/precision_pairs.py --build build \
        --data ../shared/tasks/hartmann3 --candidates 8
"""

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from local_cluster import LocalCluster, describe  # noqa: E402



def run(args, precision):
    """Candidates of one search, by sequence: (genome, metrics)."""
    with LocalCluster(args.build, workers=1) as cluster:
        types_pb2 = cluster.types
        client = cluster.client
        if args.data == "fashion":
            train, test = cluster.upload_fashion()
            spec = types_pb2.ExperimentSpec(
                name="precision-pairs", dataset_id=train.id,
                test_dataset_id=test.id, output_columns=["label"],
                task=types_pb2.TASK_CLASSIFICATION, seed=args.seed)
            spec.search_space.max_width = 256
            spec.search_space.min_adam_steps = 500
            spec.search_space.max_adam_steps = 2000
        else:
            train, holdout = cluster.upload_task(args.data)
            spec = cluster.task_spec(args.data, train, holdout, seed=args.seed)
            spec.ClearField("requirements")
        spec.strategy = types_pb2.STRATEGY_RANDOM
        spec.budget.max_candidates = args.candidates
        if precision == "float32":
            spec.search_space.precisions.append(types_pb2.PRECISION_FLOAT32)
        experiment = client.create_experiment(spec)
        client.wait(experiment.id, poll_seconds=2)
        from evonas.v1 import evonas_service_pb2 as service_pb2
        listed = client.stub.ListCandidates(
            service_pb2.ListCandidatesRequest(experiment_id=experiment.id),
            timeout=60)
        done = [c for c in listed.candidates
                if c.state == types_pb2.CANDIDATE_STATE_SUCCEEDED]
        return {c.sequence: c for c in done}, types_pb2


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default="build")
    parser.add_argument("--data", required=True,
                        help="'fashion' or a task directory")
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    wide, types_pb2 = run(args, "float64")
    narrow, _ = run(args, "float32")
    classification = args.data == "fashion"
    error_name = "test accuracy" if classification else "test max abs error"
    print(f"{args.data}, random search, seed {args.seed}, one worker, one "
          f"thread: {len(wide)} float64 and {len(narrow)} float32 candidates\n")
    print(f"| candidate | architecture | Adam steps | CPU s float64 / float32 "
          f"| speed-up | {error_name} float64 / float32 | model bytes float64 "
          f"/ float32 |")
    print("|---|---|---|---|---|---|---|")
    speedups, size_ratios = [], []
    for seq in sorted(set(wide) & set(narrow)):
        a, b = wide[seq], narrow[seq]
        assert describe(a.genome, types_pb2) == describe(b.genome, types_pb2)
        ma, mb = a.metrics, b.metrics
        speedup = ma.training_cpu_seconds / mb.training_cpu_seconds
        speedups.append(speedup)
        size_ratios.append(ma.model_bytes / mb.model_bytes)
        if classification:
            err = (f"{100 * ma.test.accuracy:.2f}% / "
                   f"{100 * mb.test.accuracy:.2f}%")
        else:
            err = f"{ma.test.max_abs_error:.2e} / {mb.test.max_abs_error:.2e}"
        print(f"| {seq} | {describe(a.genome, types_pb2)} | "
              f"{a.genome.training.adam_steps} | "
              f"{ma.training_cpu_seconds:.1f} / {mb.training_cpu_seconds:.1f} "
              f"| {speedup:.2f}x | {err} | {ma.model_bytes:,} / "
              f"{mb.model_bytes:,} |")
    if speedups:
        print(f"\nmedian speed-up by training CPU seconds: "
              f"{statistics.median(speedups):.2f}x (range "
              f"{min(speedups):.2f}..{max(speedups):.2f}); median model bytes "
              f"ratio {statistics.median(size_ratios):.2f}")


if __name__ == "__main__":
    main()
