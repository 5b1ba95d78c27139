"""TGDPO's token-level reward guidance on example preference pairs, for the token-reward strips (figure
and HTML report).

r_t = beta * (log pi_guide(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)) for every response token, with the
TGDPO method's beta and alpha, its guidance model (``results/models/<setting>/<guide>``, a trained DPO
model) and the reference (``results/models/<setting>/sft``). Tokens of the chosen answer get weight
1 + alpha * r_t, tokens of the rejected answer 1 - alpha * r_t (docs/paper.md).

The log-probs are the ones training read: its per-token cache, found through the index the TGDPO training
job writes beside its model (``token_logps_index.json``: the cache file and which row is which pair). The
report loads no model; :func:`response_token_logps` computes the same values from models, to check against.
"""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.config import ConfigError
from reproduce.io import DataError
from reproduce.paths import ResultPaths


def _tgdpo_method(cfg: dict, setting: str) -> str:
    methods = cfg["settings"][setting]["methods"]
    tg = [m for m in cfg["methods"] if m != "sft" and methods[m]["loss"] == "tgdpo"]
    if not tg:
        raise ConfigError(f"token rewards: preset '{cfg['preset']}' trains no TGDPO method in setting '{setting}'")
    return "tgdpo" if "tgdpo" in tg else tg[0]


def response_token_logps(model, tokenizer, prompt: list[dict], response: list[dict]) -> tuple[list[str], list[float]]:
    """Tokens of ``response`` (after the chat-templated prompt) and their log-probs under ``model``."""
    import torch

    p_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    full = tokenizer.apply_chat_template(prompt + response, tokenize=True)
    if hasattr(p_ids, "keys"):  # newer transformers return a BatchEncoding
        p_ids, full = p_ids["input_ids"], full["input_ids"]
    if list(full[: len(p_ids)]) != list(p_ids):
        raise DataError("token rewards: the chat template does not extend the prompt with the response")
    from trl.trainer.utils import add_fused_lm_head

    from reproduce.train.precompute import per_token_logps

    ids = torch.tensor([list(full)])
    completion = torch.zeros_like(ids)
    completion[0, len(p_ids):] = 1
    if not getattr(model, "_fused_lm_head_added", False):  # training's tiled LM head: no [1, T, vocab] logits
        add_fused_lm_head(model)
        model._fused_lm_head_added = True
    logps = per_token_logps(model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion})[0]
    resp = list(full[len(p_ids):])
    # the template's end-of-turn tokens stay: TGDPO weights them too (they are completion tokens in training)
    vals = logps[len(p_ids) - 1:].tolist()
    toks = [tokenizer.decode([t]) for t in resp]
    return toks, vals


def _guide_meta(cfg: dict, results: Path, setting: str) -> dict:
    """The TGDPO method of ``setting``: its beta, alpha, guide and reference directories, and its index file."""
    results = Path(results)
    method = _tgdpo_method(cfg, setting)
    mcfg = cfg["settings"][setting]["methods"][method]
    guide = mcfg["guide"]
    paths = ResultPaths(results)
    guide_dir = paths.model_dir(setting, guide) if isinstance(guide, str) else str(guide.get("model"))
    return {"beta": float(mcfg["beta"]), "alpha": float(mcfg["alpha"]), "method": method, "guide": guide_dir,
            "ref": paths.model_dir(setting, "sft"), "index": Path(paths.token_index(setting, method)),
            "prefs": Path(paths.prefs(setting))}


