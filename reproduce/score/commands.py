"""``reproduce score``: score judgments (ours, or an official tool's file) the way the official tool does
(the workflow's ``score`` rule, or by hand: see docs/judges.md)."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from reproduce.benchmarks.protocol import PROTOCOLS, get_protocol
from reproduce.config import ConfigError, load_config
from reproduce.io import DataError, atomic_write_json, make_parent
from reproduce.judges import response_models
from reproduce.software import software
from reproduce.stage import log, read_job, write_resolved


def _score_benchmark(args) -> tuple[str, dict]:
    """(benchmark name, its config) a score is held against: the job's, the preset's, else
    ``evals/benchmarks/<--benchmark>.yaml``. The questions it must cover come from there, never from the input."""
    if args.job:
        job = read_job(args)
        return job.get("benchmark") or job["benchmark_config"]["protocol"], job["benchmark_config"]
    if not args.benchmark:
        raise ConfigError("--benchmark: name the benchmark whose questions the score must cover "
                          "(evals/benchmarks/<name>.yaml, e.g. alpaca_eval2, arena_hard, mt_bench)")
    cfg = load_config({"preset": args.preset} if args.preset else None)
    if args.benchmark in cfg["benchmarks"]:
        bench = cfg["benchmarks"][args.benchmark]
    else:
        from reproduce.config import ROOT, _load_named

        bench = _load_named("benchmark", ROOT / "evals" / "benchmarks", args.benchmark, "benchmark", "--benchmark")
    if args.protocol and args.protocol != bench["protocol"]:
        raise ConfigError(f"--protocol: benchmark '{args.benchmark}' uses protocol '{bench['protocol']}', "
                          f"not '{args.protocol}'")
    return args.benchmark, bench


def cmd_score(args) -> None:
    """Score judgments (native or an official tool's file): one line per model in the official tool's style,
    or one JSON object (--json; always with --out). The benchmark's questions say what a complete score
    covers: a question without a judgment marks the score INCOMPLETE; a question judged twice or not in
    the benchmark, or an empty file, is an error."""
    from reproduce.benchmarks.completeness import check_records
    from reproduce.benchmarks.questions import load_questions

    name, bench = _score_benchmark(args)
    if args.out:
        make_parent(args.out)  # an unwritable --out fails before the (bootstrap) scoring, not after
    protocol = bench["protocol"]
    questions = load_questions(bench)
    proto = get_protocol(protocol)
    records = proto.read_judgments(args.judgments, args.format)
    if not records:
        raise DataError(f"{args.judgments}: no judgments to score (empty input)")
    if protocol == "alpaca_eval2" and args.format == "alpaca_eval":
        records = proto.ids_from_instructions(records, questions, name)  # official files: keyed by instruction
    found = list(dict.fromkeys(r[proto.MODEL_FIELD] for r in records))
    if args.model:
        records = [r for r in records if r[proto.MODEL_FIELD] == args.model]
        if not records:
            raise DataError(f"{args.judgments}: no judgments for model '{args.model}' (models in the file: "
                            f"{', '.join(map(str, found))})")
        found = [args.model]
    elif len(found) > 1 and (args.json or args.out):
        raise DataError(f"{args.judgments}: judgments of {len(found)} models ({', '.join(map(str, found[:8]))}"
                        f"{', ...' if len(found) > 8 else ''}); pick one with --model")
    options = {"baseline": args.baseline} if args.baseline else {}
    if len(found) > 1 and not args.baseline:
        options.update(getattr(proto, "MULTI_MODEL_OPTIONS", {}))  # e.g. every model of a FastChat file
    results = []
    for model in found:  # one model, or (human-readable lines only) every model of the file
        mine = [r for r in records if r[proto.MODEL_FIELD] == model]
        missing = check_records(mine, questions, name, str(args.judgments))
        results.append(_score_one(proto, protocol, args, name, mine, bench,
                                  {**options, "missing": missing, "questions": questions}))
    for result in results:  # every model checked and scored before anything is printed or written
        line = proto.summary_line(result)
        if result.get("n_questions_missing"):
            line += f"  | {result['n_questions_missing']} of {len(questions)} questions of {name} have no judgment"
        if args.out:
            # the judgments' place relative to the score file, so a copied results tree reads its own
            result["judgments_from_score"] = os.path.relpath(Path(args.judgments).resolve(), Path(args.out).resolve().parent)
            atomic_write_json(args.out, {**result, "software": software()}, allow_nan=False)  # versions + git state
            if args.job:
                write_resolved(read_job(args), args.out)
        if args.json:
            print(json.dumps(result, default=str, allow_nan=False))
        print(line, file=sys.stderr if (args.json or args.out) else sys.stdout, flush=True)
        if not result.get("complete", True):
            log(f"warning: {args.judgments}: the score of {result.get('model')} comes from {result['n_judged']} of "
                f"{result['n_expected']} games ({result['n_failed']} failed or missing); it is marked incomplete")


def _score_one(proto, protocol: str, args, name: str, records: list[dict], bench: dict, options: dict) -> dict:
    """Score one model's records; the result names the benchmark, protocol and judgments file."""
    try:
        result = proto.score(records, bench, **options)
    except DataError as e:
        raise DataError(f"{args.judgments}: {e}") from None
    if hasattr(proto, "leaderboard_rank"):  # where the official leaderboard would place this score
        result["leaderboard_rank"] = proto.leaderboard_rank(result)
    # the model names the judge's endpoint returned (more than one: alias drift within these judgments)
    result["judge_response_models"] = response_models.count_models(records)
    judge = read_job(args).get("judge", "?") if args.job else "?"
    drift = response_models.drift_warning(judge, result["judge_response_models"], str(args.judgments))
    if drift:
        log(drift)
    result, undefined = _finite(result)
    if undefined:  # e.g. the standard error of one judgment: no number, said so, never NaN in a score file
        result["undefined"] = undefined
    return {"benchmark": name, "protocol": protocol, "judgments": str(args.judgments), **result}


def _finite(value, key: str = ""):
    """``value`` with every NaN or infinite number replaced by None, and the dotted keys replaced."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [key]
    if isinstance(value, dict):
        pairs = [(k, _finite(v, f"{key}.{k}" if key else str(k))) for k, v in value.items()]
        return {k: v for k, (v, _) in pairs}, [b for _, (_, bad) in pairs for b in bad]
    return value, []


def register(sub) -> None:
    """Add ``score`` to the ``reproduce`` command's subparsers."""
    s = sub.add_parser("score", help=cmd_score.__doc__)
    s.set_defaults(fn=cmd_score)
    s.add_argument("--benchmark", help=f"the benchmark whose questions a complete score covers: a key of the preset or "
                   f"evals/benchmarks/<name>.yaml (e.g. {', '.join(PROTOCOLS)})")
    s.add_argument("--protocol", help="the protocol, when --benchmark names a benchmark of another name")
    s.add_argument("--judgments", required=True, help="the judgments file (ours, or the official tool's)")
    s.add_argument("--format", default="native", choices=["native", "alpaca_eval", "arena_hard", "fastchat"],
                   help="whose file --judgments is: native (ours, default) or an official tool's")
    s.add_argument("--baseline", help="arena_hard / mt_bench pairwise: the baseline model")
    s.add_argument("--model", help="the model to score in a judgment file of several (FastChat's are)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--out", help="write the score JSON here (then the summary line goes to stderr)")
    s.add_argument("--job", help="resolved job config (JSON), as written by the Snakefile")
    s.add_argument("--preset", help="the preset whose benchmark settings apply (with a benchmark key)")
