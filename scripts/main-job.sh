#!/usr/bin/env bash
# The main job end to end on this machine: a real coordinator (job store in the local Postgres, a database of
# its own), two `worker join` processes on CPU, and `coordinator submit` of examples/configs/det_ppocrv3.yml
# (PP-OCRv3 det, 8 ratios on every channel group, Prune.max_loss 0.05 with export) on a synthetic eval set
# from `worker synth det`. It follows the run to its end, writes the results and prints where they are.
#
# Settings (environment): OUT (default out/main-job), WORKERS (2), IMAGES (3, the synthetic set's size),
# CONFIG (examples/configs/det_ppocrv3.yml), and extra `-o` overrides in OVERRIDES.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly OUT=${OUT:-out/main-job}
readonly WORKERS=${WORKERS:-2}
readonly IMAGES=${IMAGES:-3}
readonly CONFIG=${CONFIG:-examples/configs/det_ppocrv3.yml}
readonly BIN=target/release
say() { printf 'main-job: %s\n' "$*" >&2; }

if ! pg_isready --quiet --host 127.0.0.1 --port 5432; then
  say "starting Postgres"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready --quiet --host 127.0.0.1 --port 5432 && break; sleep 1; done
fi
readonly DB=sensgrid_main_job
readonly PG="postgres://$(id -un)@127.0.0.1:5432"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT/work"
# The synthetic eval set the example config names (data/det), made once per size.
if [ "$(wc -l <data/det/label.txt 2>/dev/null || echo 0)" != "$IMAGES" ]; then
  rm -rf data/det
  "$BIN/worker" synth det --out data/det --count "$IMAGES" --seed 1
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
worker_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
admin_token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

"$BIN/coordinator" serve --listen "127.0.0.1:$port" --database-url "$PG/$DB" --worker-token "$worker_token" \
  --admin-token "$admin_token" --artifact-dir "$OUT/work/artifacts" >"$OUT/work/coordinator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening on' "$OUT/work/coordinator.log" && break; sleep 0.1; done
grep -q '^listening on' "$OUT/work/coordinator.log" || { cat "$OUT/work/coordinator.log" >&2; exit 1; }
for i in $(seq "$WORKERS"); do
  "$BIN/worker" join --coordinator "http://127.0.0.1:$port" --token "$worker_token" --device auto \
    --cache-dir "$OUT/work/cache-$i" --name "worker-$i" >"$OUT/work/worker-$i.log" 2>&1 &
  pids+=($!)
done
say "coordinator on 127.0.0.1:$port (logs in $OUT/work), $WORKERS workers"

export SENSGRID_COORDINATOR="http://127.0.0.1:$port" SENSGRID_ADMIN_TOKEN="$admin_token"
# shellcheck disable=SC2086
run=$("$BIN/coordinator" submit -c "$CONFIG" --name main-job ${OVERRIDES:+-o $OVERRIDES} | tail -n 1)
"$BIN/coordinator" watch "$run"
"$BIN/coordinator" status "$run"
"$BIN/coordinator" results "$run" --out "$OUT" >/dev/null
say "sen.pickle:        $OUT/sen.pickle"
say "sensitivities:     $OUT/sensitivities.csv, $OUT/sensitivities.json"
say "plan:              $OUT/plan.json"
say "pruned model:      $OUT/pruned.onnx (report: $OUT/prune_report.json)"
