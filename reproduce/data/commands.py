"""``reproduce prefs``: the setting's preference pairs, built on-policy or downloaded (the workflow's
``preference_pairs`` rule), or without --job a released dataset read into our pairs JSONL."""

from __future__ import annotations

import json

from reproduce.config import ConfigError
from reproduce.stage import add_stage, log, read_job, set_threads, write_resolved


def cmd_prefs(args) -> None:
    """Build (on-policy) or download the setting's preference pairs; without --job, read --dataset."""
    from reproduce.data.prefs import build_on_policy_pairs, download_pairs, read_preference_dataset, write_pairs

    if not args.job:
        # Standalone use: a released dataset from the hub, a local directory or a local file.
        if not args.dataset:
            raise ConfigError("reproduce prefs: give --dataset SOURCE (or --job, as the workflow does)")
        if args.max_pairs is not None and args.max_pairs < 1:
            raise ConfigError(f"reproduce prefs: --max-pairs must be at least 1, got {args.max_pairs}")
        pairs, summary = read_preference_dataset(args.dataset, args.revision, args.split, args.max_pairs)
        log(f"preference pairs: {json.dumps(summary)}")
        write_pairs(pairs, summary, args.out)
        return
    if args.dataset:
        raise ConfigError("reproduce prefs: --dataset and --job exclude each other (the job names its data)")
    job = read_job(args)
    set_threads(args)
    cfg = job["preference_data"]
    if cfg["kind"] == "on_policy":
        from reproduce.generate.hf import HFBackend
        from reproduce.tasks import load_task

        if not args.base:
            raise ConfigError("reproduce prefs: on-policy pairs need --base (the model that samples them)")
        task = load_task(job["base"]["task"])
        if cfg.get("reward", "verifier") != "verifier":
            raise ConfigError(f"preference_data.reward: only 'verifier' is implemented for on-policy data, got {cfg['reward']!r}")
        backend = HFBackend(args.base, batch_size=256)
        pairs, summary = build_on_policy_pairs(task.split("prefs"), backend, task.reward, cfg.get("samples_per_prompt", 5),
                                               cfg.get("temperature", 0.8), cfg.get("max_new_tokens", 16), job.get("seed", 0))
    else:
        pairs, summary = download_pairs(cfg)
    log(f"preference pairs: {json.dumps(summary)}")
    write_pairs(pairs, summary, args.out)
    write_resolved(job, args.out)


def register(sub) -> None:
    """Add ``prefs`` to the ``reproduce`` command's subparsers."""
    add_stage(sub, "prefs", cmd_prefs, "the preference pairs JSONL to write",
              ("--base", {"help": "with --job and on-policy data: the model that samples the pairs"}),
              ("--dataset", {"metavar": "SOURCE", "help": "without --job: a hub dataset id, a local directory or a "
                             "local .json/.jsonl/.parquet file, in the princeton-nlp or mk1111 layout"}),
              ("--revision", {"help": "with --dataset from the hub: the commit or tag to read (default main)"}),
              ("--split", {"default": "train", "help": "with --dataset: the split to read (default train)"}),
              ("--max-pairs", {"type": int, "help": "with --dataset: stop after this many pairs"}))
