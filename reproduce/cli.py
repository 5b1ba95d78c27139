"""The ``reproduce`` command: every workflow stage as a subcommand, usable without Snakemake.

Stage subcommands take ``--job`` (the resolved job config as JSON, written by the Snakefile) and write
``resolved_config.json`` beside their output; ``judge`` and ``score`` also work on answers and judgments
made anywhere (see README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from reproduce.config import ConfigError, config_from_cli, load_config
from reproduce.io import DataError, atomic_write_json


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _job(args) -> dict:
    return json.loads(args.job)


def _write_resolved(job: dict, out: str | Path, is_dir: bool = False) -> None:
    out = Path(out)
    path = out / "resolved_config.json" if is_dir else out.with_name(out.name.split(".")[0] + ".config.json")
    atomic_write_json(path, job)


def _threads(args) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def cmd_base(args) -> None:
    """Build or fetch the setting's starting model."""
    from reproduce.models import prepare_base

    job = _job(args)
    _threads(args)
    prepare_base(job["base"], args.out, seed=job.get("seed", 0), log=_log)
    _write_resolved(job, args.out, is_dir=True)


def cmd_prefs(args) -> None:
    """Build (on-policy) or download the setting's preference pairs."""
    from reproduce.data.prefs import build_on_policy_pairs, download_pairs, write_pairs

    job = _job(args)
    _threads(args)
    cfg = job["preference_data"]
    if cfg["kind"] == "on_policy":
        from reproduce.generate.hf import HFBackend
        from reproduce.tiny.task import load_task

        task = load_task(job["base"]["task"])
        if cfg.get("reward", "verifier") != "verifier":
            raise ConfigError(f"preference_data.reward: only 'verifier' is implemented for on-policy data, got {cfg['reward']!r}")
        backend = HFBackend(args.base, batch_size=256)
        pairs, summary = build_on_policy_pairs(task.split("prefs"), backend, task.reward, cfg.get("samples_per_prompt", 5),
                                               cfg.get("temperature", 0.8), cfg.get("max_new_tokens", 16), job.get("seed", 0))
    else:
        pairs = download_pairs(cfg)
        summary = {"dataset": cfg.get("dataset"), "revision": cfg.get("revision"), "pairs": len(pairs)}
    _log(f"preference pairs: {json.dumps(summary)}")
    write_pairs(pairs, summary, args.out)
    _write_resolved(job, args.out)


def cmd_train(args) -> None:
    """Train one method."""
    from reproduce.train.run import train_method

    job = _job(args)
    train_method(job["method_config"], args.base, args.prefs, args.out, guide_dir=args.guide, cache_dir=args.cache,
                 checkpoint_dir=args.checkpoints, threads=args.threads, log=_log)
    _write_resolved(job, args.out, is_dir=True)


def cmd_reference(args) -> None:
    """Write the reference/baseline answers of a benchmark."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.benchmarks.reference import reference_answers
    from reproduce.io import atomic_write_jsonl

    job = _job(args)
    bench = job["benchmark_config"]
    questions = load_questions(bench)
    atomic_write_jsonl(args.out, reference_answers(bench, questions))
    _write_resolved(job, args.out)


def cmd_generate(args) -> None:
    """Answer a benchmark's questions with a model."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.backends import make_backend
    from reproduce.generate.run import generate_answers

    job = _job(args)
    bench = job["benchmark_config"]
    questions = load_questions(bench)
    backend = make_backend(job.get("generation", {}), args.model, threads=args.threads)
    summary = generate_answers(questions, backend, bench["decoding"], job["method"], str(Path(args.model).resolve()),
                               args.out, batch_size=job.get("generation", {}).get("batch_size", 256), log=_log)
    _log(json.dumps(summary))
    _write_resolved({**job, "generation_summary": summary}, args.out)


