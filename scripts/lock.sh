#!/usr/bin/env bash
# Recompile requirements/cpu.lock from the direct pins (requirements/cpu.txt, requirements/test.txt) and the
# package's ranges (pyproject.toml): every package at an exact version with its sha256 hashes, pip, setuptools
# and wheel included. Run it after changing a pin, then commit the lock; scripts/setup.sh installs only from it.
# Needs uv (`pip install uv`). torch is the CPU build (2.13.0+cpu): found on a local wheel folder given with
# REPRODUCE_TORCH_FIND_LINKS, or on PyTorch's CPU index.
set -euo pipefail
cd "$(dirname "$0")/.."
src=(--extra-index-url https://download.pytorch.org/whl/cpu)
[ -n "${REPRODUCE_TORCH_FIND_LINKS:-}" ] && src=(--find-links "$REPRODUCE_TORCH_FIND_LINKS")
# the current lock is the starting point: a package whose pin did not change keeps its locked version (as
# pip-compile does); REPRODUCE_LOCK_UPGRADE=1 re-resolves everything to the newest before the cutoff date
[ -f requirements/cpu.lock ] && cp requirements/cpu.lock requirements/cpu.lock.body
upgrade=()
[ -n "${REPRODUCE_LOCK_UPGRADE:-}" ] && upgrade=(--upgrade)
uv pip compile requirements/cpu.txt requirements/test.txt pyproject.toml \
  --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --index-strategy unsafe-best-match "${src[@]}" \
  --exclude-newer "${REPRODUCE_LOCK_EXCLUDE_NEWER:-2026-11-29T00:00:00Z}" \
  --no-header --no-emit-find-links --no-emit-index-url "${upgrade[@]}" -o requirements/cpu.lock.body
{ echo "# Every package of the CPU and test environment, exact and hashed: compiled by scripts/lock.sh from"
  echo "# requirements/cpu.txt, requirements/test.txt and pyproject.toml. Install with scripts/setup.sh."
  cat requirements/cpu.lock.body; } > requirements/cpu.lock
rm requirements/cpu.lock.body
