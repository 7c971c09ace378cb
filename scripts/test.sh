#!/usr/bin/env bash
# Builds evonas and runs every test (unit, integration, end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
scripts/check_layering.sh
ctest --test-dir build --output-on-failure -j2 "$@"
