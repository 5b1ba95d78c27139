"""The ``reproduce`` command: every workflow stage as a subcommand, usable without Snakemake.

Stage subcommands take ``--job`` (the resolved job config as JSON, written by the Snakefile) and write
``resolved_config.json`` beside their output; ``judge`` and ``score`` also work on answers and judgments
made anywhere (see README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from reproduce.config import ConfigError, config_from_cli, load_config
from reproduce.io import DataError, atomic_write_json


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# Stage subcommands that only the workflow runs (it passes --job), each with the flag that lets it run
# without one (None: no such flag). `judge` and `score` work on files made anywhere and are not listed.
WORKFLOW_STAGES = {"base": None, "prefs": "--dataset", "train": None, "reference": None, "generate": None}


def _stage_message(command: str) -> str:
    """What a workflow stage called by hand without --job says instead of running."""
    return (f"`reproduce {command}` is a workflow stage: Snakemake runs it with --job (the resolved job config "
            "as JSON) - run the workflow instead, e.g. `snakemake --cores all reproduce_table1` (see README)")


class JobKeyError(ConfigError, KeyError):
    """A key a stage reads is missing from its --job config; ``str()`` is one line naming flag and key."""

    __str__ = Exception.__str__  # KeyError's own __str__ would quote the message


class JobConfig(dict):
    """A --job config (nested dicts too) whose missing keys raise :class:`JobKeyError` naming the key."""

    def __init__(self, data: dict, flag: str = "--job", path: str = ""):
        super().__init__({k: JobConfig(v, flag, f"{path}{k}.") if isinstance(v, dict) else v for k, v in data.items()})
        self._flag, self._path = flag, path

    def __missing__(self, key):
        raise JobKeyError(f"{self._flag}: the job config has no key '{self._path}{key}' (write it with the "
                          "workflow of this version: Snakemake passes the resolved config)")


def _json_flag(text: str, flag: str):
    """``text`` parsed as JSON; not JSON is a one-line ``ConfigError`` naming ``flag``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag}: not valid JSON ({e.msg} at character {e.pos})") from None


def _job(args) -> dict:
    """The stage's --job config; without one, a one-line error saying that this is a workflow stage."""
    if not getattr(args, "job", None):
        raise ConfigError(_stage_message(args.command))
    job = _json_flag(args.job, "--job")
    if not isinstance(job, dict):
        raise ConfigError(f"--job: expected a JSON object (the resolved job config), got a {type(job).__name__}")
    return JobConfig(job)


def _jobs(args) -> list[dict]:
    """generate's --jobs (a JSON list of job configs, one per benchmark), or its single --job."""
    if not getattr(args, "jobs", None):
        return [_job(args)]
    jobs = _json_flag(args.jobs, "--jobs")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise ConfigError("--jobs: expected a non-empty JSON list of job configs (objects)")
    return [JobConfig(j, f"--jobs[{i}]") for i, j in enumerate(jobs)]


def _software() -> dict:
    """Package versions and git state of this process (reproduce.report.provenance.software)."""
    from reproduce.report.provenance import software

    return software()


