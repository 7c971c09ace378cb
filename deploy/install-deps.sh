#!/usr/bin/env bash
# Installs every build and run dependency of evonas from Debian bookworm.
# The README, .ci/run and deploy/docker/Dockerfile all call this one script,
# so the three can never drift apart.
#   deploy/install-deps.sh          build + test dependencies
#   deploy/install-deps.sh runtime  only what the binaries need at run time
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

runtime_packages=(
  libtorch1.13 libgrpc++1.51 libprotobuf32 libabsl20220623 libsqlite3-0 libssl3
  libonnx1 libgomp1
  # Without OpenBLAS, Debian's libtorch falls back to the reference BLAS and
  # trains about 4x slower.
  libopenblas0-openmp
  # The controller's Prometheus endpoint (--metrics-address).
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0
  # Online backups of the controller's database inside the container
  # (README, "Backing up the database").
  sqlite3
)
build_packages=(
  build-essential cmake ninja-build pkg-config
  clang  # libFuzzer, ASan and UBSan for scripts/fuzz.sh (fuzz/)
  libtorch-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libssl-dev libcli11-dev libgtest-dev libgmock-dev
  zlib1g-dev dataset-fashion-mnist  # .gz uploads; the IDX reader's test data
  libopenblas0-openmp
  # cblas.h and the link library for the trainer's own kernels
  # (worker/model/mlp_kernels.cc), on the same OpenMP OpenBLAS LibTorch uses.
  libopenblas-openmp-dev
  # ONNX export (C++ protobuf classes and checker).
  libonnx-dev
  # gRPC health and reflection protos.
  grpc-proto
  # The controller's Prometheus endpoint (server/observability).
  prometheus-cpp-dev
  # scripts/check_deploy.sh parses the Kubernetes and compose YAML.
  python3-yaml
  # Tests check exported models in independent runtimes (PyTorch, ONNX's
  # checker, OpenCV's dnn) and run the Python client against a controller.
  python3 python3-torch python3-onnx python3-opencv python3-grpcio
  python3-protobuf
  # bench/optuna_load.py: the shared-study baseline of the load benchmark.
  python3-optuna
  # A test opens the HTML report in headless Chromium and screenshots it;
  # DejaVu is the font it is drawn in.
  chromium fonts-dejavu-core
)

if [[ "${1:-}" == "runtime" ]]; then
  packages=("${runtime_packages[@]}")
else
  packages=("${build_packages[@]}")
fi

apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
