"""Model sizes (parameters, layers, vocabulary) for the plan: from a local ``config.json`` when one is at
hand, else from the size written in the hub id (``Llama-3.2-3B`` -> 3e9), else unknown."""

from __future__ import annotations

import json
import re
from pathlib import Path

from reproduce.paths import repo_path

# Llama-3 / Gemma-2 shapes for hub ids without a local config (the published config.json of each).
KNOWN_SHAPES = {
    "meta-llama/Meta-Llama-3-8B-Instruct": {"params": 8.03e9, "vocab": 128256, "hidden": 4096, "layers": 32},
    "meta-llama/Llama-3.2-3B-Instruct": {"params": 3.21e9, "vocab": 128256, "hidden": 3072, "layers": 28},
    "google/gemma-2-2b-it": {"params": 2.61e9, "vocab": 256000, "hidden": 2304, "layers": 26},
}


def params_from_config(cfg: dict) -> float:
    """Parameter count of a decoder-only transformer from its ``config.json`` (embeddings, attention with
    grouped KV heads, gated MLP, norms; the LM head counted once more unless tied)."""
    h, layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    heads = cfg.get("num_attention_heads", 1)
    head_dim = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads", heads)
    inter = cfg.get("intermediate_size", 4 * h)
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    mlp = 3 * h * inter
    embed = vocab * h * (1 if cfg.get("tie_word_embeddings", False) else 2)
    return float(embed + layers * (attn + mlp + 2 * h) + h)


def model_shape(base: dict, model_dir: str | Path | None = None, workdir: Path | None = None) -> dict:
    """``{"params", "vocab", "hidden", "layers", "basis"}`` of a recipe's base model: the config.json of
    ``local_dir`` (from the repository or the working directory ``workdir``) or of ``model_dir`` (a model
    already built), a known hub shape, or the size in the id."""
    local = base.get("local_dir")
    candidates = [repo_path(str(local)), *([Path(workdir) / local] if workdir else [])] if local else []
    for d in [*candidates, *([Path(model_dir)] if model_dir else [])]:
        if (d / "config.json").is_file():
            path = d / "config.json"
            cfg = json.loads(path.read_text())
            cfg = cfg.get("text_config", cfg)
            try:
                return {"params": params_from_config(cfg), "vocab": cfg["vocab_size"], "hidden": cfg["hidden_size"],
                        "layers": cfg["num_hidden_layers"], "basis": f"counted from {d}/config.json"}
            except KeyError:
                pass
    model = str(base.get("model", ""))
    if model in KNOWN_SHAPES:
        return {**KNOWN_SHAPES[model], "basis": f"{model}'s published config.json"}
    m = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model.split("/")[-1])
    if m:
        return {"params": float(m.group(1)) * 1e9, "vocab": None, "hidden": None, "layers": None,
                "basis": f"the size in the id {model!r}"}
    return {"params": None, "vocab": None, "hidden": None, "layers": None, "basis": f"unknown size ({model or base.get('kind')})"}
