"""Official judge prompts of the three protocols, loaded from the pinned official files.

AlpacaEval's prompt ships inside the installed ``alpaca-eval`` wheel; Arena-Hard's system prompt and
template come from its v0.1 ``judge_config.yaml``; MT-Bench's from FastChat's ``judge_prompts.jsonl``.
The two downloaded files go through :func:`reproduce.official.fetch_file` (pinned sha256).
For a tiny benchmark (``questions.task`` set) a missing file is not an error: the caller gets ``None`` and
builds requests only the programmatic verifier judge can answer.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import Callable

import yaml

from reproduce.io import DataError
from reproduce.official import fetch_file

# The AlpacaEval 2 annotator and its prompt file, as named by the wheel's own evaluator config.
ALPACA_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"


def optional_for_tiny(bench: dict, loader: Callable[[], dict]) -> dict | None:
    """Run ``loader``; for a tiny benchmark a missing file yields ``None`` instead of an error."""
    try:
        return loader()
    except (DataError, OSError, KeyError) as e:
        if bench.get("questions", {}).get("task"):
            return None
        if isinstance(e, KeyError):  # the benchmark config does not name the prompt file
            raise DataError(f"{bench.get('_file', 'benchmark')}: questions.files lacks {e}") from None
        raise


def templates_from_file(bench: dict, key: str, parse: Callable[[Path], dict], mirror=None) -> dict | None:
    """``parse`` of the official file ``questions.files[key]`` of ``bench`` (fetched by its pinned sha256);
    None for a tiny benchmark without it."""
    return optional_for_tiny(bench, lambda: parse(fetch_file(bench["questions"]["files"][key], mirror)))


def alpaca_eval_prompt(annotator: str = ALPACA_ANNOTATOR) -> dict:
    """The annotator's prompt template and completion settings, read from the installed alpaca-eval wheel."""
    configs = importlib.resources.files("alpaca_eval") / "evaluators_configs"
    cfg_path = configs / annotator / "configs.yaml"
    try:
        cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))[annotator]
        template = (configs / cfg["prompt_template"]).read_text(encoding="utf-8")
    except (OSError, KeyError, TypeError) as e:
        raise DataError(f"{cfg_path}: cannot read the alpaca-eval annotator '{annotator}' ({e})") from None
    return {"annotator": annotator, "prompt_template": template,
            "completions_kwargs": cfg.get("completions_kwargs", {}),
            "completion_parser_kwargs": cfg.get("completion_parser_kwargs", {})}


def arena_hard_config(path: str | Path) -> dict:
    """System prompt, prompt template(s) and judge settings of an Arena-Hard ``judge_config.yaml``."""
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise DataError(f"{path}: cannot read the Arena-Hard judge config ({e})") from None
    if not isinstance(cfg, dict) or "system_prompt" not in cfg or "prompt_template" not in cfg:
        raise DataError(f"{path}: judge config lacks system_prompt / prompt_template")
    templates = cfg["prompt_template"]
    if isinstance(templates, str):
        templates = [templates]
    return {"system_prompt": cfg["system_prompt"], "prompt_template": list(templates),
            "regex_pattern": cfg.get("regex_pattern"), "judge_model": cfg.get("judge_model"),
            "temperature": cfg.get("temperature"), "max_tokens": cfg.get("max_tokens"),
            "baseline_model": cfg.get("baseline_model")}


def mt_bench_prompts(path: str | Path) -> dict:
    """FastChat judge prompts by name (``single-v1``, ``pair-math-v1-multi-turn``, ...)."""
    path = Path(path)
    out = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read the MT-Bench judge prompts ({e})") from None
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out[rec["name"]] = rec
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(f"{path}:{i}: not a judge prompt record") from None
    return out
