#!/usr/bin/env bash
# Generates the Python gRPC stubs of the evonas API into OUT_DIR, with
# Debian's protoc and grpc_python_plugin (packages protobuf-compiler and
# protobuf-compiler-grpc).
#   clients/python/generate_stubs.sh OUT_DIR
set -euo pipefail
out=${1:?usage: generate_stubs.sh OUT_DIR}
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$out"
protoc -I "$root/proto" \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  "$root"/proto/evonas/v1/*.proto
