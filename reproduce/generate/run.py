"""Answer a benchmark's questions with one model, resumably.

Answers go to a JSONL of records ``{"question_id", "model", "turns": [...], "meta": {...}, "input_hash"}``.
Progress is appended to ``<out>.partial.jsonl`` batch by batch; a rerun after a crash keeps every answer
whose input (question, decoding, model) is unchanged and generates only the rest; the final file is
written atomically at the end. Multi-turn questions (MT-Bench) are answered turn by turn, each turn
seeing the model's own previous answers.
"""

from __future__ import annotations

import time
from pathlib import Path

from reproduce.io import append_jsonl, atomic_write_jsonl, content_hash, read_jsonl, repair_jsonl


def decoding_for(question: dict, decoding: dict) -> dict:
    """The decoding settings of one question (MT-Bench's per-category temperatures override the default)."""
    temp = decoding.get("category_temperature", {}).get(question.get("category"), decoding.get("temperature", 0.0))
    return {"temperature": temp, "top_p": decoding.get("top_p", 1.0),
            "max_new_tokens": decoding.get("max_new_tokens", 1024), "seed": decoding.get("seed", 0)}


def generate_answers(questions: list[dict], backend, decoding: dict, model_name: str, model_id: str,
                     out_path: str | Path, batch_size: int = 256, log=print) -> dict:
    """Generate (or resume) answers for ``questions``; returns a summary with throughput."""
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial.jsonl")
    repair_jsonl(partial)
    hashes = {q["question_id"]: content_hash({"q": q["turns"], "d": decoding_for(q, decoding), "m": model_id})
              for q in questions}
    done = {}
    if partial.exists():
        for rec in read_jsonl(partial, allow_torn_tail=True):
            if hashes.get(rec["question_id"]) == rec.get("input_hash"):
                done[rec["question_id"]] = rec
    todo = [q for q in questions if q["question_id"] not in done]
    log(f"generate {model_name}: {len(done)} cached, {len(todo)} to generate")
    t0, n_tokens = time.time(), 0
    groups: dict[tuple, list[dict]] = {}
    for q in todo:
        groups.setdefault(tuple(sorted(decoding_for(q, decoding).items())), []).append(q)
    for key, group in groups.items():
        d = dict(key)
        for start in range(0, len(group), batch_size):
            batch = group[start : start + batch_size]
            convs = [[] for _ in batch]
            answers = [[] for _ in batch]
            metas = [{"n_tokens": [], "truncated": []} for _ in batch]
            for turn in range(max(len(q["turns"]) for q in batch)):
                idx = [i for i, q in enumerate(batch) if turn < len(q["turns"])]
                for i in idx:
                    convs[i].append({"role": "user", "content": batch[i]["turns"][turn]})
                outs = backend.generate([convs[i] for i in idx], temperature=d["temperature"], top_p=d["top_p"],
                                        max_new_tokens=d["max_new_tokens"], seed=d["seed"] + start + turn)
                for i, out in zip(idx, outs):
                    c = out[0]
                    convs[i].append({"role": "assistant", "content": c.text})
                    answers[i].append(c.text)
                    metas[i]["n_tokens"].append(c.n_tokens)
                    metas[i]["truncated"].append(c.truncated)
                    n_tokens += c.n_tokens
            records = [{"question_id": q["question_id"], "model": model_name, "turns": answers[i],
                        "meta": {**metas[i], "decoding": d, "backend": backend.name},
                        "input_hash": hashes[q["question_id"]]} for i, q in enumerate(batch)]
            append_jsonl(partial, records)
            done.update({r["question_id"]: r for r in records})
            elapsed = max(1e-9, time.time() - t0)
            log(f"  {len(done)}/{len(questions)} answers, {len(todo) and (len(done) - (len(questions) - len(todo))) / elapsed:.1f} prompts/s, {n_tokens / elapsed:.0f} tokens/s")
    elapsed = time.time() - t0
    atomic_write_jsonl(out_path, [done[q["question_id"]] for q in questions])
    partial.unlink(missing_ok=True)
    return {"model": model_name, "questions": len(questions), "generated": len(todo), "seconds": round(elapsed, 2),
            "prompts_per_s": round(len(todo) / elapsed, 2) if todo and elapsed else None,
            "tokens_per_s": round(n_tokens / elapsed, 1) if todo and elapsed else None,
            "truncated": sum(any(r["meta"]["truncated"]) for r in done.values())}


def load_answers(path: str | Path, question_ids: set[str] | None = None) -> dict[str, dict]:
    """Read an answers JSONL keyed by question id; duplicate, unknown-id or empty answers are errors naming them."""
    from reproduce.io import DataError

    out = {}
    for line, rec in enumerate(read_jsonl(path), start=1):
        qid = str(rec.get("question_id", ""))
        if not qid:
            raise DataError(f"{path}:{line}: answer has no question_id")
        if qid in out:
            raise DataError(f"{path}:{line}: duplicate answer for question {qid!r}")
        if question_ids is not None and qid not in question_ids:
            raise DataError(f"{path}:{line}: answer for unknown question {qid!r}")
        turns = rec.get("turns")
        if not isinstance(turns, list) or not turns:
            raise DataError(f"{path}:{line}: answer for question {qid!r} has no turns")
        out[qid] = rec
    return out
