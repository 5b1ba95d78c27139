"""TGDPO's token-level reward guidance on example preference pairs, for the token-reward strip figure.

r_t = beta * (log pi_guide(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t)) for every response token, with the
TGDPO method's beta and alpha, its guidance model (``results/models/<setting>/<guide>``, a trained DPO
model) and the reference (``results/models/<setting>/sft``). Tokens of the chosen answer get weight
1 + alpha * r_t, tokens of the rejected answer 1 - alpha * r_t (docs/paper.md).
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


def _guided_models(cfg: dict, results: Path, setting: str) -> dict:
    """The TGDPO method's beta/alpha, tokenizer, reference and guidance models and the pairs file of ``setting``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results = Path(results)
    method = _tgdpo_method(cfg, setting)
    mcfg = cfg["settings"][setting]["methods"][method]
    beta, alpha, guide = float(mcfg["beta"]), float(mcfg["alpha"]), mcfg["guide"]
    ref_dir = Path(ResultPaths(results).model_dir(setting, "sft"))
    if isinstance(guide, str):
        guide_dir = Path(ResultPaths(results).model_dir(setting, guide))
    else:  # an external guide ({model, revision}): the directory training used
        from reproduce.train.guide import external_guide_dir

        guide_dir = external_guide_dir(guide, f"methods.{method}.guide")
    prefs = Path(ResultPaths(results).prefs(setting))
    for p in (ref_dir / "config.json", guide_dir / "config.json", prefs):
        if not p.exists():
            raise DataError(f"token rewards: missing {p} (run the workflow through training first)")
    torch.manual_seed(0)
    return {"beta": beta, "alpha": alpha, "method": method, "guide": str(guide_dir), "ref": str(ref_dir),
            "prefs": prefs, "tok": AutoTokenizer.from_pretrained(str(ref_dir)),
            "ref_model": AutoModelForCausalLM.from_pretrained(str(ref_dir), dtype=torch.float32).eval(),
            "guide_model": AutoModelForCausalLM.from_pretrained(str(guide_dir), dtype=torch.float32).eval()}


def _pair_rewards(m: dict, pair: dict, index: int) -> dict:
    """r_t of both answers of one preference pair under the loaded models ``m``."""
    entry = {"pair_id": pair.get("pair_id", str(index)), "prompt": pair["prompt"][-1]["content"]}
    for side in ("chosen", "rejected"):
        toks, lp_ref = response_token_logps(m["ref_model"], m["tok"], pair["prompt"], pair[side])
        _, lp_guide = response_token_logps(m["guide_model"], m["tok"], pair["prompt"], pair[side])
        entry[side] = {"tokens": toks, "r": [m["beta"] * (g - r) for g, r in zip(lp_guide, lp_ref)],
                       "score": float((pair.get("scores") or {}).get(side, float("nan")))}
    return entry


def _read_pairs(prefs: Path, limit: int | None) -> list[dict]:
    lines = prefs.read_text().splitlines()
    pairs = [json.loads(line) for line in (lines if limit is None else lines[:limit]) if line.strip()]
    if not pairs:
        raise DataError(f"token rewards: {prefs} has no pairs")
    return pairs


def _meta(m: dict) -> dict:
    return {k: m[k] for k in ("beta", "alpha", "guide", "ref", "method")}


def example_pairs(cfg: dict, results: Path, setting: str, n_pairs: int = 3, scan: int = 48) -> dict:
    """r_t on ``n_pairs`` example pairs of ``results/data/<setting>/prefs.jsonl``.

    Picks, among the first ``scan`` pairs, those with the widest spread of r_t (most informative strips),
    in file order. Returns ``{"beta", "alpha", "guide", "ref", "pairs": [{"pair_id", "prompt",
    "chosen"/"rejected": {"tokens", "r", "score"}}]}``.
    """
    m = _guided_models(cfg, results, setting)
    scored = []
    for i, pair in enumerate(_read_pairs(m["prefs"], scan)):
        entry = _pair_rewards(m, pair, i)
        spread = max(entry["chosen"]["r"] + entry["rejected"]["r"]) - min(entry["chosen"]["r"] + entry["rejected"]["r"])
        scored.append((spread, i, entry))
    best = sorted(sorted(scored, key=lambda x: -x[0])[:n_pairs], key=lambda x: x[1])
    return {**_meta(m), "pairs": [e for _, _, e in best]}


def all_pairs(cfg: dict, results: Path, setting: str, limit: int | None = None) -> dict:
    """r_t on every pair of ``results/data/<setting>/prefs.jsonl`` (the first ``limit`` with a limit), in file
    order, with ``n_total`` (pairs in the file) so a reader sees when only some were computed."""
    m = _guided_models(cfg, results, setting)
    n_total = sum(1 for line in m["prefs"].read_text().splitlines() if line.strip())
    pairs = [_pair_rewards(m, pair, i) for i, pair in enumerate(_read_pairs(m["prefs"], limit))]
    return {**_meta(m), "n_total": n_total, "pairs": pairs}
