"""Answers in the official tools' formats: export ours, import answers made elsewhere.

- ``alpaca_eval``: ``<model>/model_outputs.json``, a JSON list of
  ``{"dataset", "instruction", "output", "generator", "datasplit"}`` (``alpaca_eval --model_outputs``).
  The instruction text is the join key, so export and import need the benchmark's questions.
- ``arena_hard``: ``model_answer/<model>.jsonl`` in the v0.1 layout ``{"question_id", "answer_id",
  "model_id", "choices": [{"index": 0, "turns": [{"content", "token_len"}]}], "tstamp"}``; import also reads
  the newer ``{"uid", "messages": [..., {"role": "assistant", "content": {"answer"}}]}`` layout.
  ``token_len`` is the generating model's own token count (arena-hard counts with tiktoken; that count
  needs network access to build and is not made here), written only when known.
- ``fastchat``: MT-Bench ``model_answer/<model>.jsonl``, ``{"question_id": int, "answer_id", "model_id",
  "choices": [{"index": 0, "turns": [str, ...]}], "tstamp"}``.

Our own format (``reproduce.generate.run``): JSONL ``{"question_id", "model", "turns": [...], "meta"}``.
"""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.io import DataError, atomic_write_text, content_hash, read_json, read_jsonl

FORMATS = ("alpaca_eval", "arena_hard", "fastchat")
PROTOCOL_FORMAT = {"alpaca_eval2": "alpaca_eval", "arena_hard": "arena_hard", "mt_bench": "fastchat"}


def official_relpath(fmt: str, model: str) -> str:
    """Where the official tool looks for a model's answers, relative to its data/results directory."""
    _check_format(fmt)
    return f"{model}/model_outputs.json" if fmt == "alpaca_eval" else f"model_answer/{model}.jsonl"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise DataError(f"--format: unknown answer format {fmt!r} (known: {', '.join(FORMATS)})")


def _answer_id(model: str, qid: str, turns: list[str]) -> str:
    return content_hash({"m": model, "q": qid, "t": turns}, 22)


def to_official(records: list[dict], questions: list[dict], fmt: str, model: str | None = None) -> str:
    """Render our answer records as the text of an official answers file (question order, all answered)."""
    _check_format(fmt)
    by_id = {str(r["question_id"]): r for r in records}
    missing = [q["question_id"] for q in questions if q["question_id"] not in by_id]
    if missing:
        raise DataError(f"{len(missing)} questions have no answer (e.g. {missing[:5]}); export needs all of them")
    rows = []
    for q in questions:
        rec = by_id[q["question_id"]]
        name = model or rec.get("model") or "model"
        meta = rec.get("meta", {})
        tstamp = meta.get("tstamp", 0.0)
        if fmt == "alpaca_eval":
            rows.append({"dataset": q.get("category", ""), "instruction": q["turns"][0], "output": rec["turns"][0],
                         "generator": name, "datasplit": "eval"})
            continue
        qid = int(q["question_id"]) if fmt == "fastchat" and str(q["question_id"]).isdigit() else q["question_id"]
        if fmt == "fastchat":
            turns = list(rec["turns"])
        else:
            n_tok = meta.get("n_tokens") or [None] * len(rec["turns"])
            turns = [{"content": t, **({"token_len": n} if n is not None else {})} for t, n in zip(rec["turns"], n_tok)]
        rows.append({"question_id": qid, "answer_id": meta.get("answer_id") or _answer_id(name, str(qid), rec["turns"]),
                     "model_id": name,
                     "choices": [{"index": 0, "turns": turns}], "tstamp": tstamp})
    if fmt == "alpaca_eval":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def export_answers(records: list[dict], questions: list[dict], fmt: str, out: str | Path,
                   model: str | None = None) -> Path:
    """Write our answer records as an official answers file at ``out`` (atomically); returns the path."""
    return atomic_write_text(out, to_official(records, questions, fmt, model))


