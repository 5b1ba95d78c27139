"""The seeds study: ``reproduce_seeds`` on the tiny preset (3 seeds) and on the tiny-carry setting (5 seeds).

Each study runs in its own scratch working directory (default ``.ci-work/seeds/<study>``), so a developer's
results/ is untouched, and prints its wall time, the peak resident memory (of the largest job, from the
rules' Snakemake ``benchmark:`` files, and of any process the run waited for), the CPU seconds per stage,
the seeds Table 1 and the paired method comparisons over seeds and prompts.

    python perf/seeds_study.py --fresh                 # both studies
    python perf/seeds_study.py --only carry --fresh    # the tiny-carry setting alone

Not in CI (about an hour on 2 CPU cores); CI runs the seeds DAG as a dry run and the unit tests.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDIES = {  # study -> Snakemake --config of its reproduce_seeds run
    "tiny": ["preset=tiny", "seeds=[42,43,44]", "methods=[sft,dpo,simpo,tgdpo,chosen_nll]"],
    "carry": ["preset=tiny-carry"],
}


def stage_figures(work: Path) -> dict:
    """Per stage (base, prefs, train, generate, judge): jobs, summed CPU seconds and the largest max_rss (MiB)
    from the Snakemake benchmark files of the run."""
    out = {}
    for tsv in (work / "results" / "benchmarks").rglob("*.tsv"):
        stage = tsv.relative_to(work / "results" / "benchmarks").parts[0]
        with open(tsv) as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]
        s = out.setdefault(stage, {"jobs": 0, "cpu_s": 0.0, "max_rss_mib": 0.0})
        s["jobs"] += 1
        s["cpu_s"] += float(row.get("cpu_time") or 0)
        s["max_rss_mib"] = max(s["max_rss_mib"], float(row.get("max_rss") or 0))
    return out


def run_study(name: str, work: Path, fresh: bool) -> dict:
    """Run one study's reproduce_seeds target in ``work``; returns its figures."""
    if fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work),
                           "--cores", "all", "reproduce_seeds", "--config", *STUDIES[name]],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    (work / "seeds_study.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-6000:])
    stages = stage_figures(work)
    figures = {"study": name, "config": STUDIES[name], "returncode": proc.returncode, "wall_s": round(wall, 1),
               "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
               "peak_rss_gib_any_process": round(after.ru_maxrss / 2**20, 2),
               "peak_rss_gib_largest_job": round(max((s["max_rss_mib"] for s in stages.values()), default=0) / 1024, 2),
               "stages": stages}
    (work / "seeds_study.json").write_text(json.dumps(figures, indent=2))
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(STUDIES), help="run one study")
    ap.add_argument("--workdir", default=str(ROOT / ".ci-work" / "seeds"), help="parent of the studies' working directories")
    ap.add_argument("--fresh", action="store_true", help="delete each study's working directory first")
    args = ap.parse_args()
    rc = 0
    for name in [args.only] if args.only else list(STUDIES):
        work = Path(args.workdir) / name
        f = run_study(name, work, args.fresh)
        rc = rc or f["returncode"]
        print(f"== {name}: reproduce_seeds --config {' '.join(f['config'])}")
        print(f"wall {f['wall_s']:.0f} s, CPU {f['cpu_s']:.0f} s, peak resident memory {f['peak_rss_gib_largest_job']:.2f} GiB "
              f"(largest job; any process: {f['peak_rss_gib_any_process']:.2f} GiB), exit {f['returncode']}")
        for stage, s in sorted(f["stages"].items()):
            print(f"  {stage:<9} {s['jobs']:>3} jobs  {s['cpu_s']:>7.0f} CPU s  max {s['max_rss_mib']:.0f} MiB")
        tables = work / "results" / "tables" / "seeds"
        for md in [*sorted(tables.glob("table1_*.md")), tables / "method_differences.md"]:
            if md.exists():
                print(md.read_text())
    return rc


if __name__ == "__main__":
    sys.exit(main())
