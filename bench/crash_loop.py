#!/usr/bin/python3
"""Crash-loop benchmark (issue 5): SIGKILL the controller again and again.

An experiment runs with several `evonas-worker --simulate` processes while
the controller is killed with SIGKILL --kills times at seeded random
moments (spread over the experiment's progress, a random 0-50 ms after a
chosen number of results is reached) and restarted after a random outage
of up to --max-downtime-ms on the same database, data directory and port.
tests/crash_test.cc checks the same properties with three kills in CI; this
runs many more and measures recovery.

Reported per restart: the time from starting the controller until it
serves (its port file appears) and until the first result is accepted
after it (the earliest `finished_at` of a reported candidate after the
restart). At the end it checks what a lost or doubled result would break:
the experiment completes; every candidate is SUCCEEDED exactly once, with
one sequence number each; every trained candidate was leased once (an
acknowledged lease or result lost in a crash would show as a second
attempt); every model downloads with the size and SHA-256 reported; the
database passes PRAGMA integrity_check; no temporary blob is left.

    /usr/bin/python3 bench/crash_loop.py BUILD_DIR [--kills 20] [--workers 4]
        [--candidates 1500] [--seed 1]
Exit status 0 when every check passes.
"""

import argparse
import hashlib
import math
import os
import random
import sqlite3
import statistics
import sys
import time

import grpc

from local_cluster import LocalCluster


def smooth_csv(rows):
    """y = sin(3 x1) + x2 * x3 on [0,1]^3, as tests/crash_test.cc uses."""
    lines = ["x1,x2,x3,y"]
    for i in range(rows):
        x1, x2, x3 = ((i * 0.6180339887) % 1, (i * 0.7548776662) % 1,
                      (i * 0.5698402910) % 1)
        lines.append(f"{x1!r},{x2!r},{x3!r},{math.sin(3 * x1) + x2 * x3!r}")
    return "\n".join(lines) + "\n"


class Poller:
    """GetExperiment on a channel that reconnects within 200 ms of a restart
    (gRPC's default backoff would wait seconds)."""

    def __init__(self, address, experiment_id):
        from evonas.v1 import evonas_service_pb2, evonas_service_pb2_grpc
        self.pb2 = evonas_service_pb2
        self.channel = grpc.insecure_channel(address, options=[
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.min_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 200)])
        self.stub = evonas_service_pb2_grpc.EvonasServiceStub(self.channel)
        self.experiment_id = experiment_id

    def experiment(self):
        """The experiment, or None while the controller does not answer."""
        try:
            return self.stub.GetExperiment(
                self.pb2.GetExperimentRequest(experiment_id=self.experiment_id),
                timeout=5)
        except grpc.RpcError:
            return None

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            e = self.experiment()
            if e is not None and predicate(e):
                return e
            time.sleep(0.02)
        raise TimeoutError(f"no {what} within {timeout} s")