def _write_resolved(job: dict, out: str | Path, is_dir: bool = False) -> None:
    """Write the job's resolved config, with the software that ran it, beside (or into) its output."""
    out = Path(out)
    path = out / "resolved_config.json" if is_dir else out.with_name(out.name.split(".")[0] + ".config.json")
    atomic_write_json(path, {**job, "software": _software()})


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
    """Build (on-policy) or download the setting's preference pairs; without --job, read --dataset."""
    from reproduce.data.prefs import build_on_policy_pairs, download_pairs, read_preference_dataset, write_pairs

    if not args.job:
        # Standalone use: a released dataset from the hub, a local directory or a local file.
        if not args.dataset:
            raise ConfigError("reproduce prefs: give --dataset SOURCE (or --job, as the workflow does)")
        if args.max_pairs is not None and args.max_pairs < 1:
            raise ConfigError(f"reproduce prefs: --max-pairs must be at least 1, got {args.max_pairs}")
        pairs, summary = read_preference_dataset(args.dataset, args.revision, args.split, args.max_pairs)
        _log(f"preference pairs: {json.dumps(summary)}")
        write_pairs(pairs, summary, args.out)
        return
    if args.dataset:
        raise ConfigError("reproduce prefs: --dataset and --job exclude each other (the job names its data)")
    job = _job(args)
    _threads(args)
    cfg = job["preference_data"]
    if cfg["kind"] == "on_policy":
        from reproduce.generate.hf import HFBackend
        from reproduce.tiny.task import load_task

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
    """Answer benchmarks' questions with a model, loaded once for all of them (one --out per job)."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.backends import make_backend
    from reproduce.generate.run import generate_answers

    jobs = _jobs(args)
    outs = args.out if isinstance(args.out, list) else [args.out]
    if len(jobs) != len(outs):
        raise ConfigError(f"--out: {len(outs)} output files for {len(jobs)} jobs in --jobs (one --out per job)")
    # read every benchmark's questions before the (slow) model load, so a bad file fails fast
    questions = [load_questions(job["benchmark_config"]) for job in jobs]
    import time

    t0 = time.time()
    backend = make_backend(jobs[0].get("generation", {}), args.model, threads=args.threads)
    _log(f"model loaded in {time.time() - t0:.1f} s ({backend.name} backend): {args.model}")
    for job, qs, out in zip(jobs, questions, outs):
        bench = job["benchmark_config"]
        summary = generate_answers(qs, backend, bench["decoding"], job["method"], str(Path(args.model).resolve()),
                                   out, batch_size=job.get("generation", {}).get("batch_size", 256), log=_log)
        summary["benchmark"] = job.get("benchmark")
        _log(json.dumps(summary))
        _write_resolved({**job, "generation_summary": summary}, out)


def cmd_judge(args) -> None:
    """Judge answers on a benchmark with a judge (through the cache); writes native judgments JSONL."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.run import load_answers
    from reproduce.io import atomic_write_jsonl
    from reproduce.judges.base import JudgeFatalError, make_judge
    from reproduce.judges.cache import JudgmentCache, writer_file
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
    # --cache DIR: the judge's cache folder (read whole, this job appends to its own file in it);
    # --cache FILE.jsonl: one file this job reads and writes (one job at a time)
    cache_arg = Path(args.cache) if args.cache else out.parent / "_cache"
    if cache_arg.suffix == ".jsonl":
        cache = JudgmentCache(cache_arg)
    else:
        cache = JudgmentCache(writer_file(cache_arg, out), shared_dir=cache_arg)
    judge = make_judge(judge_name, judge_cfg)
    failures_file = out.with_name(out.stem + ".failures.json")
    try:
        records, failures, stats = asyncio.run(judge_model(bench, judge, cache, questions, answers, reference,
                                                           templates, log=_log))
    except JudgeFatalError as e:
        # stopped at the first such reply: every verdict judged before it is in the cache
        out.unlink(missing_ok=True)
        raise DataError(str(e)) from None
    atomic_write_json(failures_file, {"failures": failures, "stats": stats})
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
    _write_resolved({**job, "judge_stats": stats}, out)
    if failures:
        _log(f"warning: {len(failures)} of {stats['requests']} judge games failed ({failures_file}); the score "
             "will be marked incomplete - rerun this judge job to ask exactly those games again")
    _log(f"judged: {json.dumps(stats)}")


def cmd_score(args) -> None:
    """Score judgments (native or an official tool's file): one line per model in the official tool's style,
    or one JSON object (--json; always with --out)."""
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
    if protocol == "mt_bench" and len(found) > 1 and not args.baseline:
        options["all_opponents"] = True  # every model of a FastChat file, its shared baseline too
    for model in found:  # one model, or (human-readable lines only) every model of the file
        result = _score_one(proto, protocol, args, [r for r in records if r[proto.MODEL_FIELD] == model], bench, options)
        line = proto.summary_line(result)
        if args.out:
            atomic_write_json(args.out, {**result, "software": _software()})  # versions + git state
            if args.job:
                _write_resolved(_job(args), args.out)
        if args.json:
            print(json.dumps(result, default=str))
        print(line, file=sys.stderr if (args.json or args.out) else sys.stdout, flush=True)
        if not result.get("complete", True):
            _log(f"warning: {args.judgments}: the score of {result.get('model')} comes from {result['n_judged']} of "
                 f"{result['n_expected']} games ({result['n_failed']} failed); it is marked incomplete")


def _score_one(proto, protocol: str, args, records: list[dict], bench: dict | None, options: dict) -> dict:
    """Score one model's records; the result names the benchmark, protocol and judgments file."""
    try:
        result = proto.score(records, bench, **options)
    except DataError as e:
        raise DataError(f"{args.judgments}: {e}") from None
    if protocol == "alpaca_eval2":
        result["leaderboard_rank"] = proto.leaderboard_rank(result)
    return {"benchmark": args.benchmark or protocol, "protocol": protocol, "judgments": str(args.judgments), **result}


def cmd_check_config(args) -> None:
    """Validate a preset and everything it references; print the grid."""
    cfg = load_config({"preset": args.preset} if args.preset else None)
    print(json.dumps({"preset": cfg["preset"], "settings": list(cfg["settings"]), "methods": cfg["methods"],
                      "benchmarks": list(cfg["benchmarks"]), "judges": list(cfg["judges"])}))


