"""Time a Snakemake dry run of the paper preset's whole DAG and check it plans every job.

The time is a figure to watch (target <= 10 s), not a pass/fail check: a slow machine must not fail CI.
It includes Snakemake's own start-up, which on a host with slurm installed but no controller answering
waits for the SLURM executor plugin's `scontrol show config` (10 s timeout)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "all", "all", "--config", "preset=paper"],
                         cwd=ROOT, capture_output=True, text=True)
    seconds = time.time() - t0
    if out.returncode != 0:
        print(out.stdout[-3000:], out.stderr[-3000:])
        return 1
    m = re.search(r"^total\s+(\d+)", out.stdout, re.M)
    jobs = int(m.group(1)) if m else 0
    over = "" if seconds <= 10 else " -- over target"
    print(f"paper preset dry run: {jobs} jobs planned in {seconds:.2f} s (target <= 10 s{over})")
    if jobs <= 100:
        print(f"expected the paper preset's whole DAG (> 100 jobs), got {jobs}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
