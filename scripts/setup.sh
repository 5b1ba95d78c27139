#!/usr/bin/env bash
# Create .venv (Python 3.11) with exactly the locked set: requirements/cpu.lock pins every package of the CPU
# and test environment (pip, setuptools and wheel included) to one version and its sha256 hashes, so an
# upstream release cannot change what a fresh clone installs. Then the package itself, editable, without
# resolving anything and built with the locked setuptools. Safe to run twice: a stamp of the lock's hash
# skips the install when nothing changed. The lock is made by scripts/lock.sh; scripts/check_fresh.sh tries
# the newest versions pyproject.toml's ranges allow instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.installed-$(cat requirements/cpu.lock pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  # torch is the CPU build (+cpu), which PyPI does not carry. Where pip's own configuration already finds it
  # (a local wheel folder in find-links), nothing more is asked; otherwise PyTorch's CPU index is added. The
  # hashes in the lock decide either way.
  torch_pin=$(grep -oE '^torch==[^ ]+' requirements/cpu.lock)
  tmp=$(mktemp -d)
  index=()
  python -m pip download -q --no-deps --no-index -d "$tmp" "$torch_pin" >/dev/null 2>&1 ||
    index=(--extra-index-url "${REPRODUCE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}")
  rm -rf "$tmp"
  python -m pip install -q --require-hashes --no-deps "${index[@]}" -r requirements/cpu.lock
  python -m pip install -q --no-deps --no-build-isolation -e .
  python -m pip check
  rm -f .venv/.installed-*
  touch "$stamp"
fi
