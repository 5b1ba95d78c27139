"""SLURM for real: the README's cluster command runs the tiny Table 1 on a single-node cluster; what goes wrong on
a cluster; what jobs ask SLURM for.

The ``slurm``-marked tests start the cluster with scripts/slurm_cluster.sh (Debian's slurm-wlm + munge, one
CPU partition, no accounting; tests/support/slurm.py) and are skipped, with the reason, where it cannot be
started (not root, no apt-get). In the order they run:

- What goes wrong: a job killed by scancel, then the rerun that redoes only it; no partition where the cluster
  has none by default; GPUs asked of a CPU partition; jobs killed for their memory and their time limits. Each
  fails cleanly: the error names the rule and the SLURM log, and no output is left behind. The time-limit run
  is mostly waiting (for its limit, for SLURM's kill, for the executor's next status query), so it starts with
  the first cluster test (the ``time_limit_run`` fixture, which every cluster test asks for) and everything
  else here, the tiny run included, runs while it waits; its test, the last, checks it.
- The tiny run compares its Table 1 with the local run's in .ci-work/tiny (perf/tiny_e2e.py makes it before
  pytest in CI; $REPRODUCE_LOCAL_TINY names another finished local run), starting from that run's base model:
  the base SFT is the same job in every run and most of the run's time, and its own submission through SLURM
  is what the time-limit test runs (to its kill).

All of them are one file, so one pytest-xdist worker runs them one after another: the single node has two
cores, and beside each other (two files, two workers) their jobs waited in its queue behind each other's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from perf.slurm_e2e import CLUSTER_SCRIPT, differing_tables, seed_base_models, slurm_command, submitted_jobs
from tests.support.slurm import partition, run_slurm  # noqa: F401  (partition: the cluster fixture)

ROOT = Path(__file__).resolve().parent.parent
LOCAL_TINY = Path(os.environ.get("REPRODUCE_LOCAL_TINY", ROOT / ".ci-work" / "tiny"))
REFERENCES = [f"results/answers/{b}/_reference.jsonl" for b in ("tiny_alpaca_eval2", "tiny_arena_hard", "tiny_mt_bench")]
TIME_LIMIT_TARGET = "results/models/tiny-add/sft"  # the base model's SFT: minutes of work
START_LOCK = Path("/run/reproduce-slurm-cluster.lock")  # scripts/slurm_cluster.sh's start/stop lock
DAEMON_PID_FILES = ("/run/munge/munged.pid", "/run/slurmctld.pid", "/run/slurmd.pid")  # as the script writes them


def _daemons_holding(path: Path) -> list[str]:
    """The cluster's daemons (by their pid files) that have ``path`` open."""
    found = []
    for pid_file in map(Path, DAEMON_PID_FILES):
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        try:
            if pid and any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir()):
                found.append(f"{pid_file.stem} (pid {pid})")
        except OSError:  # the daemon ended between the two reads
            continue
    return found


