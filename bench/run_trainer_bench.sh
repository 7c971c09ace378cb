#!/usr/bin/env bash
# Training steps per second of the worker's trainer against an eager PyTorch
# loop on the same model, data (data/hartmann3/train.csv: 7,000 rows, 3
# inputs, 1 output), dtype (float64) and thread count, run side by side in
# one invocation, plus one core's DGEMM peak measured in the same run.
#
#   bench/run_trainer_bench.sh [BUILD_DIR]      (default: build)
#
# Environment: ROUNDS (default 3) rounds; each round runs every network with
# both implementations, alternating which goes first. THREADS (default 1)
# intra-op threads for both. NETS overrides the networks: hidden widths,
# optionally with an activation other than tanh ("16 16,16 64,64,64:gelu").
# The machine is shared and noisy: compare the ratios of one run, and read
# the min..max spread over rounds before trusting a difference.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
bench="$build_dir/bench/trainer_bench"
python=/usr/bin/python3
data=data/hartmann3/train.csv
rounds=${ROUNDS:-3}
threads=${THREADS:-1}
nets=${NETS:-"16 16,16 32,32,32 64,64,64 64,64,64:silu 64,64,64:gelu 128,128,128,128 256,256,256,256 256,256,256,256,256,256"}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

[[ -x "$bench" ]] || { echo "missing $bench; build target trainer_bench" >&2; exit 1; }
export OMP_NUM_THREADS=$threads

# Adam steps per measurement (trainer_bench trains this many and twice this
# many steps and times the difference).
steps_for() {
  case "$1" in
    16) echo 400 ;;
    16,16) echo 250 ;;
    32,32,32) echo 120 ;;
    64,64,64) echo 40 ;;
    128,128,128,128) echo 12 ;;
    *) echo 6 ;;
  esac
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); threads: $threads; rounds: $rounds"
for round in $(seq 1 "$rounds"); do
  "$bench" peak --threads "$threads" --seconds 1 | sed "s/^/round=$round /" >>"$log"
  "$python" bench/pytorch_steps.py peak --threads "$threads" --seconds 1 |
    sed "s/^/round=$round /" >>"$log"
  for net in $nets; do
    widths=${net%%:*}
    activation=tanh
    [[ $net == *:* ]] && activation=${net#*:}
    steps=$(steps_for "$widths")
    common=(--data "$data" --widths "$widths" --activation "$activation" --steps "$steps" --threads "$threads")
    ours=("$bench" steps "${common[@]}")
    theirs=("$python" bench/pytorch_steps.py steps "${common[@]}")
    if (( round % 2 )); then order=(ours theirs); else order=(theirs ours); fi
    for who in "${order[@]}"; do
      if [[ $who == ours ]]; then "${ours[@]}"; else "${theirs[@]}"; fi |
        sed "s/^/round=$round /" >>"$log"
    done
  done
  echo "round $round done" >&2
done

"$python" bench/summarize_trainer_bench.py "$log"
