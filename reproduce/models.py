"""The starting (SFT / instruct) model of a setting: built offline (tiny) or fetched at a pinned revision."""

from __future__ import annotations

from pathlib import Path

from reproduce.io import atomic_write_json


def prepare_base(base: dict, out_dir: str | Path, seed: int = 0, log=print) -> dict:
    """Materialise the base model in ``out_dir`` and return a summary.

    ``tiny_sft``: train tokenizer + tiny Llama SFT on the task's demonstrations (reproduce.tiny.sft).
    ``hf``: a Hugging Face model at a pinned ``revision`` (snapshot_download, cached by huggingface_hub), or
    ``local_dir`` when given (a directory the user already has; nothing is downloaded).
    """
    out_dir = Path(out_dir)
    if base["kind"] == "tiny_sft":
        from reproduce.tiny.sft import build_base
        from reproduce.tiny.task import load_task

        return build_base(load_task(base["task"]), base, out_dir, seed=seed, log=log)
    if base["kind"] == "hf":
        if base.get("local_dir"):
            src = Path(base["local_dir"])
            if not (src / "config.json").exists():
                raise FileNotFoundError(f"base.local_dir {src}: no config.json (not a model directory)")
        else:
            from huggingface_hub import snapshot_download

            src = Path(snapshot_download(base["model"], revision=base.get("revision")))
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
