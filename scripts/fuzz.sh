#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang, ASan and UBSan in
# build-fuzz and runs each for SECONDS (default 60) from its seed corpus in
# tests/fuzz/<target>/. Fails on the first crash, leak, timeout or sanitizer
# report; the input that caused it is left in build-fuzz/findings/<target>/.
#   scripts/fuzz.sh [SECONDS] [TARGET...]    e.g. scripts/fuzz.sh 20 csv report
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(csv idx genome checkpoint experiment_spec report)
fi
build=build-fuzz

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVONAS_FUZZ=ON >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/%/_fuzz}"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for target in "${targets[@]}"; do
  # New inputs go to a scratch corpus, so the committed seeds stay small and
  # hand-written.
  corpus="$build/corpus/$target"
  findings="$build/findings/$target"
  mkdir -p "$corpus" "$findings"
  echo "== $target: ${seconds}s"
  "$build/fuzz/${target}_fuzz" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "tests/fuzz/$target" \
    2>"$build/$target.log" || {
      tail -n 60 "$build/$target.log"
      echo "fuzz: $target failed; input in $findings/" >&2
      exit 1
    }
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$build/$target.log" |
    tr -s ' \n' ' '
  echo
done
echo "fuzz: ${targets[*]}: no crashes, no sanitizer reports"
