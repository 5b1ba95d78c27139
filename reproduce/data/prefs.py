"""Preference pairs in one conversational JSONL format, however they were made.

Record: ``{"pair_id", "prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}],
"rejected": [...], "scores": {"chosen", "rejected"}}``.

The paper's recipe (SimPO's): K on-policy samples per prompt at temperature 0.8, scored by a reward
function; best = chosen, worst = rejected; prompts whose samples all score the same are dropped.
"""

from __future__ import annotations

import random
from pathlib import Path

from reproduce.io import DataError, atomic_write_json, atomic_write_jsonl, read_jsonl


def build_on_policy_pairs(prompts: list[str], backend, reward, samples_per_prompt: int, temperature: float,
                          max_new_tokens: int, seed: int = 0) -> tuple[list[dict], dict]:
    """Sample, score with ``reward(prompt, answer) -> float`` and pair best/worst; returns (pairs, summary)."""
    convs = [[{"role": "user", "content": p}] for p in prompts]
    samples = backend.generate(convs, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed,
                               num_samples=samples_per_prompt)
    rng = random.Random(seed)
    pairs, n_correct, n_total = [], 0, 0
    for i, (prompt, outs) in enumerate(zip(prompts, samples)):
        scored = [(reward(prompt, o.text), o.text) for o in outs if o.text.strip()]
        n_total += len(outs)
        n_correct += sum(s >= 1.0 for s, _ in scored)
        if len(scored) < 2:
            continue
        best, worst = max(s for s, _ in scored), min(s for s, _ in scored)
        if best == worst:
            continue  # all samples score the same: no preference signal (paper's rule)
        chosen = rng.choice([t for s, t in scored if s == best])
        rejected = rng.choice([t for s, t in scored if s == worst])
        pairs.append({
            "pair_id": f"pair-{i:05d}",
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "scores": {"chosen": best, "rejected": worst},
        })
    summary = {"prompts": len(prompts), "samples_per_prompt": samples_per_prompt, "temperature": temperature,
               "pairs": len(pairs), "kept_fraction": round(len(pairs) / max(1, len(prompts)), 4),
               "sample_accuracy": round(n_correct / max(1, n_total), 4)}
    return pairs, summary


def download_pairs(cfg: dict) -> list[dict]:
    """Load a Hugging Face preference dataset at a pinned revision (or from ``local_dir``) into our format.

    Expects the SimPO/princeton-nlp layout: ``prompt`` (str) and ``chosen``/``rejected`` as message lists
    whose last message is the assistant answer.
    """
    from datasets import load_dataset

    source = cfg.get("local_dir") or cfg["dataset"]
    ds = load_dataset(source, revision=None if cfg.get("local_dir") else cfg.get("revision"),
                      split=cfg.get("split", "train"))
    out = []
    for i, row in enumerate(ds):
        if cfg.get("max_pairs") and len(out) >= cfg["max_pairs"]:
            break
        try:
            out.append({
                "pair_id": str(row.get("prompt_id", i)),
                "prompt": [{"role": "user", "content": row["prompt"]}],
                "chosen": [{"role": "assistant", "content": row["chosen"][-1]["content"]}],
                "rejected": [{"role": "assistant", "content": row["rejected"][-1]["content"]}],
            })
        except (KeyError, IndexError, TypeError) as e:
            raise DataError(f"{source}: record {i}: expected prompt/chosen/rejected messages ({e})") from None
    return out


def write_pairs(pairs: list[dict], summary: dict, out_path: str | Path) -> None:
    """Write pairs JSONL and ``<name>.summary.json`` beside it, atomically."""
    out_path = Path(out_path)
    atomic_write_json(out_path.with_suffix(".summary.json"), summary)
    atomic_write_jsonl(out_path, pairs)


def load_pairs(path: str | Path) -> list[dict]:
    """Read and validate pairs; a record missing prompt/chosen/rejected or with an empty answer is an error
    naming the file, line and pair id."""
    pairs = read_jsonl(path)
    if not pairs:
        raise DataError(f"{path}: no preference pairs")
    for line, rec in enumerate(pairs, start=1):
        for key in ("prompt", "chosen", "rejected"):
            if key not in rec:
                raise DataError(f"{path}:{line}: pair {rec.get('pair_id', '?')!r} has no '{key}'")
            msgs = rec[key]
            if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) for m in msgs):
                raise DataError(f"{path}:{line}: pair {rec.get('pair_id', '?')!r}: '{key}' must be a list of messages")
            if key != "prompt" and not str(msgs[-1].get("content", "")).strip():
                raise DataError(f"{path}:{line}: pair {rec.get('pair_id', '?')!r}: empty '{key}' response")
        rec.setdefault("pair_id", f"line-{line}")
    return pairs
