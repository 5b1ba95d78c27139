"""Run the tiny preset's ablations (`snakemake --cores all reproduce_ablations`) in a scratch working directory;
print wall time and peak memory, and the ablations table.

Full run (goal <= 15 minutes on 2 cores): every ablation of config/presets/tiny.yaml, from scratch (its own SFT
model, pairs and guide). `--capped` (CI, goal <= 3 minutes): one alpha at two steps, both guides, one method
trained to convergence, on a hard-linked copy of the tiny end-to-end step's results (its SFT model, pairs, DPO
guide and their answers and judgments are reused, nothing of them retrained).
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
# The CI subset: alpha 1.0 at its two eval steps (4, 8) and its end, TGDPO with each guide, TGDPO to convergence.
CAPPED = {"setting": "tiny-add", "alpha": ["tgdpo_a1"], "guidance": ["tgdpo", "tgdpo_g0_01"],
          "convergence": {"tgdpo": "tgdpo_conv"}}


def link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` as hard links (no bytes copied; modification times kept, so Snakemake sees the
    copied outputs as up to date)."""
    shutil.copytree(src, dst, copy_function=lambda a, b: __import__("os").link(a, b), dirs_exist_ok=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", help="working directory (default .ci-work/ablations, or .ci-work/ablations-capped)")
    ap.add_argument("--fresh", action="store_true", help="delete the working directory first")
    ap.add_argument("--capped", action="store_true", help="the CI subset, reusing --reuse's results")
    ap.add_argument("--reuse", default=str(ROOT / ".ci-work" / "tiny"),
                    help="with --capped: the tiny end-to-end step's working directory (default .ci-work/tiny)")
    args = ap.parse_args()
    work = Path(args.workdir or ROOT / ".ci-work" / ("ablations-capped" if args.capped else "ablations"))
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "--cores", "all",
           "reproduce_ablations"]
    if args.capped:
        reuse = Path(args.reuse) / "results"
        if not (reuse / "models" / "tiny-add" / "dpo").exists():
            print(f"{reuse}: no tiny end-to-end results to reuse (run perf/tiny_e2e.py first)")
            return 1
        if not (work / "results").exists():
            link_tree(reuse, work / "results")
        cmd += ["--config", "ablations=" + json.dumps(CAPPED)]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    sys.stdout.write(proc.stdout[-3000:])
    sys.stderr.write(proc.stderr[-12000:])
    goal = 180 if args.capped else 900
    name = "capped (CI)" if args.capped else "full"
    print(f"tiny reproduce_ablations, {name}: {wall:.0f} s wall (goal <= {goal}), peak {peak:.2f} GiB, rc {proc.returncode}")
    (work / "ablations_metrics.json").write_text(json.dumps(
        {"target": "reproduce_ablations", "capped": args.capped, "wall_s": round(wall, 1), "peak_rss_gib": round(peak, 2),
         "returncode": proc.returncode, "goal_wall_s": goal}, indent=2))
    table = work / "results" / "tables" / "ablations.md"
    if proc.returncode == 0 and table.exists():
        print(table.read_text())
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
