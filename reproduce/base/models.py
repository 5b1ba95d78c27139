"""The starting (SFT / instruct) model of a setting: built offline (tiny) or fetched at a pinned revision."""

from __future__ import annotations

import importlib
from pathlib import Path

from reproduce.config import ConfigError
from reproduce.io import DataError, atomic_write_json
from reproduce.tasks import load_task

# base kind -> "module:function(task, base config, out_dir, seed, log)" building a task's starting model
BASE_BUILDERS = {"tiny_sft": "reproduce.tiny.sft:build_base"}
# What a model repo needs for training and generation. Meta's repos also hold ``original/*.pth`` (the same
# weights in their own format, ~16 GB for 8B) and some hold ``*.bin`` duplicates: never fetched.
MODEL_FILE_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "tokenizer.model", "*.tiktoken", "*.txt"]
MODEL_IGNORE_PATTERNS = ["original/*", "*.pth", "*.bin", "*.pt", "*.gguf", "*.msgpack", "*.h5", "*.onnx"]


def prepare_base(base: dict, out_dir: str | Path, seed: int = 0, log=print) -> dict:
    """Materialise the base model in ``out_dir`` and return a summary.

    ``tiny_sft``: train tokenizer + tiny Llama SFT on the task's demonstrations (the builder registered in
    :data:`BASE_BUILDERS`, ``reproduce.tiny.sft``).
    ``hf``: a Hugging Face model at a pinned ``revision`` (snapshot_download, cached by huggingface_hub), or
    ``local_dir`` when given (a directory the user already has; nothing is downloaded).
    """
    out_dir = Path(out_dir)
    if base["kind"] in BASE_BUILDERS:  # a task's own starting model, trained on its demonstrations
        module, function = BASE_BUILDERS[base["kind"]].split(":")
        build = getattr(importlib.import_module(module), function)
        return build(load_task(base["task"]), base, out_dir, seed=seed, log=log)
    if base["kind"] == "hf":
        src = local_model_dir(base["local_dir"]) if base.get("local_dir") else fetch_model(base, log=log)
        check_model_dir(src)
        out_dir.mkdir(parents=True, exist_ok=True)
        # Link the files instead of copying multi-GB weights.
        for f in src.iterdir():
            target = out_dir / f.name
            if not target.exists():
                target.symlink_to(f.resolve())
        summary = {"model": base.get("model"), "revision": base.get("revision"), "source": str(src)}
        atomic_write_json(out_dir / "base_summary.json", summary)
        return summary
    raise ValueError(f"base.kind: unknown kind '{base['kind']}'")


def fetch_model(base: dict, log=print) -> Path:
    """Download (or find in the huggingface_hub cache) ``base.model`` at ``base.revision``: config,
    tokenizer, generation config, chat template and safetensors weights only."""
    from huggingface_hub import snapshot_download

    log(f"fetching {base['model']}@{base.get('revision') or 'main'} (safetensors, config and tokenizer files)")
    src = Path(snapshot_download(base["model"], revision=base.get("revision"), allow_patterns=MODEL_FILE_PATTERNS,
                                 ignore_patterns=MODEL_IGNORE_PATTERNS))
    if not any(src.glob("*.safetensors")):
        raise DataError(f"base.model {base['model']}@{base.get('revision') or 'main'}: the repository has no "
                        ".safetensors weights (only those are fetched)")
    return src


def local_model_dir(local_dir: str) -> Path:
    """``base.local_dir`` as a path; a missing directory or one that is not a model directory is a one-line
    ``ConfigError`` naming the key and the path."""
    src = Path(local_dir).expanduser()
    if not src.exists():
        raise ConfigError(f"base.local_dir {src}: no such directory")
    if not src.is_dir():
        raise ConfigError(f"base.local_dir {src}: not a directory")
    if not (src / "config.json").exists():
        raise ConfigError(f"base.local_dir {src}: no config.json (not a Hugging Face model directory)")
    if not any(src.glob("*.safetensors")) and not any(src.glob("pytorch_model*.bin")):
        raise ConfigError(f"base.local_dir {src}: no model weights (*.safetensors or pytorch_model*.bin)")
    return src


def check_model_dir(src: Path) -> None:
    """The tokenizer of a model directory must load and carry a chat template (we never guess one)."""
    from transformers import AutoTokenizer

    from reproduce.generate.base import require_chat_template

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src))
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"base model {src}: tokenizer does not load ({type(e).__name__}: "
                        f"{(str(e).strip().splitlines() or [''])[0][:200]})") from None
    require_chat_template(tokenizer, f"base model {src}")
