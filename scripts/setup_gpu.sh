#!/usr/bin/env bash
# Install the CUDA environment's Python packages into the active environment (environment.yml's conda env,
# or any Python 3.11 venv on Linux x86_64): exactly requirements/gpu.lock, every package hashed, then the
# package itself, editable, built with the locked setuptools.
#   conda env create -f environment.yml && conda activate tgdpo-reproduce && bash scripts/setup_gpu.sh
# deepspeed ships as source only: it is built after everything else, against the installed torch (its build
# imports torch). The lock holds one override (requirements/gpu-overrides.txt), so pip resolves nothing
# (--no-deps) and `pip check` may report exactly that conflict.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements/gpu.lock
python -c 'import sys; assert sys.version_info[:2] == (3, 11), "scripts/setup_gpu.sh: needs Python 3.11, not " + sys.version.split()[0]'
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the lock without deepspeed's entry (its name line, hash lines and comments up to the next package)
awk '/^[A-Za-z0-9]/{skip = ($0 ~ /^deepspeed==/)} !skip' "$lock" > "$tmp/wheels.txt"
awk '/^[A-Za-z0-9]/{keep = ($0 ~ /^deepspeed==/)} keep' "$lock" > "$tmp/deepspeed.txt"
python -m pip install --require-hashes --no-deps -r "$tmp/wheels.txt"
python -m pip install --require-hashes --no-deps --no-build-isolation -r "$tmp/deepspeed.txt"
python -m pip install --no-deps --no-build-isolation -e .
python -m pip check > "$tmp/check" || true
if grep -v -E "^mistral-common .* numpy|^No broken" "$tmp/check" | grep .; then
  echo "scripts/setup_gpu.sh: pip check found conflicts beyond requirements/gpu-overrides.txt's" >&2
  exit 1
fi
