"""``reproduce plan``: print and write the plan (``results/plan.md`` + ``plan.json``) of a preset before
anything runs; ``--compare`` sets a finished run's counted figures against the stored plan."""

from __future__ import annotations

import sys
from pathlib import Path


def cmd_plan(args) -> None:
    """Plan a preset before running it: jobs, GPU-hours, memory, disk, judge requests, tokens, dollars,
    what is cached; writes results/plan.md and plan.json (--compare: planned against counted)."""
    from reproduce.config import config_from_cli
    from reproduce.io import atomic_write_json, atomic_write_text

    cfg = config_from_cli(args.preset, args.config_json)
    out_dir = Path(args.out_dir)
    if args.compare:
        from reproduce.plan.compare import compare, render_compare

        result = compare(out_dir / "plan.json", Path(args.results))
        atomic_write_json(out_dir / "plan_compare.json", result)
        text = render_compare(result)
        atomic_write_text(out_dir / "plan_compare.md", text)
        print(text)
        return
    from reproduce.plan.build import build_plan
    from reproduce.plan.render import render_markdown, summary_lines

    plan = build_plan(cfg, args.results, args.target, args.throughput, args.gpu)
    atomic_write_json(out_dir / "plan.json", plan)
    atomic_write_text(out_dir / "plan.md", render_markdown(plan))
    for line in summary_lines(plan):
        print(line)
    print(f"wrote {out_dir / 'plan.md'} and {out_dir / 'plan.json'}", file=sys.stderr)


def register(sub) -> None:
    """Add ``plan`` to the ``reproduce`` command."""
    p = sub.add_parser("plan", help=cmd_plan.__doc__)
    p.set_defaults(fn=cmd_plan)
    p.add_argument("--preset", help="the preset to plan (default: config/default.yaml's)")
    p.add_argument("--config-json", help="the Snakemake config as JSON (preset and overrides), as the workflow passes it")
    p.add_argument("--target", default="reproduce_table1", choices=["reproduce_table1", "all", "reproduce_ablations"],
                   help="what will be run: reproduce_table1 (default), all (every judge on everything) or "
                        "reproduce_ablations (the preset's 'ablations'; the plan also gives its extra over reproduce_table1)")
    p.add_argument("--results", default="results", help="the results folder whose answers and caches count as done")
    p.add_argument("--out-dir", default="results", help="where plan.md / plan.json go (default results/)")
    p.add_argument("--throughput", help="the GPU benchmark's figures file (default results/perf/gpu_train.json when "
                                        "present, else the committed perf/figures/gpu_train_<gpu>.json)")
    p.add_argument("--gpu", help="the GPU the run will use (h100, h200, ...): picks the committed figures of that GPU; "
                                 "figures of another GPU are converted through their MFU, and the plan says so")
    p.add_argument("--compare", action="store_true",
                   help="after a run: planned (the stored plan.json) against counted requests, tokens, dollars, wall time")