def completion_ids(tokenizer, pair: dict, template_kwargs: dict | None = None) -> dict[str, list[int]]:
    """The chosen and rejected answers' token ids as training read them: each side's chat-templated
    prompt + answer after the prefix it shares with the templated prompt (TRL's DPO tokenisation)."""
    kw = dict(template_kwargs or {})

    def ids(messages, **extra):
        out = tokenizer.apply_chat_template(messages, tokenize=True, **kw, **extra)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    prompt = ids(pair["prompt"], add_generation_prompt=True)
    full = {side: ids(pair["prompt"] + pair[side]) for side in ("chosen", "rejected")}

    def common(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    start = min(common(prompt, f) for f in full.values())
    return {side: f[start:] for side, f in full.items()}


class LogpCache:
    """The per-token log-prob cache a training job wrote, read through the index beside its model: each
    pair's values of one column without reading the rest (the file is memory-mapped)."""

    def __init__(self, index_path: Path, workdir: Path | None = None):
        import torch

        if not index_path.is_file():
            raise DataError(f"token rewards: no {index_path} (the TGDPO training job writes it when its token "
                            "rewards are precomputed; retrain with this version, or token_rewards: live leaves none)")
        self.index = json.loads(index_path.read_text())
        cache = Path(self.index["cache"])
        if not cache.is_absolute() and workdir is not None and not cache.is_file():
            cache = workdir / cache  # the workflow names it from its working directory, the results' parent
        if not cache.is_file():
            raise DataError(f"token rewards: {index_path} names the cache {cache}, which is not there")
        packed = torch.load(cache, mmap=True, weights_only=True)
        if packed.get("format") != self.index.get("format"):
            raise DataError(f"token rewards: {cache} is format {packed.get('format')}, {index_path} expects "
                            f"{self.index.get('format')}")
        self.columns = packed["columns"]
        self.offsets = {c: [0, *v["lengths"].cumsum(0).tolist()] for c, v in self.columns.items()}
        self.rows = {pid: i for i, pid in enumerate(self.index["pair_ids"])}
        if len(self.rows) != len(self.offsets[next(iter(self.offsets))]) - 1:
            raise DataError(f"token rewards: {index_path} lists {len(self.rows)} pairs, its cache "
                            f"{len(self.offsets[next(iter(self.offsets))]) - 1} rows")

    def values(self, column: str, row: int) -> list[float]:
        """One row of one column (e.g. ``guide_chosen_token_logps``) as floats."""
        if column not in self.columns:
            raise DataError(f"token rewards: the cache {self.index['cache']} has no column {column} "
                            f"(it holds {', '.join(sorted(self.columns))})")
        a, b = self.offsets[column][row], self.offsets[column][row + 1]
        return self.columns[column]["values"][a:b].tolist()


def _read_pairs(prefs: Path, limit: int | None) -> list[dict]:
    if not prefs.is_file():
        raise DataError(f"token rewards: missing {prefs} (run the workflow through training first)")
    lines = prefs.read_text().splitlines()
    pairs = [json.loads(line) for line in (lines if limit is None else lines[:limit]) if line.strip()]
    if not pairs:
        raise DataError(f"token rewards: {prefs} has no pairs")
    return pairs


def cached_pairs(cfg: dict, results: Path, setting: str, limit: int | None = None) -> dict:
    """r_t on the first ``limit`` pairs (all without a limit) of ``results/data/<setting>/prefs.jsonl``, in file
    order, read from the log-prob cache the TGDPO training job wrote (through its ``token_logps_index.json``):
    no model is loaded, only the reference's tokenizer to show the tokens. Pairs training dropped (a prompt
    filling max_length) are skipped. Returns ``{"beta", "alpha", "guide", "ref", "method", "n_total",
    "pairs": [{"pair_id", "prompt", "chosen"/"rejected": {"tokens", "r", "score"}}]}``."""
    from transformers import AutoTokenizer

    m = _guide_meta(cfg, results, setting)
    cache = LogpCache(m["index"], Path(results).absolute().parent)
    missing = [s for s in ("ref", "guide") if s not in cache.index.get("sources", [])]
    if missing:
        raise DataError(f"token rewards: the cache of {m['index']} holds no {' or '.join(missing)} log-probs")
    tok = AutoTokenizer.from_pretrained(m["ref"])
    keep_end = cache.index.get("truncation_mode") == "keep_end"
    template_kwargs = cfg["settings"][setting].get("chat_template_kwargs")
    n_total = sum(1 for line in m["prefs"].read_text().splitlines() if line.strip()) if m["prefs"].is_file() else 0
    out = []
    for i, pair in enumerate(_read_pairs(m["prefs"], limit)):
        pid = str(pair.get("pair_id", i))
        row = cache.rows.get(pid)
        if row is None:
            continue
        ids = completion_ids(tok, pair, template_kwargs)
        entry = {"pair_id": pid, "prompt": pair["prompt"][-1]["content"]}
        for side in ("chosen", "rejected"):
            ref = cache.values(f"ref_{side}_token_logps", row)
            guide = cache.values(f"guide_{side}_token_logps", row)
            if len(ids[side]) < len(ref):
                raise DataError(f"token rewards: pair {pid} ({side}) has {len(ref)} cached values but "
                                f"{len(ids[side])} tokens under {m['ref']}'s tokenizer (not the tokenizer training used?)")
            shown = ids[side][len(ids[side]) - len(ref):] if keep_end else ids[side][:len(ref)]
            entry[side] = {"tokens": tok.batch_decode([[t] for t in shown]),
                           "r": [m["beta"] * (g - r) for g, r in zip(guide, ref)],
                           "score": float((pair.get("scores") or {}).get(side, float("nan")))}
        out.append(entry)
    if not out:
        raise DataError(f"token rewards: none of the first {limit} pairs of {m['prefs']} is in {m['index']}")
    return {**{k: m[k] for k in ("beta", "alpha", "guide", "ref", "method")}, "n_total": n_total, "pairs": out}


def example_pairs(cfg: dict, results: Path, setting: str, n_pairs: int = 3, scan: int = 48) -> dict:
    """r_t on ``n_pairs`` example pairs: among the first ``scan`` pairs (from the cache, :func:`cached_pairs`),
    those with the widest spread of r_t (most informative strips), in file order."""
    data = cached_pairs(cfg, results, setting, scan)
    scored = []
    for i, entry in enumerate(data["pairs"]):
        values = entry["chosen"]["r"] + entry["rejected"]["r"]
        scored.append((max(values) - min(values) if values else 0.0, i, entry))
    best = sorted(sorted(scored, key=lambda x: -x[0])[:n_pairs], key=lambda x: x[1])
    return {**{k: v for k, v in data.items() if k != "pairs"}, "pairs": [e for _, _, e in best]}