def import_answers(path: str | Path, fmt: str, questions: list[dict] | None = None,
                   model: str | None = None) -> list[dict]:
    """Read an official answers file into our records; every problem is an error naming file and record.

    ``questions`` (required for ``alpaca_eval``, whose key is the instruction text) also checks that every
    answer belongs to a known question; answers are returned in question order when given.
    """
    _check_format(fmt)
    path = Path(path)
    if fmt == "alpaca_eval":
        if questions is None:
            raise DataError(f"{path}: importing alpaca_eval outputs needs the benchmark's questions")
        rows = _alpaca_rows(path, questions)
    else:
        rows = [(f"{path}:{line}", *_jsonl_row(rec, fmt, f"{path}:{line}")) for line, rec in
                enumerate(read_jsonl(path), start=1)]
    known = {q["question_id"] for q in questions} if questions is not None else None
    out: dict[str, dict] = {}
    for where, qid, turns, name, extra in rows:
        if known is not None and qid not in known:
            raise DataError(f"{where}: answer for unknown question {qid!r}")
        if qid in out:
            raise DataError(f"{where}: duplicate answer for question {qid!r}")
        if not turns or not all(isinstance(t, str) for t in turns):
            raise DataError(f"{where}: answer for question {qid!r} has no text turns")
        if name is not None and not isinstance(name, str):
            raise DataError(f"{where}: the model name must be a string, got {type(name).__name__}")
        out[qid] = {"question_id": qid, "model": model or name or path.stem, "turns": turns,
                    "meta": {"imported_from": str(path), "format": fmt, **extra}}
    if questions is not None:
        return [out[q["question_id"]] for q in questions if q["question_id"] in out]
    return list(out.values())


def _alpaca_rows(path: Path, questions: list[dict]) -> list[tuple]:
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{instruction, output, generator}} records")
    by_instruction = {q["turns"][0]: q["question_id"] for q in questions}
    rows = []
    for i, r in enumerate(data):
        where = f"{path}[{i}]"
        if not isinstance(r, dict) or not isinstance(r.get("instruction"), str) or not isinstance(r.get("output"), str):
            raise DataError(f"{where}: expected an object with string 'instruction' and 'output'")
        if r["instruction"] not in by_instruction:
            raise DataError(f"{where}: instruction {r['instruction'][:60]!r} is not one of the benchmark's questions")
        rows.append((where, by_instruction[r["instruction"]], [r["output"]], r.get("generator"), {}))
    return rows


def _jsonl_row(rec: dict, fmt: str, where: str) -> tuple:
    qid = rec.get("question_id", rec.get("uid"))
    if qid is None or qid == "":
        raise DataError(f"{where}: record has no question_id/uid")
    name = rec.get("model_id", rec.get("model"))
    answer_id = rec.get("answer_id", rec.get("ans_id"))
    if "choices" in rec:
        choices = rec["choices"]
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise DataError(f"{where}: 'choices' must be a non-empty list of objects")
        raw = choices[0].get("turns")
        if not isinstance(raw, list):
            raise DataError(f"{where}: choices[0].turns must be a list")
        turns = [t.get("content") if isinstance(t, dict) else t for t in raw]
        lens = [t.get("token_len") if isinstance(t, dict) else None for t in raw]
    elif "messages" in rec and fmt == "arena_hard":
        turns = []
        for m in rec["messages"]:
            if isinstance(m, dict) and m.get("role") == "assistant":
                c = m.get("content")
                turns.append(c.get("answer") if isinstance(c, dict) else c)
        lens = [None] * len(turns)
    else:
        raise DataError(f"{where}: answer record has no 'choices'" + (" or 'messages'" if fmt == "arena_hard" else ""))
    extra = {"answer_id": answer_id}
    if "tstamp" in rec:
        extra["tstamp"] = rec["tstamp"]
    if lens and all(isinstance(n, int) for n in lens):
        extra["n_tokens"] = lens
    return str(qid), turns, name, extra
