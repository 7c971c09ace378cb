#!/usr/bin/env python3
"""Search strategies side by side (issue 3's benchmark): for each task and
strategy, one search on the same local workers with the same wall budget;
hypervolume over time, the best feasible holdout max abs error, and how soon
each strategy reached random search's final hypervolume.

    /usr/bin/python3 bench/strategy_bench.py --build build --seconds 300 \
        --task ../shared/tasks/hartmann3 --task ../shared/tasks/ishigami \
        --config random --config evolution --config lemonade \
        --config lemonade+inherit --config lemonade+inherit+mf

With several --seed, each seed's searches run and print as above and a
last table gives the medians over the seeds: each search is compared with
random search of its own seed.

A config is a strategy with options: +inherit (Lamarckian inheritance),
+mf (multi-fidelity: short runs of a quarter of the steps), +rows (the
same, the short runs also on --short-row-fraction of the training rows),
+grow (SearchSpace.grow_stages: single-stage samples, full-size stages
added by ADD_STAGE; not for random), and for lemonade +random=F (a
fraction F of the proposals random samples) and +initial=N (N random
candidates before the front breeds).

Hypervolume: of the succeeded candidates' points (log10 validation max abs
error, log10 parameter count), both minimised, each divided by its range
[log10(error_floor), 0] and [0, log10(max_parameters)] so that a point
lies in the unit square, reference point (1, 1): error 1 and
`max_parameters` parameters. A point outside the reference adds nothing.
The run's configs are run one after another, never at the same time.

--phases adds, per config, where the training time went: for each phase
of the trained stages (Adam, L-BFGS, max-error), of children that inherit
and of candidates trained from scratch, the seconds, the share of phases
that found nothing better on the validation rows than the weights they
started from, and the share of the phase's seconds that ran after its last
improvement (the workers' stage_trained log lines). That share is what an
early stop could save at most.
"""

import argparse
import math
import os
import re
import statistics

from local_cluster import (INHERITANCE_HEADER, STRATEGIES, LocalCluster,
                           describe, load_task, print_inheritance, repo)


def normalised(candidate, args):
    """The candidate's point in the unit square: 0 is the error floor and one
    parameter, 1 is error 1 and max_parameters."""
    m = candidate.metrics
    err = max(m.validation.max_abs_error, args.error_floor)
    return (1 - math.log10(err) / math.log10(args.error_floor),
            math.log10(max(m.parameter_count, 1)) /
            math.log10(args.max_parameters))


def hypervolume(points):
    """Area dominated by `points` (both coordinates minimised) inside the
    box up to the reference (1, 1): the union of the boxes [x, 1] x [y, 1],
    summed as a staircase from left to right."""
    inside = sorted((x, y) for x, y in points if x < 1 and y < 1)
    volume, best_y = 0.0, 1.0
    for i, (x, y) in enumerate(inside):
        best_y = min(best_y, y)
        next_x = inside[i + 1][0] if i + 1 < len(inside) else 1.0
        volume += (next_x - x) * (1 - best_y)
    return volume


def run(cluster, task_dir, train, holdout, config, seed, args):
    types = cluster.types
    from evonas.v1 import evonas_service_pb2 as service_pb2
    strategy, options, values = parse_config(config)
    spec = cluster.task_spec(task_dir, train, holdout, seed=seed)
    spec.name = f"{load_task(task_dir)['name']}-{config}"
    spec.strategy = types.Strategy.Value(STRATEGIES[strategy])
    spec.inheritance.enabled = "inherit" in options
    spec.inheritance.step_fraction = args.inherit_step_fraction
    spec.multi_fidelity.enabled = "mf" in options or "rows" in options
    if "rows" in options:
        spec.multi_fidelity.short_row_fraction = args.short_row_fraction
    if "random" in values:
        spec.lemonade.random_fraction = float(values["random"])
    if "initial" in values:
        spec.lemonade.initial_population = int(values["initial"])
    spec.budget.max_wall_seconds = args.seconds
    for name in args.objective or []:
        spec.objectives.append(types.Objective.Value(
            "OBJECTIVE_" + name.upper()))
    s = spec.search_space
    s.max_width = args.max_width
    s.min_adam_steps, s.max_adam_steps = 500, args.max_adam_steps
    s.lbfgs_steps = args.lbfgs_steps
    s.allow_residual = True
    s.max_residual_stages = args.max_stages
    s.grow_stages = "grow" in options
    experiment = cluster.client.create_experiment(spec)
    experiment = cluster.client.wait(experiment.id, poll_seconds=5)
    candidates = cluster.client.stub.ListCandidates(
        service_pb2.ListCandidatesRequest(experiment_id=experiment.id)
    ).candidates
    start = experiment.created_at.ToMilliseconds()
    done = sorted(
        (c for c in candidates
         if c.state == types.CANDIDATE_STATE_SUCCEEDED and not c.duplicate_of),
        key=lambda c: c.finished_at.ToMilliseconds())
    curve = []  # (seconds, hypervolume) after each finished candidate
    points = []
    for c in done:
        points.append(normalised(c, args))
        curve.append(((c.finished_at.ToMilliseconds() - start) / 1000,
                      hypervolume(points)))
    front = cluster.client.pareto_front(experiment.id)
    best = min(front.candidates,
               key=lambda c: c.metrics.test.max_abs_error, default=None)
    return {"config": config, "experiment": experiment, "curve": curve,
            "candidates": candidates,
            "front": front, "best": best,
            "inherited": sum(1 for c in done
                             if c.parent_id and not c.promoted_from),
            "promoted": sum(1 for c in done if c.promoted_from)}


