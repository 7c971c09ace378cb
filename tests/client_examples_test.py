#!/usr/bin/env python3
"""Runs the Python and Node.js client examples against a real controller and
worker over TLS with bearer tokens (a dev-cert pair, a client and a worker
token), and checks that the controller's standard health and reflection
services answer without a token while its API refuses a call without one.
The Node.js example runs where node and npm are installed (its packages come
from the npm registry into WORK_DIR).

    client_examples_test.py CONTROLLER_BIN WORKER_BIN WORK_DIR
"""

import gzip
import json
import os
import shutil
import signal
import subprocess
import struct
import sys
import time

repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
controller_bin, worker_bin, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
stubs = os.path.join(work, "stubs")
subprocess.run([os.path.join(repo, "clients/python/generate_stubs.sh"), stubs],
               check=True)
# Stubs of the standard health and reflection protos, for the checks below.
# They go under a package of their own: "grpc" is grpcio's package.
std = os.path.join(stubs, "grpc_std")
os.makedirs(std)
for proto in ("health/v1/health.proto", "reflection/v1alpha/reflection.proto"):
    shutil.copy(os.path.join("/usr/share/grpc-proto/grpc", proto), std)
subprocess.run(["protoc", f"-I{stubs}", f"--python_out={stubs}",
                f"--grpc_python_out={stubs}",
                "--plugin=protoc-gen-grpc_python=" +
                shutil.which("grpc_python_plugin"),
                "grpc_std/health.proto", "grpc_std/reflection.proto"],
               check=True)
sys.path[:0] = [stubs, os.path.join(repo, "clients/python")]

import grpc  # noqa: E402
from grpc_std import health_pb2, health_pb2_grpc  # noqa: E402
from grpc_std import reflection_pb2, reflection_pb2_grpc  # noqa: E402
from evonas.v1 import evonas_service_pb2, types_pb2  # noqa: E402
from evonas_client import Client  # noqa: E402

port_file = os.path.join(work, "port")
db = f"--db={work}/evonas.db"
certs = os.path.join(work, "certs")
subprocess.run([controller_bin, "dev-cert", f"--out={certs}"], check=True)
ca = os.path.join(certs, "cert.pem")


def create_token(*args):
    return subprocess.run([controller_bin, "token", "create", db, *args],
                          check=True, capture_output=True,
                          text=True).stdout.strip()


client_token = create_token("--kind=client", "--tenant=examples")
worker_token = create_token("--kind=worker")
logs = [open(os.path.join(work, n), "w") for n in ("controller.log", "worker.log")]
controller = subprocess.Popen(
    [controller_bin, "--listen=127.0.0.1:0", f"--port-file={port_file}", db,
     f"--data-dir={work}/data", f"--tls-cert={ca}",
     f"--tls-key={os.path.join(certs, 'key.pem')}"], stderr=logs[0])
processes = [controller]
try:
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file) and time.monotonic() < deadline:
        time.sleep(0.05)
    address = "localhost:" + open(port_file).read().strip()
    processes.append(subprocess.Popen(
        [worker_bin, f"--controller={address}", f"--cache-dir={work}/cache",
         f"--tls-ca={ca}"],
        stderr=logs[1], env=dict(os.environ, EVONAS_TOKEN=worker_token)))

    channel = grpc.secure_channel(
        address, grpc.ssl_channel_credentials(open(ca, "rb").read()))
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING, health
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
        timeout=10)
    services = {s.name for r in responses
                for s in r.list_services_response.service}
    for wanted in ("evonas.v1.EvonasService", "evonas.v1.WorkerService",
                   "grpc.health.v1.Health"):
        assert wanted in services, (wanted, services)
    print("health SERVING; reflection lists", sorted(services))
    try:
        Client(address, token="", tls_ca=ca).stub.ListDatasets(
            evonas_service_pb2.ListDatasetsRequest(), timeout=10)
        raise AssertionError("ListDatasets without a token succeeded")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
        print("the API refuses a call without a token:", e.details())

    # Images from Python: a gzipped IDX pair (2 images of 2x3), uploaded
    # with format="idx" and described as such.
    images = os.path.join(work, "images-idx3-ubyte.gz")
    labels = os.path.join(work, "labels-idx1-ubyte.gz")
    with gzip.open(images, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(range(12)))
    with gzip.open(labels, "wb") as f:
        f.write(struct.pack(">II", 0x801, 2) + bytes([7, 1]))
    dataset = Client(address, token=client_token, tls_ca=ca).upload_dataset(
        images, format="idx", labels=labels)
    assert dataset.format == types_pb2.DATASET_FORMAT_IDX, dataset
    assert list(dataset.image_shape) == [2, 3], dataset
    assert dataset.row_count == 2 and dataset.columns[-1] == "label", dataset
    print("uploaded images from Python:", dataset.row_count, "images of",
          "x".join(map(str, dataset.image_shape)))

    # A tiny search: this checks the clients, not the search.
    flow = ["--controller", address, "--tls-ca", ca,
            "--train", os.path.join(repo, "data/hartmann3/train.csv"),
            "--holdout", os.path.join(repo, "data/hartmann3/holdout.csv"),
            "--budget-candidates", "2", "--max-adam-steps", "150",
            "--max-width", "16", "--max-abs-error", "1"]
    env = dict(os.environ, EVONAS_TOKEN=client_token, PYTHONPATH=os.pathsep.join(
        [stubs, os.path.join(repo, "clients/python")]))
    subprocess.run(
        [sys.executable, os.path.join(repo, "clients/python/example.py")] + flow,
        check=True, env=env, timeout=600)
    passed = 2

    if shutil.which("node") and shutil.which("npm"):
        node_dir = os.path.join(work, "node")
        os.makedirs(node_dir)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(repo, "clients/node", name), node_dir)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"],
                       cwd=node_dir, check=True, timeout=600)
        model = os.path.join(work, "node-best.pt")
        subprocess.run(
            ["node", os.path.join(repo, "clients/node/example.js")] + flow +
            ["--output", model],
            check=True, timeout=600,
            env=dict(os.environ, EVONAS_TOKEN=client_token,
                     NODE_PATH=os.path.join(node_dir, "node_modules")))
        assert os.path.getsize(model) > 0
        # The same gzipped IDX pair from Node: the same data set comes back.
        script = ("const {Client} = require(process.argv[1]);"
                  "new Client(process.argv[2], {tlsCa: process.argv[3]})"
                  ".uploadDataset(process.argv[4], {format: 'idx', "
                  "labels: process.argv[5]})"
                  ".then((d) => console.log(JSON.stringify(d)))"
                  ".catch((e) => { console.error(e); process.exit(1); });")
        uploaded = subprocess.run(
            ["node", "-e", script, os.path.join(repo, "clients/node/evonas_client.js"),
             address, ca, images, labels],
            check=True, capture_output=True, text=True, timeout=120,
            env=dict(os.environ, EVONAS_TOKEN=client_token,
                     NODE_PATH=os.path.join(node_dir, "node_modules")))
        node_dataset = json.loads(uploaded.stdout)
        assert node_dataset["id"] == dataset.id, node_dataset
        assert node_dataset["format"] == "DATASET_FORMAT_IDX", node_dataset
        assert node_dataset["image_shape"] == [2, 3], node_dataset
        print("uploaded the same images from Node.js")
        passed += 1
    else:
        print("node or npm not installed: Node.js example skipped")
    print(f"{passed} passed, 0 failed")
finally:
    for p in reversed(processes):
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
