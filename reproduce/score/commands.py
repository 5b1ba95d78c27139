"""``reproduce score``: score judgments (ours, or an official tool's file) the way the official tool does
(the workflow's ``score`` rule, or by hand: see README)."""

from __future__ import annotations

import json
import sys

from reproduce.benchmarks.protocol import PROTOCOLS, get_protocol
from reproduce.config import ConfigError, load_config
from reproduce.io import DataError, atomic_write_json
from reproduce.judges import response_models
from reproduce.software import software
from reproduce.stage import log, read_job, write_resolved


def _bench_and_protocol(args) -> tuple[dict | None, str]:
    """The benchmark config (None for a bare protocol name) and the protocol that scores."""
    protocol = args.protocol or args.benchmark
    if args.job:
        bench = read_job(args)["benchmark_config"]
        return bench, bench["protocol"]
    if protocol in PROTOCOLS:
        return None, protocol
    cfg = load_config({"preset": args.preset} if args.preset else None)
    if args.benchmark not in cfg["benchmarks"]:
        raise ConfigError(f"--benchmark: unknown benchmark '{args.benchmark}'")
    bench = cfg["benchmarks"][args.benchmark]
    return bench, bench["protocol"]


def cmd_score(args) -> None:
    """Score judgments (native or an official tool's file): one line per model in the official tool's style,
    or one JSON object (--json; always with --out)."""
    bench, protocol = _bench_and_protocol(args)
    proto = get_protocol(protocol)
    records = proto.read_judgments(args.judgments, args.format)
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
    for model in found:  # one model, or (human-readable lines only) every model of the file
        result = _score_one(proto, protocol, args, [r for r in records if r[proto.MODEL_FIELD] == model], bench, options)
        line = proto.summary_line(result)
        if args.out:
            atomic_write_json(args.out, {**result, "software": software()})  # versions + git state
            if args.job:
                write_resolved(read_job(args), args.out)
        if args.json:
            print(json.dumps(result, default=str))
        print(line, file=sys.stderr if (args.json or args.out) else sys.stdout, flush=True)
        if not result.get("complete", True):
            log(f"warning: {args.judgments}: the score of {result.get('model')} comes from {result['n_judged']} of "
                f"{result['n_expected']} games ({result['n_failed']} failed); it is marked incomplete")


def _score_one(proto, protocol: str, args, records: list[dict], bench: dict | None, options: dict) -> dict:
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
    return {"benchmark": args.benchmark or protocol, "protocol": protocol, "judgments": str(args.judgments), **result}


def register(sub) -> None:
    """Add ``score`` to the ``reproduce`` command's subparsers."""
    s = sub.add_parser("score", help=cmd_score.__doc__)
    s.set_defaults(fn=cmd_score)
    s.add_argument("--benchmark", help=f"benchmark key or protocol name ({', '.join(PROTOCOLS)})")
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
