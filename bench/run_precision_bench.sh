#!/usr/bin/env bash
# float32 against float64 training steps: the worker's kernels
# (`trainer_bench kernels`: MlpKernels::LossAndGradient plus an Adam step,
# --dtype float64 and float32) and eager PyTorch (`pytorch_steps.py steps`,
# float32 and float64) on data/hartmann3/train.csv (7,000 rows), one thread,
# for the networks of BENCHMARKS.md's table, side by side in one run.
#
#   bench/run_precision_bench.sh [BUILD_DIR]      (default: build)
#
# Environment: ROUNDS (default 5); each round runs the four measurements of
# every network one after the other, starting with a different one each
# round. NETS overrides the networks as in run_trainer_bench.sh. LOG keeps
# the raw key=value lines in that file. The summary gives medians over
# rounds and ratios of the same round's runs.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${1:-build}
bench="$build_dir/bench/trainer_bench"
python=/usr/bin/python3
data=data/hartmann3/train.csv
rounds=${ROUNDS:-5}
nets=${NETS:-"16 16,16 32,32,32 64,64,64 64,64,64:silu 64,64,64:gelu 128,128,128,128 256,256,256,256 256,256,256,256,256,256"}
if [[ -n ${LOG:-} ]]; then
  log=$LOG
  : >"$log"
else
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
fi

[[ -x "$bench" ]] || { echo "missing $bench; build target trainer_bench" >&2; exit 1; }
export OMP_NUM_THREADS=1

# Steps per measurement: about a second or two of the slowest of the four.
steps_for() {
  case "$1" in
    16) echo 800 ;;
    16,16) echo 400 ;;
    32,32,32) echo 200 ;;
    64,64,64) echo 60 ;;
    128,128,128,128) echo 20 ;;
    *) echo 8 ;;
  esac
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc --all) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); threads: 1; rounds: $rounds"
runs=(evonas:float64 evonas:float32 pytorch:float32 pytorch:float64)
for round in $(seq 1 "$rounds"); do
  for net in $nets; do
    widths=${net%%:*}
    activation=tanh
    [[ $net == *:* ]] && activation=${net#*:}
    common=(--data "$data" --widths "$widths" --activation "$activation" --steps "$(steps_for "$widths")")
    for i in 0 1 2 3; do
      run=${runs[$(( (i + round) % 4 ))]}
      dtype=${run#*:}
      if [[ $run == evonas:* ]]; then
        "$bench" kernels "${common[@]}" --dtype "$dtype"
      else
        "$python" bench/pytorch_steps.py steps "${common[@]}" --threads 1 --dtype "$dtype"
      fi | sed "s/^/round=$round /" >>"$log"
    done
  done
  echo "round $round done; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

"$python" bench/summarize_precision_bench.py "$log"
