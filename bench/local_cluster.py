"""A controller and local workers for the benchmarks: one process each, on
loopback, plaintext and without tokens (one user on one machine), in a
temporary directory that is removed afterwards.

    with LocalCluster(build, workers=2) as cluster:
        train, holdout = cluster.upload_task(task_dir)
        spec = cluster.task_spec(task_dir, train, holdout)
        ...

kill_controller() and restart_controller() crash and restart the controller
on the same address, database and data directory (bench/crash_loop.py).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"


class LocalCluster:
    def __init__(self, build, workers=2, worker_flags=(), controller_flags=()):
        self.build = build
        self.workers = workers
        self.worker_flags = list(worker_flags)
        self.controller_flags = list(controller_flags)
        self.procs = []

    def __enter__(self):
        self.work = tempfile.mkdtemp(prefix="evonas-bench-")
        stubs = os.path.join(self.work, "stubs")
        subprocess.run([os.path.join(repo, "clients/python/generate_stubs.sh"),
                        stubs], check=True)
        sys.path[:0] = [stubs, os.path.join(repo, "clients/python")]
        from evonas.v1 import types_pb2
        from evonas_client import Client
        self.types = types_pb2
        self.procs.append(None)  # the controller
        port = self._start_controller("127.0.0.1:0")
        self.address = "127.0.0.1:" + port
        for i in range(self.workers):
            self.procs.append(subprocess.Popen(
                [os.path.join(self.build, "worker/evonas-worker"),
                 f"--controller={self.address}", "--plaintext",
                 f"--worker-id=bench-{i}", "--threads=1",
                 f"--cache-dir={self.work}/cache"] + self.worker_flags,
                stderr=open(os.path.join(self.work, f"worker-{i}.log"), "w")))
        self.client = Client(self.address, plaintext=True)
        return self

    def _start_controller(self, listen):
        """Starts the controller as self.procs[0]; returns its port once it
        serves."""
        port_file = os.path.join(self.work, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        log = os.path.join(self.work, "controller.log")
        self.procs[0] = subprocess.Popen(
            [os.path.join(self.build, "server/evonas-controller"),
             f"--listen={listen}", f"--port-file={port_file}",
             f"--db={self.work}/evonas.db", f"--data-dir={self.work}/data",
             "--plaintext", "--no-auth"] + self.controller_flags,
            stderr=open(log, "a"))
        while not os.path.exists(port_file):
            if self.procs[0].poll() is not None:
                raise RuntimeError("evonas-controller exited; see " + log)
            time.sleep(0.005)
        return open(port_file).read().strip()

    def kill_controller(self):
        """SIGKILLs the controller: no shutdown of any kind."""
        self.procs[0].kill()
        self.procs[0].wait()

    def restart_controller(self):
        """Starts the controller again on the same address, database and
        data directory; returns once it serves."""
        self._start_controller(self.address)

    def __exit__(self, *exc):
        self.client.close()
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
        shutil.rmtree(self.work, ignore_errors=True)

    def upload_task(self, task_dir):
        """Uploads a task's training and holdout files (see
        ../shared/tasks/README.md); returns their Dataset messages."""
        task = load_task(task_dir)
        return (self.client.upload_dataset(os.path.join(task_dir,
                                                        task["train"])),
                self.client.upload_dataset(os.path.join(task_dir,
                                                        task["holdout"])))

    def upload_fashion(self):
        """Uploads Debian's Fashion-MNIST (dataset-fashion-mnist) as shipped,
        gzip IDX; returns the training and test Dataset messages."""
        def upload(prefix):
            return self.client.upload_dataset(
                os.path.join(FASHION, prefix + "-images-idx3-ubyte.gz"),
                format="idx",
                labels=os.path.join(FASHION, prefix + "-labels-idx1-ubyte.gz"))
        return upload("train"), upload("t10k")

    def task_spec(self, task_dir, train, holdout, seed=1):
        """An ExperimentSpec for the task: its columns, its requirements as
        hard constraints, the holdout file as the test data set."""
        task = load_task(task_dir)
        spec = self.types.ExperimentSpec(
            name=task["name"], dataset_id=train.id,
            test_dataset_id=holdout.id, input_columns=task["inputs"],
            output_columns=task["outputs"], seed=seed)
        req = task["requirements"]
        r = spec.requirements
        r.max_abs_error = req["max_abs_error"]
        r.within_tolerance = req["within_tolerance"]
        r.min_fraction_within = req["min_fraction_within"]
        r.max_model_bytes = req["max_model_bytes"]
        r.max_training_seconds = req["max_train_seconds"]
        return spec


# Strategy names on the benchmarks' command lines.
STRATEGIES = {"random": "STRATEGY_RANDOM",
              "evolution": "STRATEGY_REGULARIZED_EVOLUTION",
              "lemonade": "STRATEGY_LEMONADE", "nsga2": "STRATEGY_NSGA2"}


def describe(genome, types_pb2):
    """'32tanh-32tanh+r \\| 16sine': layers by width and activation (+r
    for a residual layer), stages separated by a Markdown-escaped |; a
    convolutional trunk first, as evonas names it ('c16k3relu.bn.max >
    64relu')."""
    def activation(a):
        return types_pb2.Activation.Name(a)[11:].lower()

    def layers(hidden):
        return "-".join(
            f"{l.width}{activation(l.activation)}"
            + ("+r" if l.residual else "") for l in hidden)

    def conv(l):
        name = f"c{l.channels}k{l.kernel_size}{activation(l.activation)}"
        name += "+" if l.residual else ""
        name += ".bn" if l.batch_norm else ""
        name += {types_pb2.POOLING_MAX: ".max",
                 types_pb2.POOLING_AVERAGE: ".avg"}.get(l.pooling, "")
        name += f".d{l.dropout:g}" if l.dropout else ""
        return name

    dense = " \\| ".join([layers(genome.hidden_layers)] +
                           [layers(s.hidden_layers)
                            for s in genome.residual_stages])
    if not genome.conv_layers:
        return dense
    return "-".join(conv(l) for l in genome.conv_layers) + " > " + dense


def load_task(task_dir):
    with open(os.path.join(task_dir, "task.json")) as f:
        return json.load(f)


INHERITANCE_HEADER = ("| config | morphism | children | median child/parent "
                      "| improved > 1% | on the front |\n"
                      "|---|---|---|---|---|---|")


def print_inheritance(candidates, front, types_pb2, error, config):
    """What inheritance bought, as rows under INHERITANCE_HEADER: per
    morphism kind, the inherited children that succeeded (promotions and
    duplicates excluded), the median ratio of a child's `error(metrics)` to
    its parent's, the share that improved on the parent by more than 1%,
    and the share on the final front."""
    by_id = {c.id: c for c in candidates}
    on_front = {c.id for c in front.candidates}
    succeeded = types_pb2.CANDIDATE_STATE_SUCCEEDED
    kinds = {}
    for c in candidates:
        parent = by_id.get(c.parent_id)
        if (c.state != succeeded or c.promoted_from or c.duplicate_of
                or parent is None or parent.state != succeeded):
            continue
        before, after = error(parent.metrics), error(c.metrics)
        if not before > 0:
            continue
        name = types_pb2.MorphismKind.Name(c.morphism.kind)[14:].lower()
        name += " (conv)" if c.morphism.conv else ""
        kinds.setdefault(name, []).append((after / before, c.id in on_front))
    for name, entries in sorted(kinds.items()):
        ratios = sorted(r for r, _ in entries)
        print(f"| {config} | {name} | {len(entries)} | "
              f"{ratios[len(ratios) // 2]:.3f} | "
              f"{sum(r < 0.99 for r in ratios) / len(ratios):.0%} | "
              f"{sum(f for _, f in entries) / len(entries):.0%} |")
