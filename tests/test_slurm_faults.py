"""SLURM for real, what goes wrong on a cluster: a job killed by scancel, then the rerun that redoes only it; no
partition where the cluster has none by default; GPUs asked of a CPU partition; jobs killed for their memory
and their time limits. Each fails cleanly: the error names the rule and the SLURM log, and no output is left
behind. On the single-node cluster of scripts/slurm_cluster.sh (tests/support/slurm.py); skipped, with the
reason, where it cannot be started.

The time-limit run is mostly waiting (for its limit, for SLURM's kill, for the executor's next status query),
so it starts with this file's first test and the others run while it waits; its test, the last, checks it.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from perf.slurm_e2e import CLUSTER_SCRIPT, slurm_command, submitted_jobs
from tests.support.slurm import partition, run_slurm  # noqa: F401  (partition: the cluster fixture)

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


@pytest.fixture(scope="module", autouse=True)
def time_limit_run(request, tmp_path_factory):
    """(the running Snakemake, its working directory) of the time-limit test, started before this file's first
    test when the time-limit test is selected (else None); stopped, its SLURM job cancelled, at the end."""
    if not any(item.originalname == "test_job_killed_for_its_time_limit" for item in request.session.items):
        yield None
        return
    partition = request.getfixturevalue("partition")  # noqa: F811  (skips the file where no cluster starts)
    work = tmp_path_factory.mktemp("time_limit")
    # one core: it only has to outlast its limit, and the other tests' jobs keep the second
    proc = subprocess.Popen(slurm_command(work, [TIME_LIMIT_TARGET], partition, "--retries", "0",
                                          "--set-resources", "base_model:runtime=1", "--set-threads", "base_model=1"),
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc, work
    if proc.poll() is None:  # a test failed before the time-limit test waited for it
        proc.terminate()  # Snakemake cancels its SLURM job on SIGTERM
        proc.communicate(timeout=120)


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
def test_job_killed_for_its_time_limit(time_limit_run):
    """The base model's SFT takes minutes; a 1-minute limit kills it (SLURM acts within ~30 s after). The run
    started with this file's first test (the ``time_limit_run`` fixture)."""
    proc, work = time_limit_run
    out = proc.communicate(timeout=900)[0]
    _assert_failed_cleanly(proc.returncode, out, "base_model", work / TIME_LIMIT_TARGET)
    assert len(submitted_jobs(out)) == 1, out[-3000:]
    assert "SLURM status is: 'TIMEOUT'" in out
    assert "DUE TO TIME LIMIT" in _slurm_log(out).read_text()
