"""The generation stage's subcommands.

- ``reproduce reference`` / ``reproduce generate``: a benchmark's reference answers, and a model's answers
  (the workflow's ``reference_answers`` and ``generate`` rules).
- ``reproduce export-answers`` / ``reproduce import-answers``: move answers between our JSONL and the official
  tools' files (AlpacaEval ``model_outputs.json``, Arena-Hard and FastChat ``model_answer/<m>.jsonl``).

    reproduce export-answers --benchmark arena_hard --answers results/answers/.../tgdpo.jsonl --out-dir arena-data/
    reproduce import-answers --benchmark mt_bench --file model_answer/my-model.jsonl --out my-model.jsonl
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from reproduce.names import check_name, inside

from reproduce.config import ConfigError
from reproduce.stage import add_stage, log, read_job, read_jobs, write_resolved


def cmd_reference(args) -> None:
    """Write the reference/baseline answers of a benchmark."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.benchmarks.reference import reference_answers
    from reproduce.io import atomic_write_jsonl

    job = read_job(args)
    bench = job["benchmark_config"]
    questions = load_questions(bench)
    atomic_write_jsonl(args.out, reference_answers(bench, questions))
    write_resolved(job, args.out)


def cmd_generate(args) -> None:
    """Answer benchmarks' questions with a model, loaded once for all of them (one --out per job)."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.backends import make_backend
    from reproduce.generate.run import generate_answers

    jobs = read_jobs(args)
    outs = args.out if isinstance(args.out, list) else [args.out]
    if len(jobs) != len(outs):
        raise ConfigError(f"--out: {len(outs)} output files for {len(jobs)} jobs in --jobs (one --out per job)")
    # read every benchmark's questions before the (slow) model load, so a bad file fails fast
    questions = [load_questions(job["benchmark_config"]) for job in jobs]
    t0 = time.time()
    backend = make_backend(jobs[0].get("generation", {}), args.model, threads=args.threads,
                           template_kwargs=jobs[0].get("chat_template_kwargs"))
    log(f"model loaded in {time.time() - t0:.1f} s ({backend.name} backend): {args.model}")
    for job, qs, out in zip(jobs, questions, outs):
        bench = job["benchmark_config"]
        summary = generate_answers(qs, backend, bench["decoding"], job["method"], str(Path(args.model).resolve()),
                                   out, batch_size=job.get("generation", {}).get("batch_size", 256), log=log)
        summary["benchmark"] = job.get("benchmark")
        log(json.dumps(summary))
        write_resolved({**job, "generation_summary": summary}, out)


def load_benchmark(name: str) -> dict:
    """A benchmark config by name (``evals/benchmarks/<name>.yaml``), validated; unknown names list the known."""
    from reproduce.config import ROOT, _load_named

    return _load_named("benchmark", ROOT / "evals" / "benchmarks", name, "benchmark", "--benchmark")


def _questions_and_format(args) -> tuple[list[dict], str]:
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.formats import PROTOCOL_FORMAT

    bench = load_benchmark(args.benchmark)
    return load_questions(bench, args.mirror), args.format or PROTOCOL_FORMAT[bench["protocol"]]


def cmd_export_answers(args) -> None:
    """Write our answers JSONL as the official tool's answer file."""
    from reproduce.generate.formats import export_answers, official_relpath
    from reproduce.generate.run import load_answers
    from reproduce.io import DataError

    questions, fmt = _questions_and_format(args)
    records = list(load_answers(args.answers, {q["question_id"] for q in questions}).values())
    if not records:
        raise DataError(f"{args.answers}: no answers to export (empty input)")
    model = args.model or records[0].get("model") or Path(args.answers).stem
    if bool(args.out) == bool(args.out_dir):
        raise DataError("export-answers: give exactly one of --out FILE or --out-dir DIR")
    # the model name becomes a folder or file name: checked before any path is built from it
    check_name(model, "--model" if args.model else f"{args.answers}: key 'model'", "model name")
    out = Path(args.out) if args.out else inside(args.out_dir, official_relpath(fmt, model), "--out-dir")
    export_answers(records, questions, fmt, out, model)
    print(json.dumps({"format": fmt, "model": model, "answers": len(records), "out": str(out)}))


def cmd_import_answers(args) -> None:
    """Read an official tool's answer file into our answers JSONL (then `reproduce judge --answers`)."""
    from reproduce.generate.formats import import_answers
    from reproduce.io import DataError, atomic_write_jsonl, make_parent

    questions, fmt = _questions_and_format(args)
    make_parent(args.out)
    if args.model:
        check_name(args.model, "--model", "model name")
    records = import_answers(args.file, fmt, questions, args.model)
    if not records:
        raise DataError(f"{args.file}: no answers to import (empty input)")
    missing = len(questions) - len(records)
    atomic_write_jsonl(args.out, records)
    if missing:
        print(f"warning: {args.file}: {missing} of {len(questions)} questions have no answer", file=sys.stderr)
    print(json.dumps({"format": fmt, "answers": len(records), "missing": missing, "out": args.out}))


def register(sub) -> None:
    """Add ``reference``, ``generate``, ``export-answers`` and ``import-answers`` to the ``reproduce`` command's
    subparsers."""
    from reproduce.generate.formats import FORMATS

    add_stage(sub, "reference", cmd_reference, "the reference answers JSONL to write")
    # one answers file per job of --jobs: a model is loaded once for all its benchmarks
    add_stage(sub, "generate", cmd_generate, "the answers JSONL to write, one per job of --jobs",
              ("--model", {"required": True, "help": "the model directory that answers"}),
              ("--jobs", {"help": "resolved job configs (JSON list, one per benchmark; as written by the Snakefile)"}),
              out_nargs="+")

    e = sub.add_parser("export-answers", help=cmd_export_answers.__doc__)
    e.set_defaults(fn=cmd_export_answers)
    e.add_argument("--answers", required=True, help="our answers JSONL")
    e.add_argument("--out", help="output file")
    e.add_argument("--out-dir", help="official data directory; writes <model>/model_outputs.json or model_answer/<model>.jsonl")
    i = sub.add_parser("import-answers", help=cmd_import_answers.__doc__)
    i.set_defaults(fn=cmd_import_answers)
    i.add_argument("--file", required=True, help="the official tool's answer file")
    i.add_argument("--out", required=True, help="our answers JSONL")
    for p in (e, i):
        p.add_argument("--benchmark", required=True, help="benchmark name (evals/benchmarks/<name>.yaml)")
        p.add_argument("--format", choices=FORMATS, help="default: the benchmark protocol's official format")
        p.add_argument("--model", help="model name to write (default: the one in the file)")
        p.add_argument("--mirror", help="directories holding the official benchmark files, ':'-separated "
                       "(default: $REPRODUCE_BENCHMARK_MIRROR, then the download cache, then the pinned URLs)")
