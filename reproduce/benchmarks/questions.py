"""Benchmark questions and reference answers: official files (through :func:`reproduce.official.fetch_file`:
a mirror directory, the cache, or the pinned URL + sha256) or the tiny task's held-out split.

Question records: ``{"question_id": str, "category": str, "turns": [str, ...], "reference": [str] | None}``.
"""

from __future__ import annotations

from pathlib import Path

from reproduce.io import DataError, read_json, read_jsonl
from reproduce.official import fetch_file  # also imported from here by older callers


def load_questions(bench: dict, mirror: str | Path | None = None) -> list[dict]:
    """Questions of a benchmark config (``evals/benchmarks/<name>.yaml``), validated: ids unique, turns non-empty."""
    qcfg = bench["questions"]
    if qcfg.get("task"):
        from reproduce.tasks import load_task

        task = load_task(qcfg["task"])
        prompts = task.split(qcfg.get("split", "eval"))[: qcfg.get("n")]
        questions = [
            {"question_id": f"{task.name}-{i:04d}", "category": "math", "turns": [p], "reference": [str(task.solve(p))]}
            for i, p in enumerate(prompts)
        ]
    else:
        questions = _load_official(bench, mirror)
        if qcfg.get("n"):
            questions = questions[: qcfg["n"]]
    seen = set()
    for q in questions:
        if q["question_id"] in seen:
            raise DataError(f"{bench.get('_file', 'benchmark')}: duplicate question id {q['question_id']!r}")
        seen.add(q["question_id"])
        if not q["turns"] or not all(isinstance(t, str) and t for t in q["turns"]):
            raise DataError(f"{bench.get('_file', 'benchmark')}: question {q['question_id']!r} has an empty turn")
    return questions


def _load_official(bench: dict, mirror) -> list[dict]:
    files = bench["questions"]["files"]
    protocol = bench["protocol"]
    if protocol == "alpaca_eval2":
        path = fetch_file(files["questions"], mirror)
        rows = read_json(path)
        return [
            {"question_id": str(i), "category": r.get("dataset", "alpaca_eval"), "turns": [r["instruction"]],
             "reference": [r["output"]], "reference_generator": r.get("generator")}
            for i, r in enumerate(rows)
        ]
    path = fetch_file(files["questions"], mirror)
    refs = {}
    if "reference_answers" in files:
        for r in read_jsonl(fetch_file(files["reference_answers"], mirror)):
            refs[str(r["question_id"])] = [t for t in r["choices"][0]["turns"]]
    out = []
    for i, r in enumerate(read_jsonl(path), start=1):
        qid = str(r.get("question_id", r.get("uid", "")))
        if not qid:
            raise DataError(f"{path}:{i}: record has no question_id/uid")
        if "turns" in r:
            turns = [t["content"] if isinstance(t, dict) else t for t in r["turns"]]
        else:
            turns = [r["prompt"]]
        out.append({"question_id": qid, "category": r.get("category", ""), "turns": turns,
                    "reference": refs.get(qid)})
    return out
