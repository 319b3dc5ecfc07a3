#!/usr/bin/env bash
# The main job end to end on this machine, no database server needed: `coordinator run` starts the coordinator
# in-process on an embedded SQLite store in OUT, two `worker join` processes on loopback, and runs
# examples/configs/det_ppocrv3_measured.yml (PP-OCRv3 det, ratios 0.1, 0.3, 0.5 and 0.7 on every channel group,
# Prune.max_model_loss 0.02 with export: the exported model measured, not guessed) on a synthetic eval set from
# `worker synth det`; it prints where sen.pickle, the plan and the pruned model are, then hmean, FLOPs and
# latency before and after. Started again after a kill, it resumes the run from OUT.
#
# Settings (environment): OUT (default out/main-job), WORKERS (2), IMAGES (20, the synthetic set's size),
# CONFIG (examples/configs/det_ppocrv3_measured.yml), extra `-o` overrides in OVERRIDES, and DATABASE_URL to
# keep the job store in Postgres instead.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly OUT=${OUT:-out/main-job}
readonly IMAGES=${IMAGES:-20}
readonly BIN=target/release

# The synthetic eval set the example config names (data/det), made once per size.
if [ "$(wc -l 2>/dev/null <data/det/label.txt || echo 0)" != "$IMAGES" ]; then
  rm -rf data/det
  "$BIN/worker" synth det --out data/det --count "$IMAGES" --seed 1
fi
# shellcheck disable=SC2086
exec "$BIN/coordinator" run -c "${CONFIG:-examples/configs/det_ppocrv3_measured.yml}" --out "$OUT" \
  --workers "${WORKERS:-2}" ${DATABASE_URL:+--database-url "$DATABASE_URL"} ${OVERRIDES:+-o $OVERRIDES}
