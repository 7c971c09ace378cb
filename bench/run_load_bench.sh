#!/usr/bin/env bash
# Load benchmark (issue 5): evonas with WORKERS simulated workers against
# Optuna's SQLite storage with PROCESSES ask/tell processes, one after the
# other in the same run, and the ratio of their trials per second.
#   bench/run_load_bench.sh BUILD_DIR
# Environment: WORKERS (1000), SECONDS_EACH (60), PROCESSES (16), CHANNELS (16),
# PYTHON (/usr/bin/python3: Debian's, which has python3-optuna),
# CONTROLLER_FLAGS (further evonas-controller flags, e.g.
# "--inline-blob-max-bytes=0" to store every model as a file).
set -euo pipefail
build=${1:?usage: bench/run_load_bench.sh BUILD_DIR}
workers=${WORKERS:-1000}
seconds=${SECONDS_EACH:-60}
processes=${PROCESSES:-16}
channels=${CHANNELS:-16}
python=${PYTHON:-/usr/bin/python3}
read -r -a controller_flags <<<"${CONTROLLER_FLAGS:-}"
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/evonas-load.XXXXXX)
controller_pid=
cleanup() {
  if [[ -n "$controller_pid" ]]; then kill "$controller_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'); load:$(uptime | sed 's/.*load average//')"
echo "== Optuna: $processes processes, ${seconds} s"
optuna_out=$("$python" "$here/optuna_load.py" --processes "$processes" \
  --seconds "$seconds" --db "$dir/optuna.db")
echo "$optuna_out"
optuna_rate=$(sed -n 's/^RESULT trials_per_second=//p' <<<"$optuna_out")

echo "== evonas: $workers workers, ${seconds} s, flags: ${controller_flags[*]:-none}; load:$(uptime | sed 's/.*load average//')"
"$build/server/evonas-controller" --listen=127.0.0.1:0 \
  --port-file="$dir/port" --db="$dir/evonas.db" --data-dir="$dir/data" \
  --plaintext --no-auth "${controller_flags[@]}" 2>"$dir/controller.log" &
controller_pid=$!
for _ in $(seq 100); do [[ -s "$dir/port" ]] && break; sleep 0.1; done
port=$(cat "$dir/port")
status=0
evonas_out=$("$build/bench/load_bench" --controller="127.0.0.1:$port" \
  --controller-pid="$controller_pid" --workers="$workers" \
  --channels="$channels" --seconds="$seconds") || status=$?
echo "$evonas_out"
evonas_rate=$(sed -n 's/^RESULT .* trials_per_second=//p' <<<"$evonas_out")
echo "== after: load:$(uptime | sed 's/.*load average//')"
"$python" -c "print(f'ratio evonas / optuna: {$evonas_rate / $optuna_rate:.0f}x')"
exit "$status"
