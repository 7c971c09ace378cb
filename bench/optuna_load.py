#!/usr/bin/env python3
"""The Optuna side of the load benchmark (issue 5).

N processes share one Optuna study in SQLite, the usual way a study is
shared today, each running ask -> evaluate -> tell with a random sampler for
a fixed time. The evaluation is a cheap closed-form function, so what is
measured is the storage: trials per second in total.

    python3 bench/optuna_load.py --processes 16 --seconds 60 --db /tmp/o.db
"""
import argparse
import math
import multiprocessing
import os
import time

import optuna


def evaluate(trial):
    # Stands in for training, like evonas' simulated evaluator: a few
    # hyperparameters and a closed-form error.
    layers = trial.suggest_int("layers", 1, 6)
    width = trial.suggest_int("width", 4, 256, log=True)
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    activation = trial.suggest_categorical(
        "activation", ["tanh", "relu", "silu", "gelu", "sine"])
    return (abs(math.log10(lr) + 2.5) + 1.0 / (layers * width) +
            0.01 * len(activation))


def work(storage_url, study_name, end, counts):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = errors = 0
    try:
        study = optuna.load_study(study_name=study_name, storage=storage_url,
                                  sampler=optuna.samplers.RandomSampler())
        while time.time() < end:
            try:
                trial = study.ask()
                study.tell(trial, evaluate(trial))
                done += 1
            except optuna.exceptions.StorageInternalError:
                # "database is locked": SQLite's busy timeout ran out under
                # contention. A user would retry; so does this loop.
                errors += 1
    finally:
        counts.put((done, errors))  # main waits for every process


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--db", default="optuna-load.db")
    args = parser.parse_args()
    if os.path.exists(args.db):
        os.remove(args.db)
    storage_url = "sqlite:///" + os.path.abspath(args.db)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="load", storage=storage_url,
                        sampler=optuna.samplers.RandomSampler())
    counts = multiprocessing.Queue()
    start = time.time()
    end = start + args.seconds
    workers = [multiprocessing.Process(target=work,
                                       args=(storage_url, "load", end, counts))
               for _ in range(args.processes)]
    for p in workers:
        p.start()
    results = [counts.get() for _ in workers]
    total = sum(done for done, _ in results)
    errors = sum(e for _, e in results)
    for p in workers:
        p.join()
    elapsed = time.time() - start
    study = optuna.load_study(study_name="load", storage=storage_url)
    complete = len(study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    print(f"optuna {optuna.__version__}: {args.processes} processes, SQLite, "
          f"ask/tell, random sampler, {elapsed:.1f} s: {total} trials told, "
          f"{complete} complete in the study, {errors} ask/tell calls failed "
          f"with a storage error (retried)")
    print(f"RESULT trials_per_second={total / elapsed:.2f}")
    return 0 if complete == total else 2


if __name__ == "__main__":
    raise SystemExit(main())
