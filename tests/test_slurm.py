"""SLURM for real: the README's cluster command on a single-node cluster, plus what jobs ask SLURM for.

The ``slurm``-marked tests start the cluster with scripts/slurm_cluster.sh (Debian's slurm-wlm + munge, one
CPU partition, no accounting) and are skipped, with the reason, where it cannot be started (not root, no
apt-get). The full tiny run compares its Table 1 with the local run's in .ci-work/tiny (perf/tiny_e2e.py
makes it before pytest in CI; $REPRODUCE_LOCAL_TINY names another finished local run). The other tests
read the plan (dry runs) and the preset resources and need no cluster.
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

from perf.slurm_e2e import CLUSTER_SCRIPT, differing_tables, slurm_command, submitted_jobs

ROOT = Path(__file__).resolve().parent.parent
LOCAL_TINY = Path(os.environ.get("REPRODUCE_LOCAL_TINY", ROOT / ".ci-work" / "tiny"))
REFERENCES = [f"results/answers/{b}/_reference.jsonl" for b in ("tiny_alpaca_eval2", "tiny_arena_hard", "tiny_mt_bench")]


# ---------------------------------------------------------------- the cluster


@pytest.fixture(scope="module")
def partition() -> str:
    """A running single-node cluster's partition (started here when needed)."""
    if os.geteuid() != 0:
        pytest.skip("SLURM cluster needs root (scripts/slurm_cluster.sh installs packages and starts daemons)")
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        pytest.skip("SLURM is not installed and apt-get is not available to install it")
    proc = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 and "apt-get" in proc.stderr:
        pytest.skip(f"SLURM cluster could not be installed: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), "partition"], capture_output=True, text=True,
                          check=True).stdout.strip()


def _slurm(workdir: Path, targets: list[str], partition: str | None, *extra: str, timeout: int = 900):
    """Run the workflow through the SLURM profile; returns (return code, output, SLURM job ids submitted)."""
    proc = subprocess.run(slurm_command(workdir, targets, partition, *extra), cwd=workdir, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    return proc.returncode, out, submitted_jobs(out)


def _planned_jobs(workdir: Path, target: str) -> int:
    """How many jobs a dry run of ``target`` in the empty ``workdir`` plans."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          target, "--cores", "1"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(re.search(r"^total\s+(\d+)", out.stdout, re.M).group(1))


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_table1_through_slurm_equals_the_local_run(partition, tmp_path):
    local_tables = LOCAL_TINY / "results" / "tables"
    if not (local_tables / "table1.csv").exists():
        pytest.skip(f"no finished local tiny run in {LOCAL_TINY} to compare with (run perf/tiny_e2e.py)")
    work = tmp_path / "slurm"
    planned = _planned_jobs(tmp_path / "plan", "reproduce_table1")
    # the benchmark is the run: it times it, counts its SLURM jobs and compares Table 1 (reported with -s)
    proc = subprocess.run([sys.executable, str(ROOT / "perf" / "slurm_e2e.py"), "--workdir", str(work),
                           "--local-workdir", str(LOCAL_TINY)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert differing_tables(work / "results" / "tables", local_tables) == []
    metrics = json.loads((work / "slurm_e2e.json").read_text())
    # every job but the target rule itself (nothing to run) went through sbatch
    assert metrics["slurm_jobs"] == planned - 1, metrics


@pytest.mark.slurm
def test_killed_job_then_rerun_redoes_only_that_job(partition, tmp_path):
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

    rc, out2, jobs2 = _slurm(work, REFERENCES, partition)
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
def test_no_partition_where_the_cluster_has_no_default(partition, tmp_path):
    rc, out, _ = _slurm(tmp_path, REFERENCES[:1], None, "--retries", "0")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "No partition specified or system default partition" in out


@pytest.mark.slurm
def test_gpus_on_a_cpu_partition(partition, tmp_path):
    rc, out, _ = _slurm(tmp_path, REFERENCES[:1], partition, "--retries", "0",
                        "--set-resources", "reference_answers:gpu=1")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "Invalid generic resource (gres) specification" in out


def _slurm_log(out: str) -> Path:
    logs = re.findall(r"log: (\S+/slurm_logs/\S+\.log)", out)
    assert logs, "the error names no SLURM log:\n" + out[-3000:]
    return Path(logs[0])


@pytest.mark.slurm
def test_job_killed_for_its_memory_limit(partition, tmp_path):
    rc, out, _ = _slurm(tmp_path, REFERENCES[:1], partition, "--retries", "0",
                        "--set-resources", "reference_answers:mem_mb=50")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "exceeded memory limit" in _slurm_log(out).read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_job_killed_for_its_time_limit(partition, tmp_path):
    """The base model's SFT takes minutes; a 1-minute limit kills it (SLURM acts within ~30 s after)."""
    rc, out, _ = _slurm(tmp_path, ["results/models/tiny-add/sft"], partition, "--retries", "0",
                        "--set-resources", "base_model:runtime=1")
    _assert_failed_cleanly(rc, out, "base_model", tmp_path / "results/models/tiny-add/sft")
    assert "SLURM status is: 'TIMEOUT'" in out
    assert "DUE TO TIME LIMIT" in _slurm_log(out).read_text()


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
    assert {r for r in ("base_model", "preference_pairs", "judge", "train", "generate", "score")
            if paper.local(r)} == {"base_model", "preference_pairs", "judge"}
    assert not any(StageResources(load_config({"preset": "paper", "network_jobs": "cluster"})).local(r)
                   for r in ("base_model", "judge"))
    assert StageResources(load_config({"preset": "tiny"})).network_rules() == set()


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
