"""``reproduce judge``: judge a model's answers on a benchmark with one judge, through the judgment cache
(the workflow's ``judge`` rule, or by hand on answers made anywhere: see docs/judges.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from reproduce.config import ConfigError, config_from_cli, refuse_retired
from reproduce.io import DataError, atomic_write_json, make_parent
from reproduce.paths import ResultPaths, failures_beside
from reproduce.stage import add_stage, log, read_job, write_resolved


def _judge_job(args) -> dict:
    """The judge job: --job's, or one made from --preset, --benchmark and --judge."""
    if args.job:
        return read_job(args)
    cfg = config_from_cli(args.preset)
    if args.benchmark not in cfg["benchmarks"]:
        raise ConfigError(f"--benchmark: unknown benchmark '{args.benchmark}' (known: {', '.join(cfg['benchmarks'])})")
    if args.judge not in cfg["judges"]:
        from reproduce.config import ROOT, _load_named

        cfg["judges"][args.judge] = _load_named("judge", ROOT / "evals" / "judges", args.judge, "judge", "--judge")
    return {"stage": "judge", "benchmark": args.benchmark, "judge": args.judge,
            "benchmark_config": cfg["benchmarks"][args.benchmark], "judge_config": cfg["judges"][args.judge],
            **({"judging": cfg["judging"]} if cfg.get("judging") else {})}


def _cache(args, out: Path):
    """--cache DIR: the judge's cache folder (read whole, this job appends to its own file in it);
    --cache FILE.jsonl: one file this job reads and writes (one job at a time)."""
    from reproduce.judges.cache import JudgmentCache, writer_file

    cache_arg = Path(args.cache) if args.cache else out.parent / "_cache"
    if cache_arg.suffix == ".jsonl":
        return JudgmentCache(cache_arg)
    return JudgmentCache(writer_file(cache_arg, out), shared_dir=cache_arg)


def _spending(job: dict, judge_name: str, cache, out: Path, args):
    """(batch sender, cost guard) of the job's ``judging`` settings: ``mode: batch`` sends through the Batch
    API where one exists (its state beside the job's cache file); every request goes through the spend
    ledger (--spend-ledger) and ``max_usd``."""
    from reproduce.judges.batch import DEFAULT_WAIT_S, BatchSender, batch_capable
    from reproduce.judges.guard import CostGuard

    judging = job.get("judging") or {}
    batch = None
    if judging.get("mode") == "batch":
        judge_cfg = job["judge_config"]
        if batch_capable(judge_cfg):
            batch = BatchSender(cache.path.with_suffix(".batch.json"), judging.get("batch_poll_s", 60.0),
                                wait_s=judging.get("batch_wait_s", DEFAULT_WAIT_S))
        else:
            where = judge_cfg.get("base_url") or "its endpoint"
            log(f"judge {judge_name}: judging.mode batch, but {where} is not OpenAI's API and the judge file does not "
                "say batch: true; standard mode")
    return batch, CostGuard(judging.get("max_usd"), args.spend_ledger, str(out))


