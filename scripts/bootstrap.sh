#!/usr/bin/env bash
# Install what actionrec needs on a fresh Debian/Ubuntu machine (idempotent, fast when done):
#   - libarchive13: the C library behind libarchive-c, which extracts UCF101.rar / zip / tar.gz
#   - unar: the second archive reader, for solid RAR 2.9-4, RAR 1.5-2.x and volume sets
#   - with --browser (`make test`): Debian's chromium, for the test that opens the MLflow UI
#   - with --server (`make mlflow-server`, `make test`): Debian's postgresql, the team
#     MLflow server's backend store
#   - .venv with the pinned Python dependencies (versions: scripts/constraints.txt; installed
#     with uv) and actionrec itself (editable); --relock re-resolves scripts/constraints.txt
#   - with GPU=1 in the environment (`make setup GPU=1`): the CUDA builds of TensorFlow and JAX
# Used by `make` (README) and by .ci/run. Re-installs Python packages when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=0
apt_install() {  # apt_install WHY PACKAGE...
  echo "bootstrap: installing $2 ($1)"
  [ "$apt_updated" = 1 ] || { $SUDO apt-get update -qq; apt_updated=1; }
  $SUDO apt-get install -y -qq "${@:2}" >/dev/null
}

if ! "$PYTHON" -c 'import ctypes.util, sys; sys.exit(ctypes.util.find_library("archive") is None)'; then
  apt_install "system library for RAR/zip/tar extraction" libarchive13
fi
if ! command -v unar >/dev/null; then
  apt_install "second archive reader: solid RAR 2.9-4, RAR 1.5-2.x, volume sets" unar
fi
want_browser=0 want_server=0 relock=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    --server) want_server=1 ;;
    --relock) relock=1 ;;
    *) echo "usage: bootstrap.sh [--browser] [--server] [--relock]" >&2; exit 2 ;;
  esac
done
if [ "$want_browser" = 1 ] && ! command -v chromium >/dev/null; then
  apt_install "headless browser for the MLflow UI test" chromium
fi
if [ "$want_server" = 1 ] && ! command -v pg_ctl >/dev/null \
    && ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  apt_install "PostgreSQL, the team MLflow server's backend store" postgresql
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

# uv (Astral's installer, pinned): the same packages as pip, downloaded and unpacked in
# parallel: a fresh .venv in 35 s instead of pip's 3 min 9 s (2 cores, empty caches). The
# versions come from scripts/constraints.txt, so uv and pip resolve the same set.
UV_VERSION=0.13.8
CONSTRAINTS=scripts/constraints.txt
have_uv() {  # uv in .venv, installed with pip the first time; false where it cannot be had
  [ -x "$VENV/bin/uv" ] || "$VENV/bin/python" -m pip install -qq "uv==$UV_VERSION"
}
install() {  # install ARGS...: uv when it can be had, else pip (same constraints)
  if have_uv; then
    # --compile-bytecode: pip's default; without it every first import (TensorFlow's
    # thousands of modules) compiles at run time, in each process that gets there first
    "$VENV/bin/uv" pip install --quiet --compile-bytecode --python "$VENV/bin/python" "$@"
  else
    echo "bootstrap: uv not available; installing with pip (slower)"
    "$VENV/bin/python" -m pip install --quiet "$@"
  fi
}

if [ "$relock" = 1 ]; then
  # after a pin changed in pyproject.toml: resolve anew, without the old constraints
  have_uv || { echo "bootstrap: --relock needs uv==$UV_VERSION from PyPI" >&2; exit 1; }
  {
    echo "# Every Python package of .venv, at one version each: scripts/bootstrap.sh installs"
    echo "# with these constraints, so that pip and uv, today and later, resolve the same set."
    echo "# After changing a pin in pyproject.toml: bash scripts/bootstrap.sh --relock"
    "$VENV/bin/uv" pip compile --quiet --no-header --extra dev pyproject.toml
  } > "$CONSTRAINTS.new"
  mv "$CONSTRAINTS.new" "$CONSTRAINTS"
  echo "bootstrap: rewrote $CONSTRAINTS; run the tests, then commit it"
  rm -f "$VENV/.actionrec-installed"
fi

stamp="$VENV/.actionrec-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$CONSTRAINTS" -nt "$stamp" ]; then
  echo "bootstrap: installing pinned dependencies into $VENV (about a minute the first time)"
  install -c "$CONSTRAINTS" -e ".[dev]"
  touch "$stamp"
fi

# GPU=1 (`make setup GPU=1`): the CUDA builds of both Keras backends, same versions as
# pyproject.toml's tensorflow and the dev extra's jax; they share NVIDIA's CUDA 12 wheels
# (cuDNN, cuBLAS, NCCL), so no system CUDA is needed, only the NVIDIA driver.
TF_CUDA="tensorflow[and-cuda]==2.21.0"
JAX_CUDA="jax[cuda12]==0.10.2"
gpu_stamp="$VENV/.actionrec-gpu-installed"
if [ "${GPU:-0}" = 1 ] && { [ ! -f "$gpu_stamp" ] || [ pyproject.toml -nt "$gpu_stamp" ]; }; then
  echo "bootstrap: installing the CUDA builds: $TF_CUDA $JAX_CUDA (about 3 GB)"
  install -c "$CONSTRAINTS" "$TF_CUDA" "$JAX_CUDA"
  touch "$gpu_stamp"
fi
