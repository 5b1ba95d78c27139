"""``reproduce train``: train one method (the workflow's ``train`` rule, under ``accelerate launch`` when
the setting asks for several processes)."""

from __future__ import annotations

from reproduce.stage import add_stage, log, read_job, write_resolved


def cmd_train(args) -> None:
    """Train one method."""
    from reproduce.train.run import train_method

    job = read_job(args)
    train_method(job["method_config"], args.base, args.prefs, args.out, guide_dir=args.guide, cache_dir=args.cache,
                 checkpoint_dir=args.checkpoints, threads=args.threads, log=log,
                 template_kwargs=job.get("chat_template_kwargs"))
    from accelerate import PartialState

    if PartialState().is_main_process:  # one writer (and one git call) under accelerate launch
        write_resolved(job, args.out, is_dir=True)


def cmd_step_model(args) -> None:
    """Make one weights-only eval-step save of a trained method a model directory (<method>-step<N>)."""
    from reproduce.train.disk import gib
    from reproduce.train.milestones import publish_step

    job = read_job(args)
    nbytes = publish_step(args.save, args.out)
    write_resolved(job, args.out, is_dir=True)
    log(f"{args.out}: the weights saved at step {job.get('checkpoint_step')} ({gib(nbytes)}, hard-linked from {args.save})")


def register(sub) -> None:
    """Add ``train`` and ``step-model`` to the ``reproduce`` command's subparsers."""
    add_stage(sub, "train", cmd_train, "the trained model directory to write",
              ("--base", {"required": True, "help": "the starting (SFT) model directory"}),
              ("--prefs", {"required": True, "help": "the preference pairs JSONL"}),
              ("--guide", {"help": "TGDPO: the guidance model directory (a DPO-trained model)"}),
              ("--cache", {"help": "directory caching the reference/guidance per-token log-probs"}),
              ("--checkpoints", {"help": "checkpoint directory; a killed run resumes from its last complete checkpoint"}))
    add_stage(sub, "step-model", cmd_step_model, "the model directory to write (<method>-step<N>)",
              ("--save", {"required": True, "help": "the weights-only save of that step (<checkpoints>/eval/step-<N>)"}))