def cmd_judge(args) -> None:
    """Judge answers on a benchmark with a judge (through the cache); writes native judgments JSONL."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.run import load_answers
    from reproduce.io import atomic_write_jsonl
    from reproduce.judges.base import make_judge
    from reproduce.judges.cache import JudgmentCache
    from reproduce.judges.run import judge_model, protocol_module

    if args.job:
        job = _job(args)
        bench, judge_cfg, judge_name = job["benchmark_config"], job["judge_config"], job["judge"]
    else:
        cfg = config_from_cli(args.preset)
        if args.benchmark not in cfg["benchmarks"]:
            raise ConfigError(f"--benchmark: unknown benchmark '{args.benchmark}' (known: {', '.join(cfg['benchmarks'])})")
        if args.judge not in cfg["judges"]:
            from reproduce.config import ROOT, _load_named

            cfg["judges"][args.judge] = _load_named("judge", ROOT / "evals" / "judges", args.judge, "judge", "--judge")
        bench, judge_cfg, judge_name = cfg["benchmarks"][args.benchmark], cfg["judges"][args.judge], args.judge
        job = {"stage": "judge", "benchmark": args.benchmark, "judge": judge_name, "benchmark_config": bench,
               "judge_config": judge_cfg}
    questions = load_questions(bench)
    qids = {q["question_id"] for q in questions}
    answers = load_answers(args.answers, qids)
    reference = load_answers(args.reference, qids) if args.reference else None
    proto = protocol_module(bench["protocol"])
    templates = proto.load_templates(bench)
    out = Path(args.out) if args.out else Path("results") / "judgments" / job["benchmark"] / judge_name / f"{Path(args.answers).stem}.jsonl"
    cache = JudgmentCache(Path(args.cache) if args.cache else out.parent / "_cache.jsonl")
    judge = make_judge(judge_name, judge_cfg)
    records, failures, stats = asyncio.run(judge_model(bench, judge, cache, questions, answers, reference, templates, log=_log))
    failures_file = out.with_name(out.stem + ".failures.json")
    atomic_write_json(failures_file, {"failures": failures, "stats": stats})
    # Too many failed games: no judgments file, so Snakemake reruns the job; the rerun asks only the failed
    # games (every verdict is in the cache). The limit is per benchmark (judging.max_failed_fraction).
    limit = bench.get("judging", {}).get("max_failed_fraction", 0.0)
    if stats["requests"] and stats["failed_games"] / stats["requests"] > limit:
        out.unlink(missing_ok=True)
        raise DataError(f"{failures_file}: {stats['failed_games']} of {stats['requests']} judge games failed "
                        f"(limit {limit:.0%} in judging.max_failed_fraction); rerun to retry only those")
    atomic_write_jsonl(out, records)
    _write_resolved({**job, "judge_stats": stats}, out)
    _log(f"judged: {json.dumps(stats)}")


def cmd_score(args) -> None:
    """Score judgments (native or an official tool's file) and print/write one JSON object."""
    from reproduce.judges.run import protocol_module

    protocol = args.protocol or args.benchmark
    bench = None
    if args.job:
        job = _job(args)
        bench = job["benchmark_config"]
        protocol = bench["protocol"]
    elif protocol not in ("alpaca_eval2", "arena_hard", "mt_bench"):
        cfg = load_config({"preset": args.preset} if args.preset else None)
        if args.benchmark not in cfg["benchmarks"]:
            raise ConfigError(f"--benchmark: unknown benchmark '{args.benchmark}'")
        bench = cfg["benchmarks"][args.benchmark]
        protocol = bench["protocol"]
    proto = protocol_module(protocol)
    records = proto.read_judgments(args.judgments, args.format)
    result = proto.score(records, bench, **({"baseline": args.baseline} if args.baseline else {}))
    result = {"benchmark": args.benchmark or protocol, "protocol": protocol, "judgments": str(args.judgments), **result}
    if args.out:
        atomic_write_json(args.out, result)
        if args.job:
            _write_resolved(_job(args), args.out)
    if args.json or not args.out:
        print(json.dumps(result, default=str))


def cmd_check_config(args) -> None:
    """Validate a preset and everything it references; print the grid."""
    cfg = load_config({"preset": args.preset} if args.preset else None)
    print(json.dumps({"preset": cfg["preset"], "settings": list(cfg["settings"]), "methods": cfg["methods"],
                      "benchmarks": list(cfg["benchmarks"]), "judges": list(cfg["judges"])}))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``reproduce`` command."""
    p = argparse.ArgumentParser(prog="reproduce", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def stage(name, fn, *extra):
        s = sub.add_parser(name, help=fn.__doc__)
        s.set_defaults(fn=fn)
        s.add_argument("--job", help="resolved job config (JSON), as written by the Snakefile")
        s.add_argument("--out", required=name not in ("judge",))
        s.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes its job threads)")
        for flag, kw in extra:
            s.add_argument(flag, **kw)
        return s

    stage("base", cmd_base)
    stage("prefs", cmd_prefs, ("--base", {"required": True}))
    stage("train", cmd_train, ("--base", {"required": True}), ("--prefs", {"required": True}), ("--guide", {}),
          ("--cache", {}), ("--checkpoints", {}))
    stage("reference", cmd_reference)
    stage("generate", cmd_generate, ("--model", {"required": True}))
    stage("judge", cmd_judge, ("--benchmark", {}), ("--answers", {"required": True}), ("--judge", {}),
          ("--reference", {"help": "reference/baseline answers JSONL"}), ("--cache", {}), ("--preset", {}))
    s = sub.add_parser("score", help=cmd_score.__doc__)
    s.set_defaults(fn=cmd_score)
    s.add_argument("--benchmark", help="benchmark key or protocol name (alpaca_eval2, arena_hard, mt_bench)")
    s.add_argument("--protocol")
    s.add_argument("--judgments", required=True)
    s.add_argument("--format", default="native", choices=["native", "alpaca_eval", "arena_hard", "fastchat"])
    s.add_argument("--baseline", help="arena_hard: baseline model name")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--out")
    s.add_argument("--job")
    s.add_argument("--preset")
    c = sub.add_parser("check-config", help=cmd_check_config.__doc__)
    c.set_defaults(fn=cmd_check_config)
    c.add_argument("--preset")
    # Stage packages may add their own subcommands: a module `<package>.commands` with register(sub).
    import importlib

    for package in COMMAND_PACKAGES:
        try:
            module = importlib.import_module(f"{package}.commands")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.commands":
                raise
            continue
        module.register(sub)
    return p


COMMAND_PACKAGES = ("reproduce.generate", "reproduce.judges", "reproduce.report", "reproduce.train")


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input exits 2 with a one-line error."""
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
