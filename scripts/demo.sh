#!/usr/bin/env bash
# The demo: builds evonas, starts a controller on an embedded SQLite
# database and local workers, searches networks (LEMONADE with inheritance,
# residual layers and up to two stages) for the bundled hartmann3
# task (requirements from data/hartmann3/task.json), prints the Pareto front
# downloads the most accurate model (TorchScript and ONNX) and writes the
# HTML report. It runs the way a deployment does: TLS (a development
# certificate) and bearer tokens (one for the workers, one for the client's
# tenant), made with the controller's admin commands.
#   DEMO_SECONDS  wall-clock budget of the search (default 240)
#   DEMO_WORKERS  local workers, one per core is fastest here (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${DEMO_SECONDS:-240}
workers=${DEMO_WORKERS:-2}

scripts/build.sh --target evonas-controller evonas-worker evonas
run=demo-run
rm -rf "$run" && mkdir -p "$run"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait; }
trap cleanup EXIT

controller=build/server/evonas-controller
$controller dev-cert --out "$run/certs" 2>/dev/null
worker_token=$($controller token create --db="$run/evonas.db" --kind worker 2>/dev/null)
client_token=$($controller token create --db="$run/evonas.db" --kind client \
  --tenant demo 2>/dev/null)
$controller --listen=127.0.0.1:0 --port-file="$run/port" \
  --db="$run/evonas.db" --data-dir="$run/data" \
  --tls-cert="$run/certs/cert.pem" --tls-key="$run/certs/key.pem" \
  2>"$run/controller.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$run/port" ]] && break; sleep 0.1; done
[[ -s "$run/port" ]] || { cat "$run/controller.log"; exit 1; }
export EVONAS_CONTROLLER="127.0.0.1:$(cat "$run/port")"
export EVONAS_TLS_CA="$run/certs/cert.pem"
for i in $(seq "$workers"); do
  EVONAS_TOKEN="$worker_token" build/worker/evonas-worker \
    --worker-id="local-$i" --threads=1 \
    --cache-dir="$run/cache" 2>"$run/worker-$i.log" &
  pids+=($!)
done
export EVONAS_TOKEN="$client_token"

evonas=build/client/evonas
json_id() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
train=$($evonas dataset upload data/hartmann3/train.csv --output json | json_id)
holdout=$($evonas dataset upload data/hartmann3/holdout.csv --output json | json_id)
echo "uploaded hartmann3: train $train, holdout $holdout"

experiment=$($evonas experiment create --name hartmann3-demo \
  --dataset "$train" --test-dataset "$holdout" --inputs x1,x2,x3 --outputs y \
  --max-abs-error 1e-3 --within-tolerance 1e-5 --min-fraction-within 0.1 \
  --max-model-bytes 30000000 --max-training-seconds 900 \
  --strategy lemonade --inherit --allow-residual --max-stages 1 \
  --budget-seconds "$seconds" --seed 1 --refit 1 --output json | json_id)
echo "experiment $experiment: searching for ${seconds}s with $workers workers"
$evonas experiment wait "$experiment" --poll-seconds 5
echo
$evonas experiment front "$experiment"
# The most accurate member, or its refit on all rows when that succeeded.
best=$($evonas experiment front "$experiment" --output json | /usr/bin/python3 -c '
import json, sys
front = json.load(sys.stdin)
best = next(iter(front.get("candidates", [])), {}).get("id", "")
for refit in front.get("refits", []):
    if refit.get("refit_of") == best and refit.get("state") == "CANDIDATE_STATE_SUCCEEDED":
        best = refit["id"]
print(best)')
if [[ -z "$best" ]]; then
  echo "no candidate finished; see $run/*.log" >&2
  exit 1
fi
$evonas model download "$best" -o "$run/best.pt"
$evonas model download "$best" -o "$run/best.onnx" --format onnx
$evonas experiment report "$experiment" -o "$run/report.html"
echo "most accurate model: $run/best.pt (TorchScript; torch.jit.load it) and $run/best.onnx"
echo "report for the customer: $run/report.html"
