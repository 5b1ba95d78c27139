#!/usr/bin/env bash
# Create .venv (Python 3.11): the package with its dependencies at the CPU pins (requirements/cpu.txt, used
# as constraints) plus the test set (requirements/test.txt) that the README's test command needs. Safe to
# run twice: a stamp skips the (slow) resolver when nothing it reads has changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.installed-$(cat requirements/cpu.txt requirements/test.txt pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -c requirements/cpu.txt -r requirements/test.txt -e .
  rm -f .venv/.installed-*
  touch "$stamp"
fi
