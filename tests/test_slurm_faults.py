"""SLURM for real, what goes wrong on a cluster: a job killed by scancel, then the rerun that redoes only it; no
partition where the cluster has none by default; GPUs asked of a CPU partition; jobs killed for their memory
and their time limits. Each fails cleanly: the error names the rule and the SLURM log, and no output is left
behind. On the single-node cluster of scripts/slurm_cluster.sh (tests/support/slurm.py); skipped, with the
reason, where it cannot be started.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from perf.slurm_e2e import CLUSTER_SCRIPT, slurm_command
from tests.support.slurm import partition, run_slurm  # noqa: F401  (partition: the cluster fixture)

REFERENCES = [f"results/answers/{b}/_reference.jsonl" for b in ("tiny_alpaca_eval2", "tiny_arena_hard", "tiny_mt_bench")]


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


@pytest.mark.slurm
def test_a_second_start_returns_while_the_cluster_runs(partition):  # noqa: F811
    """The daemons do not inherit the start lock: a second start (another test worker's) returns at once."""
    assert _daemons_holding(START_LOCK) == [], "a daemon holds the start lock; every later start would wait on it"
    proc = subprocess.run(["bash", str(CLUSTER_SCRIPT), "start"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slurm
def test_killed_job_then_rerun_redoes_only_that_job(partition, tmp_path):  # noqa: F811
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
def test_no_partition_where_the_cluster_has_no_default(partition, tmp_path):  # noqa: F811
    rc, out, _ = run_slurm(tmp_path, REFERENCES[:1], None, "--retries", "0")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "No partition specified or system default partition" in out


@pytest.mark.slurm
def test_gpus_on_a_cpu_partition(partition, tmp_path):  # noqa: F811
    rc, out, _ = run_slurm(tmp_path, REFERENCES[:1], partition, "--retries", "0",
                        "--set-resources", "reference_answers:gpu=1")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "Invalid generic resource (gres) specification" in out


def _slurm_log(out: str) -> Path:
    logs = re.findall(r"log: (\S+/slurm_logs/\S+\.log)", out)
    assert logs, "the error names no SLURM log:\n" + out[-3000:]
    return Path(logs[0])


@pytest.mark.slurm
def test_job_killed_for_its_memory_limit(partition, tmp_path):  # noqa: F811
    rc, out, _ = run_slurm(tmp_path, REFERENCES[:1], partition, "--retries", "0",
                        "--set-resources", "reference_answers:mem_mb=50")
    _assert_failed_cleanly(rc, out, "reference_answers", tmp_path / REFERENCES[0])
    assert "exceeded memory limit" in _slurm_log(out).read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_job_killed_for_its_time_limit(partition, tmp_path):  # noqa: F811
    """The base model's SFT takes minutes; a 1-minute limit kills it (SLURM acts within ~30 s after)."""
    rc, out, _ = run_slurm(tmp_path, ["results/models/tiny-add/sft"], partition, "--retries", "0",
                        "--set-resources", "base_model:runtime=1")
    _assert_failed_cleanly(rc, out, "base_model", tmp_path / "results/models/tiny-add/sft")
    assert "SLURM status is: 'TIMEOUT'" in out
    assert "DUE TO TIME LIMIT" in _slurm_log(out).read_text()
