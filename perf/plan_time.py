"""Time `reproduce plan` on the paper preset (target <= 10 s: it reads configs and official question files,
renders every judge request and counts tokens; no model is loaded) and print its totals.

Prints wall and CPU seconds (on a loaded machine the wall time includes waiting for a core). A figure to
watch, not a pass/fail check."""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        out = subprocess.run([sys.executable, "-m", "reproduce.cli", "plan", "--preset", "paper", "--results",
                              f"{tmp}/results", "--out-dir", tmp], cwd=ROOT, capture_output=True, text=True)
        wall = time.time() - t0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(out.stdout, end="")
    if out.returncode != 0:
        print(out.stderr[-2000:])
        return 1
    over = "" if wall <= 10 else " -- over target"
    print(f"reproduce plan --preset paper: {wall:.2f} s wall, {usage.ru_utime + usage.ru_stime:.2f} s CPU "
          f"(target <= 10 s{over})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
