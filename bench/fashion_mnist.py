#!/usr/bin/env python3
"""A classification search on Fashion-MNIST (Debian's dataset-fashion-mnist):
the 60,000 training images uploaded as IDX, the 10,000 test images as the
test data set, a whole evonas search on this machine (controller + local
workers), and the final Pareto front of error rate against parameters.

    bench/fashion_mnist.py --build build --seconds 600 --workers 2 \
        --strategy evolution [--inherit]

Prints a Markdown table of the front: validation and test accuracy,
validation cross-entropy, parameters, model MB, the batch-1 latency the
worker measured, the candidate's training seconds and the worker's peak
resident memory while training it; and the search's wall time and
candidates trained.
"""

import argparse
import os
import time

from local_cluster import (INHERITANCE_HEADER, STRATEGIES, LocalCluster,
                           describe, print_inheritance, repo)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(repo, "build"))
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", choices=sorted(STRATEGIES),
                        default="evolution")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-adam-steps", type=int, default=500)
    parser.add_argument("--max-adam-steps", type=int, default=4000)
    parser.add_argument("--max-width", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--max-conv-layers", type=int, default=0,
                        help="search convolutional trunks of up to this many "
                             "layers (0: MLPs only)")
    parser.add_argument("--max-channels", type=int, default=0)
    parser.add_argument("--max-depth", type=int, default=0)
    parser.add_argument("--inherit", action="store_true",
                        help="Lamarckian inheritance: children made by a "
                             "morphism start from their parent's weights")
    args = parser.parse_args()

    with LocalCluster(args.build, workers=args.workers) as cluster:
        types_pb2 = cluster.types
        client = cluster.client
        train, test = cluster.upload_fashion()
        spec = types_pb2.ExperimentSpec(
            name="fashion-mnist", dataset_id=train.id,
            test_dataset_id=test.id, output_columns=["label"],
            task=types_pb2.TASK_CLASSIFICATION, seed=args.seed,
            strategy=types_pb2.Strategy.Value(STRATEGIES[args.strategy]))
        spec.budget.max_wall_seconds = args.seconds
        spec.inheritance.enabled = args.inherit
        s = spec.search_space
        s.max_width = args.max_width
        s.min_adam_steps = args.min_adam_steps
        s.max_adam_steps = args.max_adam_steps
        s.batch_size = args.batch_size
        s.max_conv_layers = args.max_conv_layers
        s.max_channels = args.max_channels
        s.max_depth = args.max_depth
        s.allow_residual = args.max_conv_layers > 0
        s.activations.extend([types_pb2.ACTIVATION_RELU,
                              types_pb2.ACTIVATION_GELU,
                              types_pb2.ACTIVATION_SILU])
        start = time.monotonic()
        experiment = client.create_experiment(spec)
        experiment = client.wait(experiment.id, poll_seconds=5)
        wall = time.monotonic() - start
        front = client.pareto_front(experiment.id)

        c = experiment.counts
        print(f"Fashion-MNIST, strategy {args.strategy}, {args.workers} "
              f"workers, {args.max_conv_layers} convolutional layers at most, "
              f"seed {args.seed}: {c.succeeded} candidates trained, "
              f"{c.failed} failed, search wall time {wall / 60:.1f} min, "
              f"front of {len(front.candidates)}\n")
        print("| candidate | architecture | Adam steps | validation accuracy "
              "| test accuracy | validation cross-entropy | parameters | "
              "model MB | latency batch 1 (µs) | training s | worker peak memory "
              "GB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for cand in front.candidates:
            m = cand.metrics
            print(f"| {cand.id[-6:]} | {describe(cand.genome, types_pb2)} | "
                  f"{cand.genome.training.adam_steps} | "
                  f"{100 * m.validation.accuracy:.2f}% | "
                  f"{100 * m.test.accuracy:.2f}% | "
                  f"{m.validation.cross_entropy:.4f} | "
                  f"{m.parameter_count:,} | {m.model_bytes / 1e6:.2f} | "
                  f"{1e6 * m.inference_latency_seconds:.0f} | "
                  f"{m.training_seconds:.1f} | "
                  f"{m.peak_memory_bytes / 1e9:.2f} |")
        if args.inherit:
            from evonas.v1 import evonas_service_pb2 as service_pb2
            candidates = client.stub.ListCandidates(
                service_pb2.ListCandidatesRequest(
                    experiment_id=experiment.id)).candidates
            print("\nInherited children by morphism: how their validation "
                  "error rate compares with their parent's.\n")
            print(INHERITANCE_HEADER)
            print_inheritance(candidates, front, types_pb2,
                              lambda m: 1 - m.validation.accuracy,
                              args.strategy + "+inherit")


if __name__ == "__main__":
    main()
