"""Train one method (guidance DPO, DPO, SimPO, TGDPO) from the starting model on preference pairs.

Reads the method's recipe entry (config/recipes/<setting>.yaml), writes the model, ``train_log.jsonl``
(one line per step: loss, rewards, margins, accuracy, grad norm, lr, tokens/s, token-reward stats) and
``train_summary.json`` into the output directory. Checkpoints live in ``checkpoint_dir`` and a rerun
resumes from the latest one, so a killed run loses at most ``save_steps`` steps.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from reproduce.data.prefs import load_pairs
from reproduce.io import append_jsonl, atomic_write_json, atomic_write_jsonl, read_jsonl, repair_jsonl


class StepLogger(TrainerCallback):
    """Append every logged step to a JSONL file, adding tokens/s; stop on a non-finite loss."""

    def __init__(self, path: Path):
        self.path, self.t_last, self.tokens_last = path, time.time(), 0.0
        repair_jsonl(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs:
            return
        now = time.time()
        tokens = logs.pop("num_tokens_batch", None)
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        if tokens is not None:
            row["tokens_per_s"] = tokens * args.logging_steps * args.gradient_accumulation_steps / max(1e-9, now - self.t_last)
        self.t_last = now
        append_jsonl(self.path, [row])


def _complete_checkpoint(path: Path) -> bool:
    """Whether a checkpoint was fully written: its ``trainer_state.json`` (saved last) exists and parses."""
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def _truncate_log(path: Path, step: int) -> None:
    """Drop logged rows past ``step``: a resumed run repeats those steps, and must not log them twice."""
    if path.exists():
        rows = read_jsonl(path, allow_torn_tail=True)
        keep = [r for r in rows if r.get("step", 0) <= step]
        if len(keep) != len(rows):
            atomic_write_jsonl(path, keep)


def dpo_config(method: dict, checkpoint_dir: Path, live: bool):
    """TRL ``DPOConfig`` from a recipe's method entry (defaults are the paper's where it gives them)."""
    import torch
    from trl import DPOConfig

    on_gpu = torch.cuda.is_available()
    return DPOConfig(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=method.get("per_device_batch_size", 1),
        gradient_accumulation_steps=method.get("gradient_accumulation_steps", 1),
        learning_rate=method["learning_rate"],
        num_train_epochs=method.get("epochs", 1),
        max_steps=method.get("max_steps", -1),
        lr_scheduler_type=method.get("lr_scheduler", "cosine"),
        warmup_steps=method.get("warmup_ratio", 0.1),  # a float < 1 is a ratio in transformers 5
        weight_decay=method.get("weight_decay", 0.0),
        max_grad_norm=method.get("max_grad_norm", 1.0),
        beta=method["beta"],
        max_length=method.get("max_length", 2048),
        bf16=method.get("bf16", False) and on_gpu,
        gradient_checkpointing=method.get("gradient_checkpointing", False) and on_gpu,
        seed=method.get("seed", 42),
        logging_steps=1,
        save_strategy="steps",
        save_steps=method.get("save_steps", 500),
        save_total_limit=1,
        report_to=[],
        precompute_ref_log_probs=not live,
        remove_unused_columns=False,  # keep our per-token columns and pair ids for the collator
        disable_dropout=True,
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def build_trainer(method: dict, base_dir: str | Path, prefs_path: str | Path, checkpoint_dir: str | Path,
                  guide_dir: str | Path | None = None, cache_dir: str | Path | None = None):
    """The configured :class:`PreferenceTrainer` for ``method`` (not yet trained) and its tokenizer."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.train.trainer import PreferenceTrainer, TokenLogpCollator, check_same_tokenizer

    loss = method["loss"]
    if method["beta"] <= 0 or method.get("alpha", 0) < 0:
        raise ValueError(f"{loss}: beta must be > 0 and alpha >= 0 (got beta={method['beta']}, alpha={method.get('alpha')})")
    live = method.get("token_rewards", "precomputed") == "live"
    pairs = load_pairs(prefs_path)
    rows = [{"pair_id": p["pair_id"], "prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]} for p in pairs]
    dataset = Dataset.from_list(rows)

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="float32")
    guide = None
    if loss == "tgdpo":
        if guide_dir is None:
            raise ValueError("tgdpo needs a guidance model directory (--guide)")
        guide_tok = AutoTokenizer.from_pretrained(str(guide_dir))
        check_same_tokenizer(tokenizer, guide_tok, str(guide_dir))
        guide = AutoModelForCausalLM.from_pretrained(str(guide_dir), dtype="float32")
    ref = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype="float32") if live and loss != "simpo" else None

    args = dpo_config(method, Path(checkpoint_dir), live)
    loss_kwargs = {k: method[k] for k in ("alpha", "gamma") if k in method}
    collator = TokenLogpCollator(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length)
    trainer = PreferenceTrainer(
        model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer,
        data_collator=collator, loss_name=loss, loss_kwargs=loss_kwargs, guide_model=guide,
        token_rewards="live" if live else "precomputed", cache_dir=cache_dir,
    )
    return trainer, tokenizer


def train_method(method: dict, base_dir: str | Path, prefs_path: str | Path, out_dir: str | Path,
                 guide_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 checkpoint_dir: str | Path | None = None, threads: int | None = None, log=print) -> dict:
    """Train ``method`` and save the policy to ``out_dir``; returns the summary written beside it.

    Checkpoints go to ``checkpoint_dir`` (default ``<out_dir>/checkpoints``); keep it outside a
    Snakemake output directory so a failed job's cleanup does not delete them.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    trainer, tokenizer = build_trainer(method, base_dir, prefs_path, checkpoint_dir, guide_dir, cache_dir)
    log_path = out_dir / "train_log.jsonl"
    trainer.add_callback(StepLogger(log_path))
    # a checkpoint cut short by a kill has no parseable trainer_state.json (written last): never resume from it
    checkpoints = sorted((p for p in checkpoint_dir.glob("checkpoint-*") if _complete_checkpoint(p)),
                         key=lambda p: int(p.name.split("-")[-1]))
    _truncate_log(log_path, int(checkpoints[-1].name.split("-")[-1]) if checkpoints else 0)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    seconds = time.time() - t0
    trainer.model.eval()
    trainer.save_model(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    summary = {"loss_name": method["loss"], "pairs": len(trainer.train_dataset), "steps": trainer.state.global_step,
               "train_seconds": round(seconds, 2), "final_train_loss": result.training_loss,
               "resumed_from": checkpoints[-1].name if checkpoints else None, "method": method}
    atomic_write_json(out_dir / "train_summary.json", summary)
    log(json.dumps({k: v for k, v in summary.items() if k != "method"}))
    return summary