@pytest.fixture(scope="module")
def time_limit_run(request, tmp_path_factory):
    """(the running Snakemake, its working directory) of the time-limit test, started by the first cluster test
    when the time-limit test is selected (else None); stopped, its SLURM job cancelled, at the end."""
    if not any(item.originalname == "test_job_killed_for_its_time_limit" for item in request.session.items):
        yield None
        return
    partition = request.getfixturevalue("partition")  # noqa: F811  (skips where no cluster starts)
    work = tmp_path_factory.mktemp("time_limit")
    # one core: it only has to outlast its limit, and the other tests' jobs keep the second
    proc = subprocess.Popen(slurm_command(work, [TIME_LIMIT_TARGET], partition, "--retries", "0",
                                          "--set-resources", "base_model:runtime=1", "--set-threads", "base_model=1"),
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc, work
    if proc.poll() is None:  # a test failed before the time-limit test waited for it
        proc.terminate()  # Snakemake cancels its SLURM job on SIGTERM
        proc.communicate(timeout=120)


# ---------------------------------------------------------------- what goes wrong on a cluster


@pytest.mark.slurm
def test_a_second_start_returns_while_the_cluster_runs(partition, time_limit_run):  # noqa: F811
    """The daemons do not inherit the start lock: a second start (another test worker's) returns at once."""
    assert _daemons_holding(START_LOCK) == [], "a daemon holds the start lock; every later start would wait on it"
    proc = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slurm
def test_killed_job_then_rerun_redoes_only_that_job(partition, tmp_path, time_limit_run):  # noqa: F811
    """scancel one running job; the others finish (--keep-going); the rerun submits the killed one only."""
    work = tmp_path / "w"
    work.mkdir()
    run1 = subprocess.Popen(slurm_command(work, REFERENCES, partition, "--keep-going", "--retries", "0"), cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed, deadline = None, time.time() + 300
    while killed is None and time.time() < deadline and run1.poll() is None:
        queue = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i|%Z|%k"], capture_output=True, text=True).stdout
        for line in queue.splitlines():
            jobid, jobdir, comment = line.split("|", 2)
            if Path(jobdir) == work and comment.startswith("rule_reference_answers"):
                subprocess.run(["scancel", jobid], check=True)
                killed = (jobid, comment)
                break
        time.sleep(0.2)
    out1 = run1.communicate(timeout=600)[0]
    assert killed, "no running job of this run was seen to cancel\n" + out1[-3000:]
    assert run1.returncode != 0
    assert "Error in rule reference_answers" in out1 and f"SLURM-job '{killed[0]}' failed" in out1
    assert f"slurm_logs/rule_reference_answers/{killed[1].split('_wildcards_')[-1]}/{killed[0]}.log" in out1
    done = {t: (work / t).stat().st_mtime_ns for t in REFERENCES if (work / t).exists()}
    assert len(done) == len(REFERENCES) - 1, f"exactly the killed job's output is missing: {sorted(done)}"

    rc, out2, jobs2 = run_slurm(work, REFERENCES, partition)
    assert rc == 0, out2[-3000:]
    assert len(jobs2) == 1, f"the rerun submitted {len(jobs2)} jobs, expected only the killed one"
    assert all((work / t).exists() for t in REFERENCES)
    assert {t: (work / t).stat().st_mtime_ns for t in done} == done, "a finished output was redone"


# ---------------------------------------------------------------- bad input on the cluster


def _assert_failed_cleanly(rc: int, out: str, rule: str, output: Path):
    assert rc != 0
    assert f"Error in rule {rule}" in out, out[-3000:]
    assert not output.exists(), f"{output} left behind by a failed job"


@pytest.mark.slurm
def test_no_partition_where_the_cluster_has_no_default(partition, tmp_path, time_limit_run):  # noqa: F811
    rc, out, _ = run_slurm(tmp_path, REFERENCES[:1], None, "--retries", "0")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "No partition specified or system default partition" in out


@pytest.mark.slurm
def test_gpus_on_a_cpu_partition(partition, tmp_path, time_limit_run):  # noqa: F811
    rc, out, _ = run_slurm(tmp_path, REFERENCES[:1], partition, "--retries", "0",
                        "--set-resources", "reference_answers:gpu=1")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "Invalid generic resource (gres) specification" in out


def _slurm_log(out: str) -> Path:
    logs = re.findall(r"log: (\S+/slurm_logs/\S+\.log)", out)
    assert logs, "the error names no SLURM log:\n" + out[-3000:]
    return Path(logs[0])


@pytest.mark.slurm
def test_job_killed_for_its_memory_limit(partition, tmp_path, time_limit_run):  # noqa: F811
    rc, out, _ = run_slurm(tmp_path, REFERENCES[:1], partition, "--retries", "0",
                        "--set-resources", "reference_answers:mem_mb=50")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "exceeded memory limit" in _slurm_log(out).read_text()


# ---------------------------------------------------------------- what jobs ask for (no cluster)


def _plan_resources(workdir: Path, *args: str) -> dict[str, list[dict]]:
    """Per rule, the resources (and threads) of each planned job in a dry run through the SLURM profile."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          "reproduce_table1", "--profile", str(ROOT / "config" / "slurm"),
                          "--default-resources", "slurm_partition=p", *args],
                         cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    plan: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out.stdout):
        m = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and res:
            plan.setdefault(m.group(1), []).append(dict(kv.split("=", 1) for kv in res.group(1).split(", ")))
    return plan


@pytest.mark.slow
def test_tiny_jobs_ask_for_no_gpu(tmp_path):
    plan = _plan_resources(tmp_path)
    assert {"base_model", "train", "generate", "judge"} <= set(plan)
    for rule, jobs in plan.items():
        for job in jobs:
            assert "gpu" not in job and "gpus" not in job and "gres" not in job, (rule, job)
    assert {j["mem_mb"] for j in plan["train"]} == {"6000"} and {j["judge_api"] for j in plan["judge"]} == {"0"}


def test_paper_jobs_ask_for_what_their_launchers_use(tmp_path):
    plan = _plan_resources(tmp_path, "--config", "preset=paper")
    acc = yaml.safe_load((ROOT / "config/accelerate/fsdp_full_shard.yaml").read_text())
    assert {(j["gpu"], j["nodes"]) for j in plan["train"]} == {(str(acc["num_processes"]), "1")}
    assert {j["gpu"] for j in plan["generate"]} == {"1"}
    for rule in set(plan) - {"train", "generate"}:
        assert all("gpu" not in j for j in plan[rule]), rule
    # each judge job holds its judge's concurrency in judge_api slots
    assert {j["judge_api"] for j in plan["judge"]} == {"8"}


def test_profile_caps_judge_api_above_every_judge_concurrency():
    profile = yaml.safe_load((ROOT / "config/slurm/config.yaml").read_text())
    caps = dict(r.split("=") for r in profile["resources"])
    concurrency = [yaml.safe_load(p.read_text()).get("concurrency", 8) for p in (ROOT / "evals/judges").glob("*.yaml")
                   if yaml.safe_load(p.read_text())["kind"] == "openai"]
    assert 0 < max(concurrency) <= int(caps["judge_api"])
    assert "default-resources" not in profile  # the command line's would replace it as a whole


def test_training_gpus_disagreeing_with_accelerate_is_one_line():
    from reproduce.config import ConfigError, load_config
    from reproduce.job_resources import StageResources

    with pytest.raises(ConfigError, match=r"^config/presets/paper.yaml: key 'resources.train.gpu': 4 GPUs, but "
                                          r"accelerate launch starts 8 GPU processes"):
        StageResources(load_config({"preset": "paper", "resources": {"train": {"gpu": 4}}}))


def test_network_jobs_run_on_the_submitting_host_unless_told():
    from reproduce.config import load_config
    from reproduce.job_resources import StageResources

    paper = StageResources(load_config({"preset": "paper"}))
    assert {r for r in ("base_model", "preference_pairs", "judge", "train", "generate")
            if paper.local(r)} == {"base_model", "preference_pairs", "judge"}
    assert not any(StageResources(load_config({"preset": "paper", "network_jobs": "cluster"})).local(r)
                   for r in ("base_model", "judge"))
    assert StageResources(load_config({"preset": "tiny"})).network_rules() == set()


def test_small_jobs_run_on_the_submitting_host_unless_told():
    from reproduce.config import load_config
    from reproduce.job_resources import StageResources

    for preset in ("tiny", "paper"):
        assert StageResources(load_config({"preset": preset})).local("score")
        assert StageResources(load_config({"preset": preset})).local("report")
        cluster = StageResources(load_config({"preset": preset, "small_jobs": "cluster"}))
        assert not cluster.local("score") and not cluster.local("report")
    assert not StageResources(load_config({"preset": "tiny"})).local("train")


def test_rules_conda_env_pip_lines_resolve(tmp_path):
    """Every rule's conda: is reproduce/rules/env.yaml (snakemake --lint checks each rule has one); pip resolves
    its lines, the checkout named by ${REPRODUCE_ROOT} (conda hands pip these lines as a requirements file)."""
    env = yaml.safe_load((ROOT / "reproduce/rules/env.yaml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    (tmp_path / "req.txt").write_text("\n".join(pip_lines) + "\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation",
                          "-r", str(tmp_path / "req.txt")], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "REPRODUCE_ROOT": str(ROOT)})
    assert pip.returncode == 0 and "Would install reproduce-tgdpo" in pip.stdout, pip.stdout[-1000:] + pip.stderr[-1000:]


def test_sdm_conda_dry_run_builds_nothing(tmp_path):
    if not shutil.which("conda"):
        pytest.skip("conda is not installed (Snakemake asks conda where environments live even in a dry run)")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--sdm", "conda", "-s", str(ROOT / "Snakefile"),
                          "-d", str(tmp_path), "reproduce_table1", "--cores", "1"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not any((tmp_path / ".snakemake" / "conda").glob("*/"))


# ---------------------------------------------------------------- the tiny run through the cluster, then the time limit


def _planned_jobs(workdir: Path, target: str) -> dict[str, int]:
    """Jobs per rule that a dry run of ``target`` in ``workdir`` plans (what is there already is not planned)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          target, "--cores", "1"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def _rules_run(log: str, kind: str) -> dict[str, int]:
    """Jobs per rule that a Snakemake log says ran as ``kind`` (``rule``: submitted; ``localrule``: on the
    submitting host)."""
    counts: dict[str, int] = {}
    for rule in re.findall(rf"^{kind} (\w+):$", log, re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_table1_through_slurm_equals_the_local_run(partition, tmp_path, time_limit_run):  # noqa: F811
    local_tables = LOCAL_TINY / "results" / "tables"
    if not (local_tables / "table1.csv").exists():
        pytest.skip(f"no finished local tiny run in {LOCAL_TINY} to compare with (run perf/tiny_e2e.py)")
    work = tmp_path / "slurm"
    (tmp_path / "plan").mkdir()
    assert seed_base_models(LOCAL_TINY, tmp_path / "plan") == ["results/models/tiny-add/sft"]
    planned = _planned_jobs(tmp_path / "plan", "reproduce_table1")
    # the benchmark is the run: it times it, counts its SLURM jobs and compares Table 1 (reported with -s)
    proc = subprocess.run([sys.executable, str(ROOT / "perf" / "slurm_e2e.py"), "--workdir", str(work),
                           "--local-workdir", str(LOCAL_TINY), "--reuse-base"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert differing_tables(work / "results" / "tables", local_tables) == []
    metrics = json.loads((work / "slurm_e2e.json").read_text())
    log = (work / "snakemake.log").read_text()
    assert metrics["reused_from_local"] == ["results/models/tiny-add/sft"]
    assert "base_model" not in log
    # every planned job ran once: the compute stages' through sbatch, scoring and the tables on this host
    # (small jobs, job_resources.SMALL_STAGES), and the target rule itself, which has nothing to run
    small = {"score", "table1", "table1_main", "figure", "reproduce_table1"}
    submitted, local = _rules_run(log, "rule"), _rules_run(log, "localrule")
    assert submitted == {r: n for r, n in planned.items() if r not in small}, (submitted, planned)
    assert set(submitted) == {"preference_pairs", "train", "reference_answers", "generate", "judge"}
    assert local == {r: n for r, n in planned.items() if r in small}, (local, planned)
    assert metrics["slurm_jobs"] == sum(submitted.values()) > 20, metrics


@pytest.mark.slurm
@pytest.mark.slow
def test_job_killed_for_its_time_limit(time_limit_run):
    """The base model's SFT takes minutes; a 1-minute limit kills it (SLURM acts within ~30 s after). The run
    started with the first cluster test (the ``time_limit_run`` fixture)."""
    proc, work = time_limit_run
    out = proc.communicate(timeout=900)[0]
    _assert_failed_cleanly(proc.returncode, out, "base_model", work / TIME_LIMIT_TARGET)
    assert len(submitted_jobs(out)) == 1, out[-3000:]
    assert "SLURM status is: 'TIMEOUT'" in out
    assert "DUE TO TIME LIMIT" in _slurm_log(out).read_text()
