"""The ``reproduce rehearsal`` subcommand (registered by ``reproduce.cli``)."""

from __future__ import annotations

from reproduce.io import DataError
from reproduce.stage import log as _log


def cmd_rehearsal(args) -> None:
    """Rehearse the paper preset on CPU: assets, stand-in judge, workflow, per-stage figures."""
    from reproduce.rehearsal.run import run_rehearsal

    rc = run_rehearsal(args.workdir, target=args.target, cores=args.cores, fresh=args.fresh,
                       extra_args=args.snakemake_args, log=_log)
    if rc != 0:
        raise DataError(f"rehearsal: snakemake {args.target} exited with {rc}; job logs are in {args.workdir}/results/logs")


def register(sub) -> None:
    """Add ``rehearsal`` to the ``reproduce`` argument parser."""
    p = sub.add_parser("rehearsal", help=cmd_rehearsal.__doc__)
    p.set_defaults(fn=cmd_rehearsal)
    p.add_argument("--workdir", default=".ci-work/rehearsal",
                   help="Snakemake working directory (assets, results/, figures/ go there; default .ci-work/rehearsal)")
    p.add_argument("--target", default="reproduce_table1", help="Snakemake target (default reproduce_table1; `all` adds the second judge)")
    p.add_argument("--cores", type=int, default=2, help="Snakemake --cores (default 2)")
    p.add_argument("--fresh", action="store_true", help="delete the working directory first")
    p.add_argument("snakemake_args", nargs="*", help="further Snakemake options, after `--`")
