"""The single-node SLURM cluster for tests: the ``partition`` fixture (the cluster started when needed, or the
test skipped with the reason) and the README's SLURM command run in a scratch directory. Used by
tests/test_slurm.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from perf.slurm_e2e import CLUSTER_SCRIPT, slurm_command, submitted_jobs


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


def run_slurm(workdir: Path, targets: list[str], partition: str | None, *extra: str, timeout: int = 900):
    """Run the workflow through the SLURM profile; returns (return code, output, SLURM job ids submitted)."""
    proc = subprocess.run(slurm_command(workdir, targets, partition, *extra), cwd=workdir, capture_output=True,
                          text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    return proc.returncode, out, submitted_jobs(out)
