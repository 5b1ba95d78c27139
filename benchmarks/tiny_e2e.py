"""Run the tiny preset end to end in a scratch working directory; print wall time and peak memory.

Targets: <= 10 minutes wall and <= 4 GiB peak resident memory on a 2-core CPU. The results stay in the
working directory (default .ci-work/tiny) for the tests that inspect real outputs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default=str(ROOT / ".ci-work" / "tiny"))
    ap.add_argument("--fresh", action="store_true", help="delete the working directory first")
    ap.add_argument("--target", default="reproduce_table1")
    args = ap.parse_args()
    work = Path(args.workdir)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
                           "--cores", "all", args.target], cwd=ROOT)
    wall = time.time() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    metrics = {"wall_s": round(wall, 1), "peak_rss_gib": round(peak_gib, 2), "returncode": proc.returncode,
               "targets": {"wall_s": 600, "peak_rss_gib": 4.0}}
    (work / "e2e_metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"tiny preset end to end: {wall:.0f} s wall (target <= 600), peak {peak_gib:.2f} GiB (target <= 4)")
    table = work / "results" / "tables" / "table1.md"
    if table.exists():
        print(table.read_text())
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
