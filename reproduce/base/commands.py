"""``reproduce base``: build or fetch the setting's starting model (the workflow's ``base_model`` rule)."""

from __future__ import annotations

from reproduce.stage import add_stage, log, read_job, set_threads, write_resolved


def cmd_base(args) -> None:
    """Build or fetch the setting's starting model."""
    from reproduce.base.models import prepare_base

    job = read_job(args)
    set_threads(args)
    prepare_base(job["base"], args.out, seed=job.get("seed", 0), log=log)
    write_resolved(job, args.out, is_dir=True)


def register(sub) -> None:
    """Add ``base`` to the ``reproduce`` command's subparsers."""
    add_stage(sub, "base", cmd_base, "the model directory to write")
