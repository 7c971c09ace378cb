#!/usr/bin/env bash
# One worker per core, or one worker with two threads? Trains the first
# COUNT (default 10) genomes that random search proposes over the default
# search space, as a worker trains them (data/hartmann3, 20% validation rows,
# the holdout file as test set, 200 L-BFGS iterations, metrics and export):
#   A: two processes with one thread each, side by side, both training the
#      same list (two workers on two cores);
#   B: one process with two threads.
# Prints the trained candidates per hour of each, per repetition.
#
#   bench/run_threads_bench.sh [BUILD_DIR]     (default: build)
#
# REPS (default 3) repetitions, each A then B. The machine is shared: a
# repetition's A and B ran minutes apart, so read every repetition.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
bench="$build_dir/bench/trainer_bench"
count=${COUNT:-10}
reps=${REPS:-3}
[[ -x "$bench" ]] || { echo "missing $bench; build target trainer_bench" >&2; exit 1; }
args=(genomes --data data/hartmann3/train.csv --test data/hartmann3/holdout.csv
      --count "$count" --seed 1)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores; date: $(date -u +%Y-%m-%dT%H:%MZ); $count genomes"
echo "| repetition | A: 2 processes x 1 thread | B: 1 process x 2 threads | A / B | load average before A, B |"
echo "|---|---|---|---|---|"
for rep in $(seq 1 "$reps"); do
  load_a=$(cut -d' ' -f1 /proc/loadavg)
  OMP_NUM_THREADS=1 "$bench" "${args[@]}" --threads 1 >"$out/a1" &
  first=$!
  OMP_NUM_THREADS=1 "$bench" "${args[@]}" --threads 1 >"$out/a2" &
  second=$!
  wait "$first" "$second"
  load_b=$(cut -d' ' -f1 /proc/loadavg)
  OMP_NUM_THREADS=2 "$bench" "${args[@]}" --threads 2 >"$out/b"
  seconds() { sed -n 's/^mode=genomes .*wall_seconds=\([0-9.]*\).*/\1/p' "$1"; }
  /usr/bin/python3 - "$count" "$(seconds "$out/a1")" "$(seconds "$out/a2")" \
      "$(seconds "$out/b")" "$rep" "$load_a" "$load_b" <<'EOF'
import sys
count, a1, a2, b = int(sys.argv[1]), *map(float, sys.argv[2:5])
rep, load_a, load_b = sys.argv[5:8]
a = 3600 * (count / a1 + count / a2)  # two workers' rates add up
b = 3600 * count / b
print(f"| {rep} | {a:.0f} candidates/h | {b:.0f} candidates/h | {a / b:.2f} "
      f"| {load_a}, {load_b} |")
EOF
done
