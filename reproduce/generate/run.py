"""Answer a benchmark's questions with one model, resumably and incrementally.

Answers go to a JSONL of records ``{"question_id", "model", "turns": [...], "meta": {...}, "input_hash"}``.
``input_hash`` covers the question's turns, its decoding settings and the model's identity (path, backend,
fingerprint of its files). Every generated record is appended, batch by batch, to the generation cache
``<out>.gen-cache.jsonl`` (flushed and fsynced), which is never deleted: a rerun after a kill, or with
some questions or decoding settings changed, reuses every answer whose ``input_hash`` is unchanged and
generates only the rest. A torn last cache line (a write cut by the kill) is dropped; any other corrupt
line is an error naming file and line. The final file is written atomically at the end.

Multi-turn questions (MT-Bench) are answered turn by turn, each turn seeing the model's own previous
answers. Per-turn metadata records token counts, ``finish_reason`` (stop / length / context) and any
prompt tokens dropped to fit the context, so no truncation is silent.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from reproduce.generate.base import PromptTooLong, model_fingerprint
from reproduce.io import DataError, append_jsonl, atomic_write_jsonl, content_hash, read_jsonl, repair_jsonl


def decoding_for(question: dict, decoding: dict) -> dict:
    """The decoding settings of one question (MT-Bench's per-category temperatures override the default)."""
    temp = decoding.get("category_temperature", {}).get(question.get("category"), decoding.get("temperature", 0.0))
    d = {"temperature": temp, "top_p": decoding.get("top_p", 1.0),
         "max_new_tokens": decoding.get("max_new_tokens", 1024), "seed": decoding.get("seed", 0)}
    if decoding.get("stop_token_ids"):
        d["stop_token_ids"] = sorted(decoding["stop_token_ids"])
    return d


def cache_path(out_path: str | Path) -> Path:
    """The append-only generation cache beside an answers file."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".gen-cache.jsonl")


def backend_identity(backend, model_id: str) -> dict:
    """What, besides the question and decoding, determines an answer: model path/id, backend, model files."""
    identity = {"model": model_id, "backend": backend.name,
                "fingerprint": model_fingerprint(getattr(backend, "model_dir", model_id))}
    if getattr(backend, "template_kwargs", None):  # pinned template variables change the prompt
        identity["template_kwargs"] = backend.template_kwargs
    return identity


def _cached(out_path: Path, cache: Path, hashes: dict[str, str]) -> dict[str, dict]:
    """Records from the final file and the cache whose input hash matches the current inputs."""
    done = {}
    sources = []
    if out_path.exists():
        sources.append(read_jsonl(out_path))
    if cache.exists():
        repair_jsonl(cache)
        sources.append(read_jsonl(cache))
    for records in sources:
        for rec in records:
            qid = rec.get("question_id")
            if qid in hashes and rec.get("input_hash") == hashes[qid]:
                done[qid] = rec
    return done


class _Progress:
    """A tqdm bar over questions with prompts/s and output tokens/s (to stderr), plus summary figures."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.t0, self.tokens, self.prompts = time.time(), 0, 0
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="q", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)

    def update(self, prompts: int, tokens: int) -> None:
        self.prompts += prompts
        self.tokens += tokens
        if self.bar is not None:
            elapsed = max(1e-9, time.time() - self.t0)
            self.bar.set_postfix_str(f"{self.tokens / elapsed:.0f} tok/s", refresh=False)
            self.bar.update(prompts)

    def close(self) -> float:
        if self.bar is not None:
            self.bar.close()
        return time.time() - self.t0


def _answer_batch(batch: list[dict], backend, d: dict) -> tuple[list[list[str]], list[dict], int]:
    """Answer a batch of questions turn by turn; returns (answers, metas, output tokens)."""
    convs = [[] for _ in batch]
    answers = [[] for _ in batch]
    keys = ("n_tokens", "truncated", "finish_reason", "prompt_tokens", "prompt_tokens_dropped")
    metas = [{k: [] for k in keys} for _ in batch]
    n_tokens = 0
    for turn in range(max(len(q["turns"]) for q in batch)):
        idx = [i for i, q in enumerate(batch) if turn < len(q["turns"])]
        for i in idx:
            convs[i].append({"role": "user", "content": batch[i]["turns"][turn]})
        try:
            outs = backend.generate([convs[i] for i in idx], temperature=d["temperature"], top_p=d["top_p"],
                                    max_new_tokens=d["max_new_tokens"], seed=[d["seed"] + turn] * len(idx),
                                    stop_token_ids=d.get("stop_token_ids"))
        except PromptTooLong as e:
            q = batch[idx[e.index]]
            raise DataError(f"question {q['question_id']!r} turn {turn + 1}: prompt of {e.n_tokens} tokens does not "
                            f"fit the context of {e.max_len} tokens") from None
        for i, out in zip(idx, outs):
            c = out[0]
            convs[i].append({"role": "assistant", "content": c.text})
            answers[i].append(c.text)
            for k in keys:
                metas[i][k].append(getattr(c, k))
            n_tokens += c.n_tokens
    return answers, metas, n_tokens


