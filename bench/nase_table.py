#!/usr/bin/env python3
"""The NASE table on a bundled task: a whole evonas search on this machine
(controller + local workers), judged on the holdout file that the search
never saw.

    bench/nase_table.py --build build --task data/hartmann3 --seconds 840 \
        --workers 2 --strategy evolution

Prints a Markdown table of the final Pareto front: holdout max abs error,
fraction of holdout points within 1e-5 and 1e-6, parameters, model MB,
training seconds of the candidate, and the wall time of the whole search.
With --refit N the best N front members are trained again on all rows
after the search (ExperimentSpec.refit) and listed after the front; the
wall time then includes the refits, and the search's share is printed.

Then how well the rows the search judged by (validation rows, or judging
rows with --judging-fraction) predicted the holdout file, over every
trained search candidate: the ratio of holdout to judged max abs error,
and how many the controller judged within the task's max abs error
against how many are within it on the holdout file.
"""

import argparse
import os
import time

import numpy as np
import torch
from google.protobuf import text_format

from local_cluster import STRATEGIES, LocalCluster, describe, load_task, repo


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(repo, "build"))
    parser.add_argument("--task", default=os.path.join(repo, "data/hartmann3"))
    parser.add_argument("--seconds", type=float, default=840)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategy", choices=sorted(STRATEGIES),
                        default="evolution")
    parser.add_argument("--inherit", action="store_true",
                        help="Lamarckian inheritance for morphism children")
    parser.add_argument("--max-stages", type=int, default=0,
                        help="most residual stages after the first")
    parser.add_argument("--allow-residual", action="store_true")
    parser.add_argument("--grow-stages", action="store_true",
                        help="SearchSpace.grow_stages: start single-stage, "
                        "add full-size stages by ADD_STAGE")
    parser.add_argument("--allow-layer-norm", action="store_true",
                        help="dense layers may be layer-normalised")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-adam-steps", type=int, default=6000)
    parser.add_argument("--lbfgs-steps", type=int, default=500)
    parser.add_argument("--max-width", type=int, default=128)
    parser.add_argument("--min-adam-steps", type=int, default=1000)
    parser.add_argument("--activations", default="",
                        help="comma-separated, e.g. tanh,sine (default: "
                        "the controller's)")
    parser.add_argument("--stage-activations", default="",
                        help="comma-separated activations of the stages "
                        "after the first (default: as --activations)")
    parser.add_argument("--training-extras", action="store_true",
                        help="also search warm-up, weight decay, patience, "
                        "the max-error phase and SIREN's omega_0")
    parser.add_argument("--refit", type=int, default=0,
                        help="front members trained again on all rows")
    parser.add_argument("--population", type=int, default=0,
                        help="regularized evolution's population (0: 20)")
    parser.add_argument("--initial-genome", action="append", default=[],
                        help="a Genome in protobuf text format to train "
                        "first (repeatable)")
    parser.add_argument("--judging-fraction", type=float, default=0,
                        help="ExperimentSpec.judging_fraction: rows that "
                        "judge the search, neither trained on nor used to "
                        "choose weights (0: none)")
    parser.add_argument("--lineage", action="store_true",
                        help="also list every search candidate: its parent, "
                        "morphism, judged and holdout max abs error")
    parser.add_argument("--refit-start", default="auto",
                        choices=["auto", "continue", "scratch"],
                        help="where refits start")
    args = parser.parse_args()

    with LocalCluster(args.build, workers=args.workers) as cluster:
        types_pb2 = cluster.types
        client = cluster.client
        task = load_task(args.task)
        train, holdout = cluster.upload_task(args.task)
        spec = cluster.task_spec(args.task, train, holdout, seed=args.seed)
        spec.name = f"nase-{task['name']}"
        spec.strategy = types_pb2.Strategy.Value(STRATEGIES[args.strategy])
        spec.inheritance.enabled = args.inherit
        spec.budget.max_wall_seconds = args.seconds
        s = spec.search_space
        s.max_width = args.max_width
        s.max_adam_steps = args.max_adam_steps
        s.min_adam_steps = min(args.min_adam_steps, args.max_adam_steps)
        s.lbfgs_steps = args.lbfgs_steps
        s.max_residual_stages = args.max_stages
        s.allow_residual = args.allow_residual
        s.grow_stages = args.grow_stages
        s.allow_layer_norm = args.allow_layer_norm
        s.search_training_extras = args.training_extras
        for name in filter(None, args.activations.split(",")):
            s.activations.append(types_pb2.Activation.Value(
                "ACTIVATION_" + name.upper()))
        for name in filter(None, args.stage_activations.split(",")):
            s.residual_stage_activations.append(types_pb2.Activation.Value(
                "ACTIVATION_" + name.upper()))
        spec.refit.front_members = args.refit
        spec.judging_fraction = args.judging_fraction
        spec.evolution.population_size = args.population
        for path in args.initial_genome:
            with open(path) as f:
                text_format.Parse(f.read(), spec.initial_genomes.add())
        spec.refit.start = types_pb2.RefitStart.Value(
            "REFIT_START_" + args.refit_start.upper())
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
        refits = list(front.refits)
        searched = wall
        if refits:
            # The refits were queued when the search's last candidate ended.
            created = min(r.created_at.ToSeconds() for r in refits)
            searched = created - experiment.created_at.ToSeconds()
        print(f"{task['name']}, strategy {args.strategy}, {args.workers} "
              f"workers, seed {args.seed}: {c.succeeded - len(refits)} "
              f"candidates trained, {c.failed} failed, search wall time "
              f"{searched / 60:.1f} min, with the refits {wall / 60:.1f} min, "
              f"front of {len(front.candidates)}, feasible: "
              f"{front.has_feasible}\n")
        print("| candidate | architecture | validation max | judging max | "
              "holdout max abs error | within 1e-5 | within 1e-6 | "
              "parameters | model MB (float64 TorchScript) | training s | "
              "controller's verdict |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for cand in list(front.candidates) + refits:
            if cand.state != types_pb2.CANDIDATE_STATE_SUCCEEDED:
                print(f"| {cand.id[-6:]} | refit of {cand.refit_of[-6:]}: "
                      f"{types_pb2.CandidateState.Name(cand.state)} "
                      f"{cand.failure_reason} | | | | | | | | | |")
                continue
            path = os.path.join(cluster.work, cand.id + ".pt")
            client.download_model(cand.id, path)
            err = np.abs(torch.jit.load(path)(x).detach().numpy() - y)
            layers = describe(cand.genome, types_pb2)
            if cand.refit_of:
                layers = f"refit of {cand.refit_of[-6:]}, all rows"
            m = cand.metrics
            judging = (f"{m.judging.max_abs_error:.2e}"
                       if m.HasField("judging") else "-")
            print(f"| {cand.id[-6:]} | {layers} | "
                  f"{m.validation.max_abs_error:.2e} | {judging} | "
                  f"{err.max():.3e} | "
                  f"{100 * np.mean(err <= 1e-5):.1f}% | "
                  f"{100 * np.mean(err <= 1e-6):.1f}% | {m.parameter_count:,} "
                  f"| {m.model_bytes / 1e6:.3f} | {m.training_seconds:.0f} | "
                  f"{'feasible' if cand.feasible else '; '.join(cand.violations)} |")
        candidates, holdout = search_holdout_errors(cluster, experiment, x, y)
        print_verdicts(candidates, holdout, types_pb2,
                       task["requirements"]["max_abs_error"])
        if args.lineage:
            print_lineage(candidates, holdout, types_pb2)


def search_holdout_errors(cluster, experiment, x, y):
    """The experiment's candidates, and the holdout max abs error of each
    trained search candidate (succeeded, neither a duplicate nor a refit) by
    id."""
    from evonas.v1 import evonas_service_pb2 as service_pb2
    types_pb2 = cluster.types
    candidates = cluster.client.stub.ListCandidates(
        service_pb2.ListCandidatesRequest(experiment_id=experiment.id)
    ).candidates
    holdout = {}
    for c in candidates:
        if (c.state != types_pb2.CANDIDATE_STATE_SUCCEEDED or c.duplicate_of
                or c.refit_of):
            continue
        path = os.path.join(cluster.work, c.id + ".pt")
        cluster.client.download_model(c.id, path)
        holdout[c.id] = np.abs(
            torch.jit.load(path)(x).detach().numpy() - y).max()
    return candidates, holdout


def print_lineage(candidates, holdout, types_pb2):
    """Every search candidate in proposal order: where it came from (its
    parent and morphism, or "scratch"), the max abs error the search judged
    it by, and its holdout max abs error."""
    print("\n| candidate | from | architecture | judged max | holdout max "
          "| parameters | training s |")
    print("|---|---|---|---|---|---|---|")
    for c in sorted(candidates, key=lambda c: c.sequence):
        if c.refit_of:
            continue
        origin = "scratch"
        if c.parent_id:
            kind = types_pb2.MorphismKind.Name(c.morphism.kind)[14:].lower()
            origin = f"{kind} of {c.parent_id[-6:]}"
        if c.id not in holdout:
            state = (f"duplicate of {c.duplicate_of[-6:]}" if c.duplicate_of
                     else types_pb2.CandidateState.Name(c.state)[16:].lower())
            print(f"| {c.id[-6:]} | {origin} | "
                  f"{describe(c.genome, types_pb2)} | {state} | | | |")
            continue
        m = c.metrics
        judged = (m.judging if m.HasField("judging") else m.validation)
        print(f"| {c.id[-6:]} | {origin} | {describe(c.genome, types_pb2)} | "
              f"{judged.max_abs_error:.2e} | {holdout[c.id]:.2e} | "
              f"{m.parameter_count:,} | {m.training_seconds:.0f} |")


def print_verdicts(candidates, holdout, types_pb2, limit):
    """How the rows the search judged by predicted the holdout file."""
    rows = []  # (validation, judging or None, holdout) max abs errors
    for c in candidates:
        if c.id not in holdout:
            continue
        judging = (c.metrics.judging.max_abs_error
                   if c.metrics.HasField("judging") else None)
        rows.append((c.metrics.validation.max_abs_error, judging,
                     holdout[c.id]))
    if not rows:
        return
    print(f"\nOver the {len(rows)} trained search candidates: holdout max "
          f"abs error / the search's max abs error (median, max), and how "
          f"many are within {limit:g}:\n")
    print("| rows | median ratio | max ratio | within on these rows | "
          "within on the holdout file too |")
    print("|---|---|---|---|---|")
    columns = [("validation", 0)]
    if all(r[1] is not None for r in rows):
        columns.append(("judging", 1))
    for name, i in columns:
        ratios = [r[2] / r[i] for r in rows if r[i] > 0]
        within = [r for r in rows if r[i] <= limit]
        print(f"| {name} | {np.median(ratios):.2f} | {max(ratios):.1f} | "
              f"{len(within)} | {sum(r[2] <= limit for r in within)} |")
    print(f"| holdout | 1 | 1 | {sum(r[2] <= limit for r in rows)} | |")


if __name__ == "__main__":
    main()
