"""Reference / baseline answers a model is compared against, in our answer format.

``task_demonstrator``: the tiny task's noisy demonstrator (an imperfect, fixed answerer, like GPT-4 in the
real benchmarks). ``file``: an official answer file (Arena-Hard ``model_answer/<model>.jsonl`` in either
the v0.1 ``choices`` or the newer ``messages`` layout); AlpacaEval's reference outputs come with its
questions.
"""

from __future__ import annotations

import random

from reproduce.io import DataError, read_jsonl


def reference_answers(bench: dict, questions: list[dict], mirror=None) -> list[dict]:
    """Answers of the benchmark's reference/baseline for every question."""
    ref = bench.get("reference", {})
    kind, name = ref.get("kind"), ref.get("name", "reference")
    if kind == "task_demonstrator":
        from reproduce.tasks import load_task

        task = load_task(bench["questions"]["task"])
        rng = random.Random(ref.get("seed", 0))
        return [{"question_id": q["question_id"], "model": name, "turns": [task.demonstrate(t, rng) for t in q["turns"]]}
                for q in questions]
    if kind == "file" and bench["protocol"] == "alpaca_eval2":
        return [{"question_id": q["question_id"], "model": q.get("reference_generator") or name, "turns": q["reference"]}
                for q in questions]
    if kind == "file":
        from reproduce.official import fetch_file

        path = fetch_file(bench["questions"]["files"][ref["file"]], mirror)
        by_id = {}
        for i, r in enumerate(read_jsonl(path), start=1):
            qid = str(r.get("question_id", r.get("uid", "")))
            by_id[qid] = {"question_id": qid, "model": name, "turns": _turns(r, path, i)}
        missing = [q["question_id"] for q in questions if q["question_id"] not in by_id]
        if missing:
            raise DataError(f"{path}: no baseline answer for questions {missing[:5]}")
        return [by_id[q["question_id"]] for q in questions]
    raise DataError(f"{bench.get('_file')}: key 'reference.kind': unsupported '{kind}'")


def _turns(record: dict, path, line: int) -> list[str]:
    if "choices" in record:  # v0.1 / FastChat layout
        return [t["content"] if isinstance(t, dict) else t for t in record["choices"][0]["turns"]]
    if "messages" in record:  # newer arena-hard layout
        out = []
        for m in record["messages"]:
            if m.get("role") == "assistant":
                c = m["content"]
                out.append(c["answer"] if isinstance(c, dict) else c)
        return out
    raise DataError(f"{path}:{line}: answer record has neither 'choices' nor 'messages'")
