#!/usr/bin/env bash
# The wheels that benchmarks/gpu_check.py needs and the GPU machine lacks (`make gpu-wheels`).
#
# The lent GPU machines have JAX with CUDA, NumPy, OpenCV, pandas, SciPy, PyYAML, ... (their
# image's list: the device tool's KINDS.md) but not Keras or pydantic, and reach no package
# registry; what a command needs travels beside the work tree, at most 64 MiB. This script
#   1. downloads those wheels, for the GPU machine's Python (3.12, x86-64, manylinux), at the
#      versions of scripts/constraints.txt, into .gpu-wheels/ (git-ignored), and prints their
#      size against the 64 MiB;
#   2. proves, here, that they are enough: a fresh venv gets only packages the GPU image has
#      (the check's imports among them; same versions as .venv, from uv's cache), then the
#      carried packages for this machine's Python from a local folder with --no-index (no
#      registry), and runs the check: its dry run, and every part at small sizes (~3 min).
# On the GPU machine (docs/benchmarks.md, "The GPU check"):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu-wheels/*.whl
#   PYTHONPATH=/tmp/site python3 benchmarks/gpu_check.py --out "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=${DEST:-.gpu-wheels}
#: what the check imports (keras, actionrec.config) that the GPU image does not have
CARRIED=(keras namex optree pydantic pydantic_core annotated-types typing-inspection)
#: what the check imports that the GPU image has (the proof's venv gets these alone)
IMAGE=(jax jaxlib numpy ml_dtypes opencv-python-headless pandas PyYAML tqdm psutil h5py rich
       absl-py scipy scikit-learn matplotlib requests pyarrow typing_extensions)
PY=${VENV:-.venv}/bin/python

pins() {  # pins NAME...: NAME==VERSION from scripts/constraints.txt
  for name in "$@"; do
    line=$(grep -i "^${name}==" scripts/constraints.txt || true)
    [ -n "$line" ] || { echo "gpu_wheels: $name is not pinned in scripts/constraints.txt" >&2; exit 1; }
    echo "$line"
  done
}

mapfile -t carried < <(pins "${CARRIED[@]}")
mapfile -t image < <(pins "${IMAGE[@]}")
rm -rf "$DEST"
mkdir -p "$DEST"
# pip matches manylinux_2_N exactly: name the tags the wheels of these packages carry
platforms=()
for n in 17 24 27 28 31 34; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" --platform manylinux2014_x86_64 --platform any \
  -d "$DEST" "${carried[@]}"
bytes=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "gpu_wheels: ${#CARRIED[@]} wheels in $DEST: $((bytes / 1024)) KiB of the 64 MiB a device call carries"
[ "$bytes" -lt $((64 * 1024 * 1024)) ] || { echo "gpu_wheels: over 64 MiB" >&2; exit 1; }

# 2. the proof, with this machine's Python
proof=$(mktemp -d)
trap '[ -n "${KEEP_PROOF:-}" ] || rm -rf "$proof"' EXIT
"$PY" -m venv "$proof/venv"
"${VENV:-.venv}/bin/uv" pip install -q --python "$proof/venv/bin/python" "${image[@]}" \
  || "$proof/venv/bin/python" -m pip install -q "${image[@]}"
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$proof/local" "${carried[@]}"
"$proof/venv/bin/python" -m pip install -q --no-index --no-deps --target "$proof/site" \
  "$proof"/local/*.whl
export PYTHONPATH="$proof/site" PIP_NO_INDEX=1 KERAS_BACKEND=jax
"$proof/venv/bin/python" benchmarks/gpu_check.py --dry-run
"$proof/venv/bin/python" benchmarks/gpu_check.py --small --out "$proof/out"
echo "gpu_wheels: the check ran with the GPU image's packages and $DEST's alone"
