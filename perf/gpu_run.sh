#!/usr/bin/env bash
# The GPU benchmark's one prepared run (perf/gpu_train.py), its configurations in order of what they tell,
# all into one figures file, stopping before a phase that no longer fits the time left:
#   1. 8B DPO and TGDPO (precomputed), interleaved (DPO, TGDPO, TGDPO, DPO) after a DPO warm-up;
#   2. the same without gradient checkpointing (about 128 GB at 8B: an H200, not an H100);
#   3. FSDP on one process (accelerate launch, the project's FSDP config) for DPO and TGDPO;
#   4. SimPO and chosen_nll under FSDP;
#   5. 1B: DPO and TGDPO.
# Every run rewrites the figures file, so a phase cut short keeps the runs it finished.
#
#   bash perf/gpu_run.sh prepare     # here, with PyPI: the wheels the GPU machine lacks, into .whl/
#   bash perf/gpu_run.sh [run]       # on the GPU machine (carry .whl): $GPU_RUN_BUDGET_S seconds (default 480)
#   bash perf/gpu_run.sh --tiny      # every phase at toy size on the CPU (checks the script itself)
#
# The figures go to $OUT/gpu_train_<gpu>.json when $OUT is set (a device machine's return folder), else to
# perf/figures/gpu_train_<gpu>.json; <gpu> is the device name's last word in lower case (h200, h100, cpu).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
if [ "$mode" = prepare ]; then
  # trl, datasets and jsonschema (with their own dependencies not on the device image): Python 3.12 wheels
  mkdir -p .whl
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    trl==1.16.0 datasets==5.2.0 "dill<0.4.2" "multiprocess<0.70.20" jsonschema jsonschema-specifications referencing rpds-py
  exit 0
fi

budget=${GPU_RUN_BUDGET_S:-480}
deadline=$((SECONDS + budget))
if [ "$mode" = --tiny ]; then
  size_args=(--tiny)
  eight=(--sizes tiny) one=(--sizes tiny)
  # estimated seconds per phase at toy size (a `reproduce train` process each, ~15 s on 2 CPU cores)
  need=(60 40 40 40 40)
else
  if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site:$PWD
  fi
  size_args=(--pairs 40)
  eight=(--sizes 8b --batch 8b:4x1) one=(--sizes 1b --batch 1b:8x2)
  # estimated seconds per phase on one H200 (8B: ~16 GB to load and hash per process, ~10 steps of ~1.2 s)
  need=(300 150 150 150 60)
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

gpu=$(python3 -c 'import torch; print(torch.cuda.get_device_name(0).split()[-1].lower() if torch.cuda.is_available() else "cpu")')
if [ -n "${OUT:-}" ]; then figures=$OUT/gpu_train_$gpu.json; else figures=perf/figures/gpu_train_$gpu.json; fi
mkdir -p "$(dirname "$figures")"
rm -f "$figures"
work=${GPU_RUN_WORK:-/tmp/gpu_run_work}
mkdir -p "$work"
echo "gpu_run: $gpu, budget ${budget} s, figures $figures"

phase() {  # phase <number> <gpu_train.py arguments...>: run it if its estimate fits the time left
  local n=$1; shift
  local left=$((deadline - SECONDS))
  if [ "$left" -lt "${need[$((n - 1))]}" ]; then
    echo "gpu_run: phase $n and later skipped (${left} s left, phase $n needs about ${need[$((n - 1))]} s)"
    return 1
  fi
  echo "gpu_run: phase $n ($left s left): $*"
  # a phase cut short by the deadline keeps its finished runs (the figures file is rewritten after each)
  timeout --signal=TERM "$left" python3 perf/gpu_train.py "${size_args[@]}" --work "$work" --json "$figures" --append "$@" \
    || { echo "gpu_run: phase $n stopped (exit $?)"; return 1; }
}

phase 1 "${eight[@]}" --methods dpo,tgdpo --repeats 2 \
  && phase 2 "${eight[@]}" --methods dpo,tgdpo --no-checkpointing --no-warmup \
  && phase 3 "${eight[@]}" --methods dpo,tgdpo --fsdp --no-warmup \
  && phase 4 "${eight[@]}" --methods simpo,chosen_nll --fsdp --no-warmup \
  && phase 5 "${one[@]}" --methods dpo,tgdpo || true
rm -rf "$work"
echo "gpu_run: figures in $figures ($((SECONDS)) s)"