OUT_HELP = {"base": "the model directory to write", "prefs": "the preference pairs JSONL to write",
            "train": "the trained model directory to write", "reference": "the reference answers JSONL to write",
            "generate": "the answers JSONL to write, one per job of --jobs",
            "judge": "the judgments JSONL to write (default: results/judgments/<benchmark>/<judge>/<answers>.jsonl)"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors; a workflow stage called without --job says how to run it instead."""

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)  # what error() looks at
        return super().parse_known_args(args, namespace)

    def error(self, message):
        command = self.prog.split()[-1]
        argv = getattr(self, "_argv", [])
        given = {a.split("=")[0] for a in argv}
        if command in WORKFLOW_STAGES and not given & {"--job", "--jobs"} and WORKFLOW_STAGES[command] not in given:
            self.exit(2, f"error: {_stage_message(command)} ({message})\n")
        self.exit(2, f"error: {self.prog}: {message}\n")


class _VersionAction(argparse.Action):
    """--version: the package version and git commit, looked up only when asked (it runs git)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from reproduce.report.provenance import version_line

        print(version_line())
        parser.exit()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    """--log-level's type: a level name in any case; anything else a one-line error naming the flag."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r} (choose from {', '.join(LOG_LEVELS)})")
    return text.upper()


def configure_logging(level: str) -> None:
    """One stderr handler for the whole process (the rules send stderr to the job's log file): the harness's
    own loggers at ``level``, other libraries' at WARNING or above (DEBUG shows everything), so e.g. an
    HTTP client's line per request does not drown retries and progress."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    numeric = getattr(logging, level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric if numeric == logging.DEBUG else max(numeric, logging.WARNING))
    logging.getLogger("reproduce").setLevel(numeric)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``reproduce`` command."""
    p = _Parser(prog="reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_VersionAction, help="print the package version and git commit, then exit")
    p.add_argument("--log-level", type=_log_level, default="INFO", metavar="LEVEL",
                   help=f"messages to stderr from this level up: {', '.join(LOG_LEVELS)} (default INFO); "
                        "also accepted after the subcommand")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def stage(name, fn, *extra):
        s = sub.add_parser(name, help=fn.__doc__)
        s.set_defaults(fn=fn)
        s.add_argument("--job", help="resolved job config (JSON), as written by the Snakefile")
        # generate writes one answers file per job of --jobs (a model is loaded once for all its benchmarks)
        s.add_argument("--out", required=name not in ("judge",), nargs="+" if name == "generate" else None,
                       help=OUT_HELP[name])
        s.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes its job threads)")
        for flag, kw in extra:
            s.add_argument(flag, **kw)
        return s

    stage("base", cmd_base)
    stage("prefs", cmd_prefs, ("--base", {"help": "with --job and on-policy data: the model that samples the pairs"}),
          ("--dataset", {"metavar": "SOURCE", "help": "without --job: a hub dataset id, a local directory or a local "
                         ".json/.jsonl/.parquet file, in the princeton-nlp or mk1111 layout"}),
          ("--revision", {"help": "with --dataset from the hub: the commit or tag to read (default main)"}),
          ("--split", {"default": "train", "help": "with --dataset: the split to read (default train)"}),
          ("--max-pairs", {"type": int, "help": "with --dataset: stop after this many pairs"}))
    stage("train", cmd_train, ("--base", {"required": True, "help": "the starting (SFT) model directory"}),
          ("--prefs", {"required": True, "help": "the preference pairs JSONL"}),
          ("--guide", {"help": "TGDPO: the guidance model directory (a DPO-trained model)"}),
          ("--cache", {"help": "directory caching the reference/guidance per-token log-probs"}),
          ("--checkpoints", {"help": "checkpoint directory; a killed run resumes from its last complete checkpoint"}))
    stage("reference", cmd_reference)
    stage("generate", cmd_generate, ("--model", {"required": True, "help": "the model directory that answers"}),
          ("--jobs", {"help": "resolved job configs (JSON list, one per benchmark; as written by the Snakefile)"}))
    stage("judge", cmd_judge, ("--benchmark", {"help": "without --job: the benchmark (evals/benchmarks/<name>.yaml)"}),
          ("--answers", {"required": True, "help": "answers JSONL of {question_id, turns}"}),
          ("--judge", {"help": "without --job: the judge (evals/judges/<name>.yaml)"}),
          ("--reference", {"help": "reference/baseline answers JSONL"}),
          ("--cache", {"help": "judgment cache: the judge's cache directory, or one .jsonl file (default: _cache "
                               "beside --out)"}),
          ("--preset", {"help": "without --job: the preset whose benchmark and judge settings apply"}))
    s = sub.add_parser("score", help=cmd_score.__doc__)
    s.set_defaults(fn=cmd_score)
    s.add_argument("--benchmark", help="benchmark key or protocol name (alpaca_eval2, arena_hard, mt_bench)")
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
    c = sub.add_parser("check-config", help=cmd_check_config.__doc__)
    c.set_defaults(fn=cmd_check_config)
    c.add_argument("--preset", help="the preset to check (default: config/default.yaml's)")
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
    for command in sub.choices.values():  # --log-level after the subcommand too (SUPPRESS keeps the global one)
        command.add_argument("--log-level", type=_log_level, default=argparse.SUPPRESS, metavar="LEVEL",
                             help="as `reproduce --log-level`")
    return p


COMMAND_PACKAGES = ("reproduce.generate", "reproduce.judges", "reproduce.rehearsal", "reproduce.report", "reproduce.train")


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input (flags, --job, config, data) exits 2 with a one-line error."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        args.fn(args)
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
