#!/usr/bin/env python3
"""Peak memory of the real evonas-worker on fixed Fashion-MNIST candidates.

A minimal controller in this process (WorkerService only, in Python) hands
one evonas-worker a fixed list of leases: the same genome and seed `--runs`
times, first an MLP and then a small convolutional network (each genome in a
fresh worker process, so the first lease fetches and parses the data sets and
the later ones find them cached). It serves the IDX data sets exactly as the
controller stores them (uncompressed images followed by labels) and prints,
per lease, Metrics.peak_memory_bytes (VmHWM while the worker built the job
and trained it), the training seconds and the model's SHA-256 (the same
SHA-256 before and after a change means the same trained model bits).

    bench/worker_memory.py --build /tmp/mem/build --runs 2

Uses /usr/bin/python3 (grpcio and protobuf) and Debian's protoc for the stubs.
"""

import argparse
import concurrent.futures
import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
CHUNK = 1 << 20


def idx_dataset(prefix):
    with gzip.open(os.path.join(FASHION, prefix + "-images-idx3-ubyte.gz")) as f:
        images = f.read()
    with gzip.open(os.path.join(FASHION, prefix + "-labels-idx1-ubyte.gz")) as f:
        labels = f.read()
    data = images + labels
    return hashlib.sha256(data).hexdigest(), data


def genomes(t, adam_steps):
    mlp = t.Genome()
    for width in (256, 128):
        mlp.hidden_layers.add(width=width, activation=t.ACTIVATION_RELU)
    mlp.training.learning_rate = 1e-3
    mlp.training.adam_steps = adam_steps
    mlp.training.batch_size = 256

    conv = t.Genome()
    for channels in (8, 16):
        conv.conv_layers.add(channels=channels, kernel_size=3,
                             activation=t.ACTIVATION_RELU,
                             pooling=t.POOLING_MAX)
    conv.hidden_layers.add(width=64, activation=t.ACTIVATION_RELU)
    conv.training.learning_rate = 1e-3
    conv.training.adam_steps = adam_steps
    conv.training.batch_size = 256
    return [("MLP 784-256-128-10", mlp), ("conv 8c3p-16c3p-64", conv)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(repo, "build"))
    parser.add_argument("--runs", type=int, default=2,
                        help="leases per genome (the first fetches the data)")
    parser.add_argument("--adam-steps", type=int, default=200)
    parser.add_argument("--only", choices=["mlp", "conv"], default=None)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="evonas-memory-")
    stubs = os.path.join(work, "stubs")
    subprocess.run([os.path.join(repo, "clients/python/generate_stubs.sh"),
                    stubs], check=True)
    sys.path[:0] = [stubs]
    import grpc
    from evonas.v1 import types_pb2 as t
    from evonas.v1 import worker_service_pb2 as w
    from evonas.v1 import worker_service_pb2_grpc as wg

    datasets = dict([idx_dataset("train"), idx_dataset("t10k")])
    train_id, test_id = list(datasets)

    class Controller(wg.WorkerServiceServicer):
        def __init__(self, leases):
            self.leases = list(leases)
            self.results = []
            self.done = threading.Event()
            self.lock = threading.Lock()
            self.idle_rss = None
            self.pid = None

        def LeaseWork(self, request, context):
            with self.lock:
                if self.idle_rss is None:
                    self.idle_rss = rss(self.pid)
                if self.leases:
                    return w.LeaseWorkResponse(lease=self.leases.pop(0))
            return w.LeaseWorkResponse(retry_after_seconds=0.5)

        def Heartbeat(self, request, context):
            return w.HeartbeatResponse()

        def ReleaseLease(self, request, context):
            return w.ReleaseLeaseResponse()

        def FetchDataset(self, request, context):
            data = datasets[request.dataset_id]
            for offset in range(0, len(data), CHUNK):
                yield w.FetchDatasetResponse(
                    chunk=data[offset:offset + CHUNK],
                    total_bytes=len(data) if offset == 0 else 0)

        def ReportResult(self, request_iterator, context):
            result = next(request_iterator).result
            for _ in request_iterator:
                pass
            with self.lock:
                self.results.append(result)
                if not self.leases and len(self.results) == self.expected:
                    self.done.set()
            return w.ReportResultResponse(feasible=True)

    print("| genome | lease | peak memory MB | training s | validation "
          "accuracy | model SHA-256 (first 16) |")
    print("|---|---|---|---|---|---|")
    idle = {}
    for name, genome in genomes(t, args.adam_steps):
        if args.only and not name.lower().startswith(args.only):
            continue
        leases = []
        for run in range(args.runs):
            lease = w.Lease(
                lease_id=f"lease-{run}", candidate_id=f"{name}-{run}",
                experiment_id="memory", genome=genome, dataset_id=train_id,
                test_dataset_id=test_id, output_columns=["label"],
                within_tolerance=1e-6, seed=7, heartbeat_interval_seconds=5,
                dataset_format=t.DATASET_FORMAT_IDX,
                task=t.TASK_CLASSIFICATION, class_count=10,
                image_shape=[28, 28], step_fraction=1.0)
            lease.input_columns.extend(f"pixel_{i}" for i in range(784))
            lease.validation_split.seed = 1
            lease.validation_split.fraction = 0.2
            leases.append(lease)
        controller = Controller(leases)
        controller.expected = args.runs
        server = grpc.server(concurrent.futures.ThreadPoolExecutor(4))
        wg.add_WorkerServiceServicer_to_server(controller, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        log = open(os.path.join(work, "worker.log"), "a")
        worker = subprocess.Popen(
            [os.path.join(args.build, "worker/evonas-worker"),
             f"--controller=127.0.0.1:{port}", "--plaintext",
             "--worker-id=memory", "--threads=1",
             f"--cache-dir={work}/cache-{len(name)}"], stderr=log)
        controller.pid = worker.pid
        try:
            if not controller.done.wait(timeout=3600):
                sys.exit("timed out; see " + log.name)
        finally:
            worker.terminate()
            worker.wait()
            server.stop(0)
        idle[name] = controller.idle_rss
        for i, r in enumerate(controller.results):
            if r.failure_reason:
                sys.exit(f"{name}: {r.failure_reason}")
            m = r.metrics
            print(f"| {name} | {i + 1} | {m.peak_memory_bytes / 1e6:.0f} | "
                  f"{m.training_seconds:.1f} | "
                  f"{100 * m.validation.accuracy:.2f}% | "
                  f"{r.model_sha256[:16]} |")
        sys.stdout.flush()
    for name, value in idle.items():
        print(f"\n{name}: the idle worker (after its latency calibration, "
              f"before the first lease) was resident with {value / 1e6:.0f} MB")


def rss(pid):
    """VmRSS of process `pid` in bytes (0 if unknown)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    main()