def stage_lines(cluster):
    """The fields of every stage_trained line the cluster's workers logged."""
    lines = []
    for i in range(cluster.workers):
        with open(os.path.join(cluster.work, f"worker-{i}.log")) as f:
            for line in f:
                if " event=stage_trained " in line:
                    lines.append({k: v.strip('"') for k, v in re.findall(
                        r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line)})
    return lines


PHASES = (("Adam", "adam_steps", "adam_best_step", "adam_seconds"),
          ("L-BFGS", "lbfgs_iterations", "lbfgs_best_iteration",
           "lbfgs_seconds"),
          ("max-error", "max_error_iterations", "max_error_best_iteration",
           "max_error_seconds"))


def print_phases(results, stages):
    """Where each config's training time went (see --phases)."""
    print("Training phases of the trained stages: how many found nothing "
          "better than their start, and the seconds after their last "
          "improvement.\n")
    print("| config | candidates | phase | phases run | seconds (share of "
          "all) | found nothing | seconds after the last improvement |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ids = {c.id for c in r["candidates"]}
        mine = [s for s in stages if s["candidate"] in ids]
        total = sum(float(s[seconds]) for s in mine
                    for _, _, _, seconds in PHASES)
        for who in ("yes", "no"):
            for name, steps, best, seconds in PHASES:
                ran = [s for s in mine
                       if s["inherited"] == who and int(s[steps]) > 0]
                spent = sum(float(s[seconds]) for s in ran)
                if not spent:
                    continue
                after = sum(float(s[seconds]) *
                            max(0, int(s[steps]) - int(s[best])) /
                            int(s[steps]) for s in ran)
                nothing = sum(1 for s in ran if int(s[best]) == 0)
                print(f"| {r['config']} | "
                      f"{'inheriting' if who == 'yes' else 'from scratch'} | "
                      f"{name} | {len(ran)} | {spent:.0f} "
                      f"({spent / total:.0%}) | {nothing / len(ran):.0%} | "
                      f"{after:.0f} ({after / spent:.0%}) |")
    print()


def parse_config(config):
    """strategy+flag+key=value... as (strategy, flags, {key: value})."""
    strategy, *options = config.split("+")
    values = dict(o.split("=", 1) for o in options if "=" in o)
    return strategy, [o for o in options if "=" not in o], values


def time_to_reach(curve, target):
    for seconds, volume in curve:
        if volume >= target - 1e-12:
            return seconds
    return None


def hypervolume_at(curve, seconds):
    """The hypervolumes at 25%, 50% and 100% of `seconds`."""
    return [max([v for t, v in curve if t <= f * seconds], default=0.0)
            for f in (0.25, 0.5, 1.0)]


def print_table(results, random_final, types, args):
    """One row per config; "reaches random's final" is "-" when the run
    had no random search to compare with."""
    print("| config | trained | inherited | promoted | failed | "
          "hypervolume at 25% / 50% / 100% of the time | reaches "
          "random's final at | front | best holdout max abs error "
          "(architecture, parameters) | feasible |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        at = hypervolume_at(r["curve"], args.seconds)
        reach = r["reach"]
        reach = ("-" if random_final is None else
                 f"{reach:.0f} s ({reach / args.seconds:.0%})"
                 if reach is not None else "never")
        c = r["experiment"].counts
        b = r["best"]
        best = (f"{b.metrics.test.max_abs_error:.2e} ("
                f"{describe(b.genome, types)}, "
                f"{b.metrics.parameter_count:,})" if b else "-")
        print(f"| {r['config']} | {c.succeeded} | {r['inherited']} | "
              f"{r['promoted']} | {c.failed} | {at[0]:.3f} / {at[1]:.3f} / "
              f"{at[2]:.3f} | {reach} | {len(r['front'].candidates)} | "
              f"{best} | {'yes' if r['front'].has_feasible else 'no'} |")
    print()


def print_summary(by_config, args):
    """Medians over the seeds, per config: each seed's search is compared
    with random search of the same seed (nothing to compare without a
    random config: "-")."""
    compared = "random" in by_config
    print(f"Over {len(args.seed)} seeds (median; reached: seeds whose search "
          "reached random search's final hypervolume of the same seed):\n")
    print("| config | hypervolume at 25% / 50% / 100% of the time | "
          "reached random's final | median time to reach it |")
    print("|---|---|---|---|")
    for config, results in by_config.items():
        at = [statistics.median(hypervolume_at(r["curve"], args.seconds)[i]
                                for r in results) for i in range(3)]
        # A seed that never reached counts as infinitely late.
        times = [r["reach"] if r["reach"] is not None else math.inf
                 for r in results]
        reached = sum(1 for t in times if t < math.inf)
        median = statistics.median(times)
        median = (f"{median:.0f} s ({median / args.seconds:.0%})"
                  if median < math.inf else "never")
        reached = f"{reached} of {len(results)}" if compared else "-"
        median = median if compared else "-"
        print(f"| {config} | {at[0]:.3f} / {at[1]:.3f} / {at[2]:.3f} | "
              f"{reached} | {median} |")
    print()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(repo, "build"))
    parser.add_argument("--task", action="append")
    parser.add_argument("--config", action="append",
                        help="strategy[+inherit][+mf], e.g. lemonade+inherit "
                        "(+mf: multi-fidelity evaluation)")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, action="append",
                        help="repeat for several seeds (default 1)")
    parser.add_argument("--max-width", type=int, default=64)
    parser.add_argument("--max-adam-steps", type=int, default=3000)
    parser.add_argument("--lbfgs-steps", type=int, default=200)
    parser.add_argument("--max-stages", type=int, default=2)
    parser.add_argument("--error-floor", type=float, default=1e-6)
    parser.add_argument("--max-parameters", type=float, default=1e6)
    parser.add_argument("--inherit-step-fraction", type=float, default=0,
                        help="fraction of its steps an inheriting child "
                        "trains in +inherit configs (0: the controller's "
                        "default, 1)")
    parser.add_argument("--objective", action="append",
                        help="an objective the searches optimise, by its "
                        "proto name without OBJECTIVE_ (validation_max_abs_"
                        "error, parameter_count, ...); repeat for several. "
                        "Default: the controller's (max abs error, "
                        "parameters, training seconds)")
    parser.add_argument("--phases", action="store_true",
                        help="also print where each config's training time "
                        "went, phase by phase")
    parser.add_argument("--short-row-fraction", type=float, default=0.25,
                        help="training rows of a short run in +rows "
                        "configs (multi-fidelity on a row subset)")
    args = parser.parse_args()
    tasks = args.task or [os.path.join(repo, "data/hartmann3")]
    configs = args.config or ["random", "evolution", "lemonade",
                              "lemonade+inherit"]
    for config in configs:
        strategy, options, values = parse_config(config)
        if strategy not in STRATEGIES:
            parser.error(f"unknown strategy in --config {config}")
        if any(o not in ("inherit", "mf", "rows", "grow") for o in options):
            parser.error(f"unknown option in --config {config}: want "
                         "strategy[+inherit][+mf][+rows][+grow][+random=F]"
                         "[+initial=N]")
        if "grow" in options and strategy == "random":
            parser.error(f"--config {config}: random search has no children "
                         "to grow stages on")
        if values and strategy != "lemonade":
            parser.error(f"--config {config}: +random= and +initial= are "
                         "lemonade's")
        for key, value in values.items():
            kind = {"random": float, "initial": int}.get(key)
            if kind is None:
                parser.error(f"unknown option in --config {config}: "
                             "want +random=F or +initial=N")
            try:
                kind(value)
            except ValueError:
                parser.error(f"--config {config}: +{key}={value} is not "
                             f"a {kind.__name__}")

    args.seed = args.seed or [1]
    objectives = ", ".join(args.objective or ["the controller's default"])
    print(f"{args.workers} workers, {args.seconds:.0f} s per search, seeds "
          f"{', '.join(map(str, args.seed))}, objectives: {objectives}; "
          f"hypervolume of (log10 validation max abs error, log10 "
          f"parameters), reference (1, {args.max_parameters:.0e}), error "
          f"floor {args.error_floor:.0e}\n")
    for task_dir in tasks:
        by_config = {config: [] for config in configs}
        for seed in args.seed:
            with LocalCluster(args.build, workers=args.workers) as cluster:
                types = cluster.types
                train, holdout = cluster.upload_task(task_dir)
                results = [run(cluster, task_dir, train, holdout, config,
                               seed, args) for config in configs]
                stages = stage_lines(cluster) if args.phases else []
            random_final = next((r["curve"][-1][1] for r in results
                                 if r["config"] == "random" and r["curve"]),
                                None)
            for r in results:
                r["reach"] = (time_to_reach(r["curve"], random_final)
                              if random_final is not None else None)
                by_config[r["config"]].append(r)
            print(f"### {load_task(task_dir)['name']}, seed {seed}\n")
            print_table(results, random_final, types, args)
            inheriting = [r for r in results if r["inherited"]]
            if inheriting:
                print("Inherited children by morphism: how their validation "
                      "max abs error compares with their parent's.\n")
                print(INHERITANCE_HEADER)
                for r in inheriting:
                    print_inheritance(
                        r["candidates"], r["front"], types,
                        lambda m: m.validation.max_abs_error, r["config"])
                print()
            if args.phases:
                print_phases(results, stages)
        if len(args.seed) > 1:
            print(f"### {load_task(task_dir)['name']}, all seeds\n")
            print_summary(by_config, args)


if __name__ == "__main__":
    main()
