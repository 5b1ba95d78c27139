"""Preference pairs in one conversational JSONL format, however they were made.

Record: ``{"pair_id", "prompt": [{"role": "user", ...}], "chosen": [{"role": "assistant", ...}],
"rejected": [...], "scores": {"chosen", "rejected"}}``.

The paper's recipe (SimPO's): K on-policy samples per prompt at temperature 0.8, scored by a reward
function; best = chosen, worst = rejected; prompts whose samples all score the same are dropped.
The released pairs (``hf_dataset``) are read from either published layout by ``read_preference_dataset``
(layouts: reproduce.data.layouts; files, directories and the hub: reproduce.data.sources).
"""

from __future__ import annotations

import json
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


def download_pairs(cfg: dict) -> tuple[list[dict], dict]:
    """The ``hf_dataset`` kind: the released pairs at a pinned ``revision`` (or from ``local_dir``, where
    nothing is downloaded) in our format; returns (pairs, summary) as :func:`read_preference_dataset`."""
    local = cfg.get("local_dir")
    if local:
        if not Path(local).expanduser().exists():
            raise DataError(f"preference_data.local_dir {local}: no such file or directory")
        return read_preference_dataset(local, None, cfg.get("split", "train"), cfg.get("max_pairs"), local=True)
    if not cfg.get("dataset"):
        raise DataError("preference_data.dataset: a hub dataset id (or local_dir) is required for kind hf_dataset")
    return read_preference_dataset(cfg["dataset"], cfg.get("revision"), cfg.get("split", "train"), cfg.get("max_pairs"))


# Examples of dropped rows kept in the summary (so a user can look at them) without bloating it.
DROPPED_EXAMPLES = 10


def read_preference_dataset(source: str, revision: str | None = None, split: str = "train",
                            max_pairs: int | None = None, local: bool = False) -> tuple[list[dict], dict]:
    """Read a preference dataset in either released layout (see reproduce.data.layouts) into our pairs.

    ``source``: a hub dataset id (read at ``revision``/``split``), a local directory (its files of
    ``split``) or a local .json/.jsonl/.parquet file; ``local`` forces the path reading. The layout is
    detected per file from its columns. A row with an empty prompt or answer is dropped, as the paper's
    pipeline drops unusable pairs, and counted by reason in the summary with the first few records named;
    a malformed row or file is a ``DataError`` naming the file and record. Stops after ``max_pairs``.
    """
    from reproduce.data.layouts import detect_layout
    from reproduce.data.sources import open_source

    # An absolute path is never taken for a hub id, whatever its spelling.
    tables = open_source(str(Path(source).expanduser().resolve()) if local else source, revision, split)
    pairs: list[dict] = []
    dropped: dict[str, int] = {}
    examples: list[dict] = []
    rows_read = joined_inputs = 0
    layout = None
    full = True
    for table in tables:
        if max_pairs and len(pairs) >= max_pairs:
            full = False
            break
        this = detect_layout(table.columns, table.where)
        if layout and this.name != layout.name:
            raise DataError(f"{table.where}: layout {this.name} differs from the {layout.name} layout of "
                            f"{tables[0].where}")
        layout = this
        for i, row in enumerate(table.read(layout.columns_in(table.columns))):
            if max_pairs and len(pairs) >= max_pairs:
                full = False
                break
            rows_read += 1
            try:
                fields = layout.extract(row)
            except ValueError as e:
                raise DataError(f"{table.where}: record {i}: {e}") from None
            reason = _drop_reason(fields)
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                if len(examples) < DROPPED_EXAMPLES:
                    examples.append({"file": table.where, "record": i, "reason": reason})
                continue
            joined_inputs += fields.joined_input
            pairs.append({
                "pair_id": fields.pair_id or f"{split}-{rows_read - 1:06d}",
                "prompt": [{"role": "user", "content": fields.prompt}],
                "chosen": [{"role": "assistant", "content": fields.chosen}],
                "rejected": [{"role": "assistant", "content": fields.rejected}],
            })
    where = ", ".join(t.where for t in tables[:3]) + (" ..." if len(tables) > 3 else "")
    if not pairs:
        raise DataError(f"{where}: no usable preference pairs ({rows_read} rows read, dropped: "
                        f"{json.dumps(dropped) if dropped else 'none'})")
    summary = {
        "source": source, "revision": revision, "split": split, "layout": layout.name,
        "files": [t.where for t in tables],
        "rows_read": rows_read,
        "pairs": len(pairs),  # pairs written; same key as the on-policy summary
        "rows_dropped": sum(dropped.values()), "dropped_by_reason": dropped, "dropped_examples": examples,
        "max_pairs": max_pairs,
        # False when max_pairs stopped the read early: the rest of the dataset was not looked at.
        "read_whole_dataset": full,
    }
    if layout.name == "mk1111":
        summary["rows_with_input_joined"] = joined_inputs
    return pairs, summary


def _drop_reason(fields) -> str | None:
    if not fields.prompt.strip():
        return "empty prompt"
    if not fields.chosen.strip():
        return "empty chosen answer"
    if not fields.rejected.strip():
        return "empty rejected answer"
    return None


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