def to_seconds(timestamp):
    return timestamp.seconds + timestamp.nanos / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("build", help="build directory (evonas-controller, "
                                      "evonas-worker)")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=1500)
    parser.add_argument("--max-downtime-ms", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = []

    def check(ok, message):
        if not ok:
            failures.append(message)
            print("FAIL:", message)

    start = time.monotonic()
    with LocalCluster(args.build, workers=args.workers,
                      worker_flags=["--simulate"],
                      controller_flags=["--lease-seconds=20",
                                        "--heartbeat-seconds=1"]) as cluster:
        from evonas.v1 import evonas_service_pb2, types_pb2
        csv_path = os.path.join(cluster.work, "smooth.csv")
        with open(csv_path, "w") as f:
            f.write(smooth_csv(400))
        dataset = cluster.client.upload_dataset(csv_path)
        spec = types_pb2.ExperimentSpec(
            name="crash loop", dataset_id=dataset.id,
            input_columns=["x1", "x2", "x3"], output_columns=["y"], seed=11)
        spec.budget.max_candidates = args.candidates
        space = spec.search_space
        space.min_depth, space.max_depth = 1, 4
        space.min_width, space.max_width = 4, 64
        experiment = cluster.client.create_experiment(spec)
        poller = Poller(cluster.address, experiment.id)
        print(f"crash_loop: seed {args.seed}, {args.workers} simulated "
              f"workers, {args.candidates} candidates, {args.kills} kills; "
              f"load average {os.getloadavg()[0]:.1f}")

        # The result counts at which to kill, spread over the experiment.
        thresholds = sorted(rng.sample(
            range(args.candidates // 20, args.candidates * 9 // 10),
            args.kills))
        restarts = []  # per kill: dict of times and counts
        for k, threshold in enumerate(thresholds):
            seen = poller.wait(
                lambda e: e.counts.succeeded >= threshold or
                e.state != types_pb2.EXPERIMENT_STATE_RUNNING,
                120, f"{threshold} results before kill {k + 1}")
            check(seen.state == types_pb2.EXPERIMENT_STATE_RUNNING,
                  f"kill {k + 1}: the experiment ended before it "
                  "(raise --candidates)")
            time.sleep(rng.uniform(0, 0.05))
            before = poller.experiment()
            cluster.kill_controller()
            killed_at = time.time()
            downtime = rng.uniform(0, args.max_downtime_ms / 1000)
            time.sleep(downtime)
            restarted_at = time.time()
            cluster.restart_controller()
            serving = time.time() - restarted_at
            succeeded_before = before.counts.succeeded if before else 0
            # Results accepted after `before` was read but before the kill
            # show only now: count from the restarted controller's first
            # answer, so that the next kill follows a result it accepted.
            answer = poller.wait(lambda e: True, 120,
                                 f"answer after restart {k + 1}")
            baseline = answer.counts.succeeded
            poller.wait(lambda e: e.counts.succeeded > baseline or
                        e.state != types_pb2.EXPERIMENT_STATE_RUNNING,
                        120, f"accepted result after restart {k + 1}")
            restarts.append(dict(killed_at=killed_at, downtime=downtime,
                                 restarted_at=restarted_at, serving=serving,
                                 succeeded_before=succeeded_before))

        final = poller.wait(
            lambda e: e.state != types_pb2.EXPERIMENT_STATE_RUNNING, 600,
            "end of the experiment")
        check(final.state == types_pb2.EXPERIMENT_STATE_COMPLETED,
              f"experiment ended {types_pb2.ExperimentState.Name(final.state)}")
        candidates = list(poller.stub.ListCandidates(
            evonas_service_pb2.ListCandidatesRequest(
                experiment_id=experiment.id), timeout=60).candidates)

        # Every candidate once, succeeded, and leased once if trained.
        by_id = {c.id: c for c in candidates}
        check(len(candidates) == args.candidates,
              f"{len(candidates)} candidates, not {args.candidates}")
        check(sorted(c.sequence for c in candidates) ==
              list(range(len(candidates))), "sequences are not 0..n-1 once each")
        trained = [c for c in candidates if not c.duplicate_of]
        for c in candidates:
            check(c.state == types_pb2.CANDIDATE_STATE_SUCCEEDED,
                  f"{c.id} is {types_pb2.CandidateState.Name(c.state)}")
            if c.duplicate_of:
                check(c.duplicate_of in by_id,
                      f"{c.id} copies unknown {c.duplicate_of}")
            else:
                check(c.attempts == 1, f"{c.id} was leased {c.attempts} times")
        # Every model downloads intact (small ones come from the database,
        # larger ones from blob files).
        for c in trained:
            model, sha = b"", None
            for chunk in poller.stub.DownloadModel(
                    evonas_service_pb2.DownloadModelRequest(candidate_id=c.id),
                    timeout=60):
                sha = sha or chunk.sha256
                model += chunk.chunk
            check(len(model) == c.metrics.model_bytes and
                  hashlib.sha256(model).hexdigest() == sha,
                  f"{c.id}: model does not match its report")

        # Recovery: the first result accepted after each restart.
        finished = sorted(to_seconds(c.finished_at) for c in trained)
        recoveries = []
        for k, r in enumerate(restarts):
            until = (restarts[k + 1]["killed_at"] if k + 1 < len(restarts)
                     else math.inf)
            after = [t for t in finished if r["restarted_at"] <= t < until]
            r["recovery"] = after[0] - r["restarted_at"] if after else None
            check(after, f"restart {k + 1}: no result accepted before the "
                         "next kill")
            if after:
                recoveries.append(r["recovery"])

        poller.channel.close()
        cluster.client.close()
        cluster.procs[0].terminate()
        check(cluster.procs[0].wait(timeout=60) == 0,
              "controller did not shut down cleanly")
        db = sqlite3.connect(os.path.join(cluster.work, "evonas.db"))
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        check(integrity == [("ok",)], f"integrity_check: {integrity}")
        rows, sequences, succeeded = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT sequence), SUM(state = ?) FROM "
            "candidates WHERE experiment_id = ?",
            (types_pb2.CANDIDATE_STATE_SUCCEEDED, experiment.id)).fetchone()
        check(rows == sequences == succeeded == args.candidates,
              f"database: {rows} rows, {sequences} sequences, {succeeded} "
              "succeeded")
        inline = db.execute("SELECT COUNT(*) FROM inline_blobs").fetchone()[0]
        db.close()
        tmp = os.path.join(cluster.work, "data", "blobs", "tmp")
        check(not os.path.isdir(tmp) or not os.listdir(tmp),
              "temporary blobs left behind")
        # A worker whose acknowledgement was lost in a kill reports again and
        # is told that the result is in; any other refusal is a failure.
        refused = 0
        for i in range(args.workers):
            with open(os.path.join(cluster.work, f"worker-{i}.log")) as f:
                for line in f:
                    if " event=report_refused " not in line:
                        continue
                    refused += 1
                    check("already reported" in line,
                          f"worker-{i}: {line.strip()}")

    total = time.monotonic() - start
    print("| kill | results before | down (ms) | serving after (ms) | "
          "first accepted result after (ms) |")
    print("|---|---|---|---|---|")
    for k, r in enumerate(restarts):
        recovery = ("-" if r["recovery"] is None
                    else f"{r['recovery'] * 1000:.0f}")
        print(f"| {k + 1} | {r['succeeded_before']} | "
              f"{r['downtime'] * 1000:.0f} | {r['serving'] * 1000:.0f} | "
              f"{recovery} |")
    print(f"crash_loop: {len(restarts)} kills; {len(candidates)} candidates "
          f"({len(trained)} trained, {len(candidates) - len(trained)} "
          f"copies of equal genomes), {inline} small files in the database; "
          f"{refused} reports refused as repeats (acknowledgement lost in a "
          f"kill, result kept); {total:.1f} s in all")
    if recoveries:
        print(f"crash_loop: first accepted result after a restart: median "
              f"{statistics.median(recoveries) * 1000:.0f} ms, max "
              f"{max(recoveries) * 1000:.0f} ms, total "
              f"{sum(recoveries) * 1000:.0f} ms; serving after median "
              f"{statistics.median(r['serving'] for r in restarts) * 1000:.0f}"
              " ms")
    # Every check above is what a lost or doubled result would break.
    print(f"RESULT kills={len(restarts)} failures={len(failures)}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