def generate_answers(questions: list[dict], backend, decoding: dict, model_name: str, model_id: str,
                     out_path: str | Path, batch_size: int = 256, log=print, progress: bool = True) -> dict:
    """Generate (or resume) answers for ``questions``; returns a summary with throughput and truncations."""
    out_path = Path(out_path)
    cache = cache_path(out_path)
    ident = backend_identity(backend, model_id)
    hashes = {q["question_id"]: content_hash({"q": q["turns"], "d": decoding_for(q, decoding), "m": ident})
              for q in questions}
    done = _cached(out_path, cache, hashes)
    todo = [q for q in questions if q["question_id"] not in done]
    log(f"generate {model_name}: {len(done)} cached, {len(todo)} to generate")
    groups: dict[str, list[dict]] = {}
    for q in todo:
        groups.setdefault(content_hash(decoding_for(q, decoding)), []).append(q)
    bar = _Progress(len(todo), f"generate {model_name}", progress)
    for group in groups.values():
        d = decoding_for(group[0], decoding)
        for start in range(0, len(group), batch_size):
            batch = group[start : start + batch_size]
            answers, metas, n_tok = _answer_batch(batch, backend, d)
            stamp = time.time()
            records = [{"question_id": q["question_id"], "model": model_name, "turns": answers[i],
                        "meta": {**metas[i], "decoding": d, "backend": backend.name, "tstamp": stamp},
                        "input_hash": hashes[q["question_id"]]} for i, q in enumerate(batch)]
            append_jsonl(cache, records)
            done.update({r["question_id"]: r for r in records})
            bar.update(len(batch), n_tok)
    elapsed = bar.close()
    atomic_write_jsonl(out_path, [done[q["question_id"]] for q in questions])
    truncated = [qid for qid, r in done.items() if any(r["meta"].get("truncated", []))]
    dropped = [qid for qid, r in done.items() if any(r["meta"].get("prompt_tokens_dropped", []))]
    summary = {"model": model_name, "questions": len(questions), "generated": len(todo), "cached": len(questions) - len(todo),
               "seconds": round(elapsed, 2),
               "prompts_per_s": round(len(todo) / elapsed, 2) if todo and elapsed else None,
               "tokens_per_s": round(bar.tokens / elapsed, 1) if todo and elapsed else None,
               "truncated": len(truncated), "prompt_truncated": len(dropped)}
    if truncated:
        log(f"  {len(truncated)} answers hit a token limit (meta.finish_reason), e.g. {truncated[:3]}")
    if dropped:
        log(f"  {len(dropped)} prompts were cut to fit the context (meta.prompt_tokens_dropped), e.g. {dropped[:3]}")
    return summary


def load_answers(path: str | Path, question_ids: set[str] | None = None) -> dict[str, dict]:
    """Read an answers JSONL keyed by question id; duplicate, unknown-id or empty answers are errors naming them."""
    out, lines = {}, {}
    for line, rec in read_jsonl(path, with_lines=True):
        qid = str(rec.get("question_id", ""))
        if not qid:
            raise DataError(f"{path}:{line}: answer has no question_id")
        if qid in out:
            raise DataError(f"{path}:{line}: duplicate answer for question {qid!r} (first on line {lines[qid]})")
        if question_ids is not None and qid not in question_ids:
            raise DataError(f"{path}:{line}: answer for unknown question {qid!r}")
        turns = rec.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) for t in turns):
            raise DataError(f"{path}:{line}: answer for question {qid!r} has no turns (a non-empty list of strings)")
        if "model" in rec and not isinstance(rec["model"], str):
            raise DataError(f"{path}:{line}: key 'model' must be a string, got {type(rec['model']).__name__}")
        lines[qid] = line
        rec.setdefault("model", Path(path).stem)  # answers made elsewhere may not name their model
        out[qid] = rec
    return out
