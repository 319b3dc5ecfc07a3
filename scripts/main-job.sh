#!/usr/bin/env bash
# The main job end to end on this machine, no database server needed: `coordinator run` starts the coordinator
# in-process on an embedded SQLite store in OUT, two `worker join` processes on loopback, and runs
# examples/configs/det_ppocrv3.yml (PP-OCRv3 det, ratios 0.1 to 0.8 on every channel group, Prune.max_loss 0.05
# with export) on a synthetic eval set from `worker synth det`; it prints where sen.pickle, the plan and the
# pruned model are. Started again after a kill, it resumes the run from OUT.
#
# Settings (environment): OUT (default out/main-job), WORKERS (2), IMAGES (3, the synthetic set's size),
# CONFIG (examples/configs/det_ppocrv3.yml), extra `-o` overrides in OVERRIDES, and DATABASE_URL to keep the
# job store in Postgres instead.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly OUT=${OUT:-out/main-job}
readonly IMAGES=${IMAGES:-3}
readonly BIN=target/release

# The synthetic eval set the example config names (data/det), made once per size.
if [ "$(wc -l 2>/dev/null <data/det/label.txt || echo 0)" != "$IMAGES" ]; then
  rm -rf data/det
  "$BIN/worker" synth det --out data/det --count "$IMAGES" --seed 1
fi
# shellcheck disable=SC2086
exec "$BIN/coordinator" run -c "${CONFIG:-examples/configs/det_ppocrv3.yml}" --out "$OUT" \
  --workers "${WORKERS:-2}" ${DATABASE_URL:+--database-url "$DATABASE_URL"} ${OVERRIDES:+-o $OVERRIDES}