def cmd_judge(args) -> None:
    """Judge answers on a benchmark with a judge (through the cache); writes native judgments JSONL."""
    from reproduce.benchmarks.protocol import get_protocol
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.run import load_answers
    from reproduce.io import atomic_write_jsonl
    from reproduce.judges.base import JudgeFatalError
    from reproduce.judges.guard import money
    from reproduce.judges.kinds import make_judge
    from reproduce.judges.run import judge_model

    job = _judge_job(args)
    bench, judge_name = job["benchmark_config"], job["judge"]
    refuse_retired(job["judge_config"], "--job" if args.job else "--judge")  # before any answer is read or request sent
    questions = load_questions(bench)
    qids = {q["question_id"] for q in questions}
    answers = load_answers(args.answers, qids)
    if not answers:
        raise DataError(f"{args.answers}: no answers to judge (empty input)")
    reference = load_answers(args.reference, qids) if args.reference else None
    job = {**job, "answers_cover": {"answered": len(answers), "questions": len(questions)}}
    if len(answers) < len(questions):
        log(f"warning: {args.answers}: answers to {len(answers)} of the {len(questions)} questions of "
            f"{job['benchmark']}; a score of these judgments will be marked INCOMPLETE")
    templates = get_protocol(bench["protocol"]).load_templates(bench)
    out = Path(args.out) if args.out else Path(ResultPaths().judge_dir(job["benchmark"], judge_name)) / f"{Path(args.answers).stem}.jsonl"
    make_parent(out)  # an unwritable --out fails here, before any judging
    cache = _cache(args, out)
    judge = make_judge(judge_name, job["judge_config"])
    failures_file = failures_beside(out)
    batch, guard = _spending(job, judge_name, cache, out, args)
    settled = guard.begin()  # what a killed run of this job left reserved
    if settled:
        log(settled)
    judge.guard = guard
    try:
        records, failures, stats = asyncio.run(judge_model(bench, judge, cache, questions, answers, reference,
                                                           templates, log=log, batch=batch))
    except JudgeFatalError as e:
        # stopped at the first such reply: every verdict judged before it is in the cache
        out.unlink(missing_ok=True)
        raise DataError(str(e)) from None
    atomic_write_json(failures_file, {"failures": failures, "stats": stats})
    if guard.stopped:  # the cap: what was paid for is cached; the job ends without judgments, so it reruns
        out.unlink(missing_ok=True)
        left = stats.get("budget_left", {})
        raise DataError(f"{guard.stopped}; {left.get('games', len(failures))} of {stats['requests']} games are left, "
                        f"up to {money(left.get('usd_max', 0.0))} to finish them (this run cost "
                        f"{money(stats['cost_usd'])}; what was judged is cached) - raise judging.max_usd, or start a new "
                        f"ledger, and rerun")
    # Failed games (after the retry budget): their records carry no verdict, the score counts them as
    # failed and is marked incomplete, and a rerun asks exactly those games (the rest is cached). Up to
    # judging.max_failed_fraction the job succeeds with these judgments; above it the job fails and
    # leaves no judgments file, so Snakemake runs it again.
    limit = bench.get("judging", {}).get("max_failed_fraction", 0.0)
    if stats["requests"] and stats["failed_games"] / stats["requests"] > limit:
        out.unlink(missing_ok=True)
        raise DataError(f"{failures_file}: {stats['failed_games']} of {stats['requests']} judge games failed "
                        f"(limit {limit:.0%} in judging.max_failed_fraction); rerun to retry only those")
    atomic_write_jsonl(out, records)
    write_resolved({**job, "judge_stats": stats}, out)
    if failures:
        log(f"warning: {len(failures)} of {stats['requests']} judge games failed ({failures_file}); the score "
            "will be marked incomplete - rerun this judge job to ask exactly those games again")
    log(f"judged: {json.dumps(stats)}")


def register(sub) -> None:
    """Add ``judge`` to the ``reproduce`` command's subparsers."""
    add_stage(sub, "judge", cmd_judge,
              "the judgments JSONL to write (default: results/judgments/<benchmark>/<judge>/<answers>.jsonl)",
              ("--benchmark", {"help": "without --job: the benchmark (evals/benchmarks/<name>.yaml)"}),
              ("--answers", {"required": True, "help": "answers JSONL of {question_id, turns}"}),
              ("--judge", {"help": "without --job: the judge (evals/judges/<name>.yaml)"}),
              ("--reference", {"help": "reference/baseline answers JSONL"}),
              ("--cache", {"help": "judgment cache: the judge's cache directory, or one .jsonl file (default: _cache "
                                   "beside --out)"}),
              ("--preset", {"help": "without --job: the preset whose benchmark and judge settings apply"}),
              ("--spend-ledger", {"help": "the spend ledger every billed request of a results folder goes through, "
                                          "checked against judging.max_usd (the workflow passes "
                                          "results/judgments/_spend.jsonl; default: none, the job's own figures)"}),
              out_required=False)
