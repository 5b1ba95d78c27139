"""TGDPO's guidance model: a method trained in the same recipe (``guide: dpo``) or any model from the same
start (``guide: {model: HUB_ID_OR_DIR, revision: R}``), as the TGDPO README suggests (a DPO or SimPO model
fine-tuned from the policy's starting model)."""

from __future__ import annotations

from pathlib import Path

# What a guide needs from a hub repository: config, weights, tokenizer (not e.g. Llama's original/*.pth).
GUIDE_FILES = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]


def guide_method(guide) -> str | None:
    """The recipe method a ``guide`` value names, or None when it is an external model."""
    return guide if isinstance(guide, str) else None


def external_guide_dir(guide: dict, label: str = "guide") -> Path:
    """The directory of an external guide: ``model`` itself when it is a local model directory, else the
    hub snapshot at ``revision`` (only the files in ``GUIDE_FILES``); ``label`` names the recipe key in errors."""
    model = guide["model"]
    local = Path(model).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise FileNotFoundError(f"{label}.model {local}: no config.json (not a model directory)")
        return local
    if model.startswith((".", "/", "~")):
        raise FileNotFoundError(f"{label}.model {model}: no such directory")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(model, revision=guide.get("revision", "main"), allow_patterns=GUIDE_FILES))
