"""``reproduce bridge``: map a current judge's numbers onto a retired judge's (registered by ``reproduce.cli``).

    reproduce bridge --judge gpt-4.1 --benchmark alpaca_eval2 --dry-run     # print requests, tokens, dollars
    reproduce bridge --judge gpt-4.1 --benchmark alpaca_eval2               # re-judge the panel, write the report
    reproduce bridge --replay alpaca_eval_cot_gpt4_turbo_fn                 # an archived annotator as "current"

Writes ``results/bridge/<judge>/<benchmark>/bridge.{md,json}`` (``--out-dir`` to change).
"""

from __future__ import annotations

import sys
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_bridge(args) -> None:
    """Re-judge archived answers the retired judge judged, compare the judges, calibrate, and bridge Table 1."""
    from reproduce.bridge.run import run_bridge

    run_bridge(benchmark=args.benchmark, judge_name=args.judge, annotator=args.replay, preset=args.preset,
               config_json=args.config_json, manifest=args.manifest, panel=args.panel, limit=args.limit, results=Path(args.results),
               out_dir=Path(args.out_dir) if args.out_dir else None, table=Path(args.table) if args.table else None,
               dry_run=args.dry_run, rounds=args.rounds, seed=args.seed, log=_log)


def register(sub) -> None:
    """Add ``bridge`` to the ``reproduce`` argument parser."""
    s = sub.add_parser("bridge", help=cmd_bridge.__doc__)
    s.set_defaults(fn=cmd_bridge)
    s.add_argument("--benchmark", default="alpaca_eval2", help="alpaca_eval2 (per-item bridge, default) or arena_hard "
                   "(model-level bridge)")
    who = s.add_mutually_exclusive_group(required=True)
    who.add_argument("--judge", help="the current judge (evals/judges/<name>.yaml) that re-judges the panel")
    who.add_argument("--replay", metavar="ANNOTATOR", help="no judge calls: an archived annotator config's verdicts "
                     "play the current judge (e.g. alpaca_eval_cot_gpt4_turbo_fn)")
    s.add_argument("--preset", help="the preset whose benchmark settings and Table 1 apply (default config/default.yaml's)")
    s.add_argument("--config-json", help="the Snakemake config as JSON (the workflow passes it)")
    s.add_argument("--manifest", help="archive manifest (evals/archives/<name>.yaml or a path; default the benchmark's)")
    s.add_argument("--panel", nargs="+", help="panel models (default: the manifest's panel)")
    s.add_argument("--limit", type=int, help="judge only the N shortest pairs of each model (a smoke run; marked a subset)")
    s.add_argument("--results", default="results", help="the results folder (judgment cache, Table 1 judgments)")
    s.add_argument("--table", help="a Table 1 csv to bridge (default results/tables/table1_<judge>.csv if present)")
    s.add_argument("--out-dir", help="where bridge.{md,json} go (default results/bridge/<judge>/<benchmark>)")
    s.add_argument("--dry-run", action="store_true", help="print requests, tokens and dollars, send nothing")
    s.add_argument("--rounds", type=int, default=2000, help="paired bootstrap rounds (default 2000)")
    s.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
