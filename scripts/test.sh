#!/usr/bin/env bash
# Runs every test against the real Postgres (started here when it is down) and the real libtorch.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! pg_isready --quiet --host 127.0.0.1 --port 5432; then
  echo "test: starting Postgres" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 30); do pg_isready --quiet --host 127.0.0.1 --port 5432 && break; sleep 1; done
  pg_isready --host 127.0.0.1 --port 5432 >&2
fi
# Tests that need a database each create their own from this server (sqlx::test).
export DATABASE_URL="${DATABASE_URL:-postgres://$(id -un)@127.0.0.1:5432/postgres}"

# The tree stays formatted and clippy-clean (sharing the release build, so nothing compiles twice).
cargo fmt --all --check
LIBTORCH="$(pwd)/.libtorch" cargo clippy --release --workspace --all-targets --quiet -- -D warnings

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
LIBTORCH="$(pwd)/.libtorch" cargo test --release --workspace 2>&1 | tee "$log" || status=$?
# cargo prints one summary per test binary; the last is often an empty doc-test binary, so add them up.
awk '/^test result:/ { passed += $4; failed += $6; skipped += $8 }
     END { printf "total: %d passed, %d failed, %d skipped\n", passed, failed, skipped }' "$log"
exit "$status"
