"""``reproduce doctor``: the preflight of a preset, one line per check, exit 1 on a blocker."""

from __future__ import annotations

import sys
import time


def cmd_doctor(args) -> None:
    """Preflight a preset in under a minute: hub token and access to every model and dataset at its
    revision, free disk, GPUs (or the SLURM partition's), judge keys, judging.max_usd, official files;
    one line per check, exit 1 on a blocker."""
    from reproduce.config import config_from_cli
    from reproduce.doctor.result import blocked
    from reproduce.doctor.run import preflight

    t0 = time.time()
    cfg = config_from_cli(args.preset, args.config_json)
    checks = preflight(cfg, args.results, no_budget=args.no_budget, slurm=args.slurm or bool(args.partition),
                       partition=args.partition, timeout=args.timeout)
    for c in checks:
        print(c.line(), flush=True)
    fails = sum(c.status == "FAIL" for c in checks)
    print(f"doctor: preset {cfg['preset']}, {len(checks)} checks, {fails} blocker(s), in {time.time() - t0:.1f} s")
    if blocked(checks):
        sys.exit(1)


def register(sub) -> None:
    """Add ``doctor`` to the ``reproduce`` command."""
    p = sub.add_parser("doctor", help=cmd_doctor.__doc__)
    p.set_defaults(fn=cmd_doctor)
    p.add_argument("--preset", help="the preset to check (default: config/default.yaml's)")
    p.add_argument("--config-json", help="the Snakemake config as JSON (preset and overrides), as the workflow passes it")
    p.add_argument("--results", default="results", help="the results folder (its free disk; jobs done there need nothing)")
    p.add_argument("--no-budget", action="store_true", help="run without judging.max_usd (no spending cap)")
    p.add_argument("--slurm", action="store_true",
                   help="jobs go to SLURM: check sinfo and the partition's GPUs, not this machine's")
    p.add_argument("--partition", help="the SLURM partition jobs go to (implies --slurm; default: sinfo's default)")
    p.add_argument("--timeout", type=float, default=10, help="seconds per network request (default 10)")
