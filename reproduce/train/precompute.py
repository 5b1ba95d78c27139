"""The reference's and the guidance model's per-token log-probs over the pairs, computed once at forward
speed and cached by content.

One pass per model: batches of rows of similar length (longest first: little padding, and an
out-of-memory batch shows at once), the models' own dtype under the trainer's autocast, and one host copy
per batch (the completion tokens' values, picked on the device by the completion mask). The cache key is
the token ids the models read and the models' weights, so runs that differ only in the loss's
hyperparameters (TGDPO's alpha sweep) share one cache: the guide forwards once for all of them.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import time
from pathlib import Path

import torch
from accelerate.utils import gather_object
from tqdm.auto import tqdm

CACHE_FORMAT = 3  # flat float32 values + lengths per column; keyed by token ids and raw weight bytes


def per_token_logps(model, inputs) -> torch.Tensor:
    """Per-token log-probs (2B, T-1) of the completion tokens under ``model`` (zero elsewhere), no grad.

    TRL's fused LM head projects the hidden states in tiles: no (B, T, vocab) logits are materialised."""
    mask = inputs["completion_mask"]
    labels = inputs["input_ids"].masked_fill(mask == 0, -100)
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels,
                    fused_lm_head=True, use_cache=False)
    return out.log_probs[:, -(mask.size(1) - 1):].float()


def zero3_partitioned(model: torch.nn.Module) -> bool:
    """Whether DeepSpeed ZeRO-3 partitioned the weights at load (each rank then holds empty placeholders)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def model_identity(model: torch.nn.Module) -> str:
    """A content hash of a model's weights for cache keys: every tensor's name, dtype, shape and raw bytes
    (bf16 hashed as stored: half the bytes TRL's ``hash_module`` converts to float32). When ZeRO-3
    partitioned the weights (the placeholders would hash alike for any two models of one shape), a hash of
    the weight and config files in the directory the model was loaded from."""
    h = hashlib.sha256()
    if not zero3_partitioned(model):
        for name, tensor in sorted(model.state_dict().items()):
            t = tensor.detach().contiguous().cpu()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()
    source = Path(model.config._name_or_path)
    files = sorted(f for f in source.iterdir() if f.suffix in (".safetensors", ".bin", ".json"))
    if not any(f.suffix in (".safetensors", ".bin") for f in files):
        raise RuntimeError(f"cache key: no weight files in {source} to identify a ZeRO-3 partitioned model by")
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()


def token_columns(dataset):
    """The tokenized pairs as an Arrow table (prompt, chosen and rejected token ids), indices applied."""
    return dataset.with_format("arrow")[:].select(["prompt_ids", "chosen_ids", "rejected_ids"])


def data_identity(dataset) -> str:
    """A content hash of the token ids the models read (not the data set's fingerprint, which depends on
    where its file lies: each run keeps its own copy)."""
    import pyarrow.compute as pc

    h = hashlib.sha256()
    for name, col in zip(*(lambda t: (t.column_names, t.columns))(token_columns(dataset))):
        col = col.combine_chunks()
        h.update(name.encode())
        h.update(pc.list_value_length(col).to_numpy(zero_copy_only=False).astype("int64").tobytes())
        h.update(pc.list_flatten(col).to_numpy(zero_copy_only=False).astype("int64").tobytes())
    return h.hexdigest()


def row_lengths(dataset) -> tuple[list[int], int]:
    """Each pair's longer sequence (prompt + the longer answer), and all completion tokens (both answers)."""
    import pyarrow.compute as pc

    t = token_columns(dataset)
    p, c, r = (pc.list_value_length(t.column(n)).to_numpy(zero_copy_only=False) for n in t.column_names)
    return (p + (c > r) * c + (c <= r) * r).tolist(), int(c.sum() + r.sum())


def compute_token_logps(accelerator, collator, dataset, sources, batch_size: int) -> tuple[dict, dict]:
    """Per-token log-probs of every ``(name, model)`` in ``sources`` over this rank's contiguous shard of
    ``dataset``, gathered from all ranks and packed per column (flat float32 values + lengths, in dataset
    order); and the pass's figures (rows, tokens, seconds, forward tokens/s over all ranks).

    Every rank runs the same number of batches (a short shard repeats a row, dropped after the gather):
    ZeRO-3 and FSDP gather parameters collectively in each forward.
    """
    device = accelerator.device
    world, rank, n = accelerator.num_processes, accelerator.process_index, len(dataset)
    per_rank = math.ceil(n / world)
    lengths, _ = row_lengths(dataset)
    mine = sorted(range(rank * per_rank, min(n, (rank + 1) * per_rank)), key=lambda i: -lengths[i])
    n_batches = math.ceil(per_rank / batch_size)
    done = []  # (dataset indices, {column: (flat values, lengths)}) per batch, on the host
    tokens = 0
    bar = tqdm(total=n_batches, desc="token log-probs (" + ", ".join(s for s, _ in sources) + ")",
               disable=not accelerator.is_main_process, dynamic_ncols=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in range(n_batches):
        idx = mine[b * batch_size:(b + 1) * batch_size]
        padding = not idx  # this rank's shard is done: forward a repeated row with the others, keep nothing
        batch = collator([dataset[i] for i in (idx or [mine[-1] if mine else 0])])
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        keep = batch["completion_mask"][:, 1:].bool()  # the completion tokens, chosen rows then rejected
        columns = {}
        for src, model in sources:
            with accelerator.autocast():
                lp = per_token_logps(model, batch)
            lens = keep.sum(1)
            values, lens = lp[keep].cpu(), lens.cpu()  # one host copy per batch and model
            half = int(lens[:len(lens) // 2].sum())
            columns[f"{src}_chosen_token_logps"] = (values[:half], lens[:len(lens) // 2])
            columns[f"{src}_rejected_token_logps"] = (values[half:], lens[len(lens) // 2:])
        if not padding:
            done.append((idx, columns))
            tokens += int(batch["attention_mask"].sum())
        bar.update(1)
    bar.close()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    gathered = gather_object(done)
    figures = gather_object([(tokens, seconds)])
    rows: dict[int, dict] = {}
    for idx, columns in gathered:
        for col, (values, lens) in columns.items():
            for i, v in zip(idx, torch.split(values, lens.tolist())):
                rows.setdefault(i, {})[col] = v
    missing = [i for i in range(n) if i not in rows]
    if missing:
        raise RuntimeError(f"precompute: rows {missing[:5]} came back from no rank")
    cols = [f"{s}_{side}_token_logps" for s, _ in sources for side in ("chosen", "rejected")]
    total_tokens = sum(t for t, _ in figures)
    wall = max(s for _, s in figures)
    stats = {"rows": n, "models": [s for s, _ in sources], "tokens": total_tokens, "seconds": round(wall, 3),
             "forward_tokens_per_s": round(total_tokens * len(sources) / max(wall, 1e-9), 1), "batch_size": batch_size}
    return {"format": CACHE_FORMAT, "columns": {c: pack([rows[i][c] for i in range(n)]) for c in cols}}, stats


def pack(rows: list[torch.Tensor]) -> dict:
    """Variable-length rows as one flat float32 tensor and their lengths (compact to save and to gather)."""
    return {"values": torch.cat(rows) if rows else torch.zeros(0), "lengths": torch.tensor([len(r) for r in rows])}


def unpack(packed: dict) -> list[torch.Tensor]:
    """The rows :func:`pack` packed."""
    return list(torch.split(packed["values"], packed["lengths"].tolist()))


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` to a uniquely named temp sibling, then rename: the file is complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is shared like the other results
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
