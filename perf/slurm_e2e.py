"""The tiny preset's reproduce_table1 through SLURM (config/slurm profile) vs the same run locally.

Prints the wall time through SLURM, the local wall time, their ratio (the scheduler's overhead on this
machine), the number of SLURM jobs, and whether Table 1 is byte-identical to the local run's. Needs a
running cluster (`bash scripts/slurm_cluster.sh start`, as root). The local run is read from
``--local-workdir`` (default .ci-work/tiny, which perf/tiny_e2e.py leaves, with its wall time in
e2e_metrics.json); ``--run-local`` makes it first where that directory has no Table 1.

``--reuse-base`` copies the local run's base models (``results/models/<setting>/sft``) into the scratch
directory first, so SLURM runs every job after them: the base SFT is the same job in every run and most of the
tiny run's time (CI's test does this; the base job's own SLURM submission is exercised by the time-limit test).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
TABLE_FILES = ("table1.csv", "table1.md", "table1.tex")
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def cluster_partition() -> str:
    """The CI cluster's partition; raises RuntimeError with the script's reason when the cluster is not up."""
    status = subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        raise RuntimeError(f"SLURM cluster not up ({status.stderr.strip()}); run: bash scripts/slurm_cluster.sh start")
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), "partition"], capture_output=True, text=True,
                          check=True).stdout.strip()


def slurm_command(workdir: Path, targets: list[str], partition: str | None, *extra: str,
                  status_interval: int = 1) -> list[str]:
    """The README's SLURM command for ``targets`` in ``workdir`` (targets first), on a cluster without an
    accounting database (squeue status). ``partition=None`` leaves the partition out."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *targets,
           "--profile", str(ROOT / "config" / "slurm"), "--slurm-status-command", "squeue",
           # the plugin waits 40 s before its first status query, then 10 s longer after each query that finds
           # nothing finished, back to the start after one that does: with many short jobs that wait, not
           # SLURM, would dominate the wall time. From 1 s, a job of ~10 s is seen done at the second query
           # (12 s), where 5 s sees it at 20 s (the tiny run, base model reused: 294 s wall at 1 s, alone)
           "--slurm-init-seconds-before-status-checks", str(status_interval)]
    if partition is not None:
        cmd += ["--default-resources", f"slurm_partition={partition}"]
    return cmd + list(extra)


def submitted_jobs(output: str) -> list[str]:
    """SLURM job ids a Snakemake run's output says it submitted."""
    return SUBMITTED.findall(output)


def run(cmd: list[str], cwd: Path) -> tuple[int, float, str]:
    """Run ``cmd``; returns (return code, wall seconds, stdout+stderr)."""
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return proc.returncode, time.time() - t0, proc.stdout + proc.stderr


def local_wall(local: Path, run_local: bool) -> float | None:
    """Wall seconds of the local reproduce_table1 in ``local`` (from e2e_metrics.json), running it first
    when ``run_local`` and it has no Table 1. None: no finished local run to compare with."""
    metrics = local / "e2e_metrics.json"
    if not (local / "results" / "tables" / "table1.csv").exists():
        if not run_local:
            return None
        local.mkdir(parents=True, exist_ok=True)
        rc, wall, out = run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(local),
                             "--cores", "all", "reproduce_table1"], ROOT)
        if rc != 0:
            sys.stderr.write(out[-6000:])
            raise RuntimeError(f"local reproduce_table1 in {local} failed")
        metrics.write_text(json.dumps({"reproduce_table1": {"wall_s": round(wall, 1), "returncode": rc}}, indent=2))
    if not metrics.exists():
        return None
    return float(json.loads(metrics.read_text())["reproduce_table1"]["wall_s"])


def seed_base_models(local: Path, work: Path) -> list[str]:
    """Copy the local run's base models (``results/models/<setting>/sft``, timestamps kept) into ``work``, so
    that Snakemake there plans every job but theirs; returns the copied paths relative to ``work``."""
    copied = []
    for model in sorted((local / "results" / "models").glob("*/sft")):
        rel = model.relative_to(local)
        shutil.copytree(model, work / rel, copy_function=shutil.copy2)
        copied.append(str(rel))
    return copied


def differing_tables(a: Path, b: Path) -> list[str]:
    """Table 1 files that differ (or are missing) between two results directories."""
    return [f for f in TABLE_FILES
            if not ((a / f).exists() and (b / f).exists() and (a / f).read_bytes() == (b / f).read_bytes())]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", default=str(ROOT / ".ci-work" / "slurm"), help="scratch directory (emptied first)")
    ap.add_argument("--local-workdir", default=str(ROOT / ".ci-work" / "tiny"))
    ap.add_argument("--run-local", action="store_true", help="run the local reproduce_table1 if it is missing")
    ap.add_argument("--reuse-base", action="store_true",
                    help="start from the local run's base models (results/models/*/sft) instead of training them")
    ap.add_argument("--status-interval", type=int, default=1, help="seconds before the plugin's first status query")
    args = ap.parse_args()
    work, local = Path(args.workdir), Path(args.local_workdir)
    try:
        partition = cluster_partition()
        local_s = local_wall(local, args.run_local)
    except RuntimeError as e:
        print(f"slurm_e2e: {e}", file=sys.stderr)
        return 2
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    reused = seed_base_models(local, work) if args.reuse_base else []
    rc, wall, out = run(slurm_command(work, ["reproduce_table1"], partition, status_interval=args.status_interval),
                        work)
    (work / "snakemake.log").write_text(out)
    jobs = submitted_jobs(out)
    differ = differing_tables(work / "results" / "tables", local / "results" / "tables") if local_s else None
    metrics = {"slurm_wall_s": round(wall, 1), "local_wall_s": local_s, "slurm_jobs": len(jobs), "returncode": rc,
               "ratio": round(wall / local_s, 2) if local_s and not reused else None, "tables_differ": differ,
               "status_interval_s": args.status_interval, "reused_from_local": reused}
    (work / "slurm_e2e.json").write_text(json.dumps(metrics, indent=2))
    if rc != 0:
        sys.stderr.write(out[-8000:])
    print(f"tiny reproduce_table1 through SLURM: {wall:.0f} s wall, {len(jobs)} SLURM jobs, return code {rc}"
          + (f" (started from the local run's {', '.join(reused)})" if reused else ""))
    if local_s:
        if reused:  # the local wall time includes the base SFT this run skipped: no overhead ratio
            print(f"same run locally (--cores all, with its base SFT): {local_s:.0f} s")
        else:
            print(f"same run locally (--cores all): {local_s:.0f} s; SLURM / local = {wall / local_s:.2f}")
        print("Table 1 " + ("identical to the local run's" if not differ else f"DIFFERS from the local run's: {differ}"))
    else:
        print(f"no finished local run in {local} to compare with (run perf/tiny_e2e.py, or pass --run-local)")
    return 1 if rc != 0 or differ else 0


if __name__ == "__main__":
    sys.exit(main())
