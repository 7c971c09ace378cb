#!/usr/bin/env bash
# Keeps the layering of STYLE.md true: LibTorch only in worker/model/,
# SQLite only in server/store/, gRPC never in common/ (benchmarks may
# drive the real services).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() {  # pattern, allowed-prefix, description
  local hits
  hits=$(git grep -lE "$1" -- '*.h' '*.cc' | grep -vE "^$2" || true)
  if [[ -n "$hits" ]]; then
    echo "layering: $3 outside $2:" $hits >&2
    fail=1
  fi
}
check '#include *[<"](torch/|ATen/|c10/)' 'worker/model/' 'LibTorch'
check '#include *[<"]sqlite3\.h' 'server/store/' 'SQLite'
check '#include *[<"]grpcpp/' '(server|worker|client|tests|bench)/' 'gRPC'
exit $fail
