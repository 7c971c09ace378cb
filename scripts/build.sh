#!/usr/bin/env bash
# Configures and builds evonas into ./build (Release, Ninja, two jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 "$@"
