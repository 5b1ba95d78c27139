"""Train one method (guidance DPO, DPO, SimPO, TGDPO) from the starting model on preference pairs.

Reads the method's recipe entry (config/recipes/<setting>.yaml), writes the model, ``train_log.jsonl``
(one line per step: loss, rewards, margins, accuracy, grad norm, lr, tokens/s, token-reward stats) and
``train_summary.json`` into the output directory. Checkpoints live in ``checkpoint_dir`` and a rerun
resumes from the latest one, so a killed run loses at most ``save_steps`` steps.
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

from transformers import ProgressCallback, TrainerCallback

from reproduce.config import ConfigError
from reproduce.data.prefs import load_pairs
from reproduce.paths import TOKEN_INDEX
from reproduce.io import append_jsonl, atomic_write_json, atomic_write_jsonl, content_hash, read_jsonl, repair_jsonl
from reproduce.train.disk import (NoFinalCheckpoint, check_training_disk, free_bytes, gib, model_bytes,
                                  planned_saves, remove_checkpoints, total_steps)
from reproduce.train.milestones import ConvergenceStop, StepSaver, convergence_rule, eval_steps, step_dir, step_saved


class StepLogger(TrainerCallback):
    """Append every logged step to a JSONL file, adding tokens/s; only the world's process zero writes
    (the metrics it logs are already reduced over ranks)."""

    def __init__(self, path: Path, is_main: bool = True):
        self.path, self.t_last = path, time.time()
        self.first_step_at: float | None = None  # wall clock (epoch s) when this run's first step began
        if is_main:
            repair_jsonl(path)

    def on_step_begin(self, args, state, control, **kwargs):
        """Note when the first training step begins: the end of set-up (model loads, weight hashes, the
        precompute), which ``perf/gpu_train.py`` times from the job's start."""
        if self.first_step_at is None:
            self.first_step_at = time.time()

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if "loss" not in logs or not state.is_world_process_zero:
            return
        now = time.time()
        tokens = logs.pop("num_tokens_batch", None)
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        row["step_s"] = (now - self.t_last) / args.logging_steps  # wall seconds per optimizer step since the last log
        if tokens is not None:  # non-pad tokens (attention mask), summed over ranks
            row["tokens_per_s"] = tokens * args.logging_steps * args.gradient_accumulation_steps / max(1e-9, now - self.t_last)
        self.t_last = now
        append_jsonl(self.path, [row])


class LossProgress(ProgressCallback):
    """transformers' training bar (rank 0, with its ETA) showing the loss, instead of a printed dict per
    step (the full rows are in ``train_log.jsonl``)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and "loss" in (logs or {}):
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)


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


def report_to(method: dict) -> list[str]:
    """The recipe's ``report_to`` trackers (default none) as transformers takes them; a tracker transformers
    does not know, or one that is not installed, is a one-line error naming the key."""
    value = method.get("report_to", "none")
    names = [value] if isinstance(value, str) else list(value)
    if names in ([], ["none"]):
        return []
    if names == ["all"]:
        return names
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, get_available_reporting_integrations

    installed = get_available_reporting_integrations()
    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise ConfigError(f"recipe key 'report_to': unknown tracker '{name}' (transformers knows: "
                              f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))})")
        if name not in installed:
            raise ConfigError(f"recipe key 'report_to': tracker '{name}' is not installed in this environment")
    return names


def model_dtype(method: dict):
    """The dtype models load in: bf16 when the recipe asks for it and a GPU is there, else fp32."""
    import torch

    return torch.bfloat16 if method.get("bf16", False) and torch.cuda.is_available() else torch.float32


def gradient_accumulation(method: dict, processes: int | None = None) -> int:
    """Micro-batches per optimizer step: the recipe's ``gradient_accumulation_steps``, or, with
    ``effective_batch``, as many as give that many pairs per step on ``processes`` (default: this launch's
    ``WORLD_SIZE``), so one recipe keeps the paper's batch of 128 on 8 GPUs or on one."""
    import os

    target = method.get("effective_batch")
    if target is None:
        return method.get("gradient_accumulation_steps", 1)
    if "gradient_accumulation_steps" in method:
        raise ConfigError("recipe keys 'effective_batch' and 'gradient_accumulation_steps': give one (the first sets the second)")
    per_step = method.get("per_device_batch_size", 1) * (processes or int(os.environ.get("WORLD_SIZE", "1")))
    if target % per_step:
        raise ConfigError(f"recipe key 'effective_batch': {target} pairs is not a multiple of per_device_batch_size x "
                          f"processes = {per_step}")
    return target // per_step


def dpo_config(method: dict, checkpoint_dir: Path, live: bool):
    """TRL ``DPOConfig`` from a recipe's method entry (defaults are the paper's where it gives them).

    ``live``: the reference forwards in every step. A loss that reads no reference is always set up as
    "precomputed" (an empty precompute): TRL copies the policy as a live reference otherwise.

    Built before any model is loaded: it sets up the process group and, under DeepSpeed ZeRO-3, makes
    ``from_pretrained`` partition the weights as they load.
    """
    import torch
    from trl import DPOConfig

    on_gpu = torch.cuda.is_available()
    return DPOConfig(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=method.get("per_device_batch_size", 1),
        gradient_accumulation_steps=gradient_accumulation(method),
        learning_rate=method["learning_rate"],
        # a convergence rule's schedule spans all its max_epochs (it may stop at an earlier epoch's end)
        num_train_epochs=(convergence_rule(method) or {}).get("max_epochs", method.get("epochs", 1)),
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
        save_steps=method.get("save_steps", 500),  # a float < 1 is a fraction of the run's steps
        save_total_limit=1,
        report_to=report_to(method),
        precompute_ref_log_probs=not live,
        precompute_ref_batch_size=method.get("precompute_batch_size"),  # None: the per-device batch
        remove_unused_columns=False,  # keep our per-token columns and pair ids for the collator
        disable_dropout=True,
        ddp_find_unused_parameters=False,  # every policy parameter gets a gradient; skip DDP's extra graph walk
        use_cpu=not on_gpu,
        dataloader_num_workers=0,
        disable_tqdm=False,  # rank 0's bar (loss, ETA) goes to stderr, which the rule sends to the job log
    )


def pairs_dataset(prefs_path: str | Path, work_dir: Path, template_kwargs: dict | None = None):
    """The preference pairs as a ``datasets.Dataset`` every rank can open: validated, written once as a
    content-named JSONL under ``work_dir`` by the main process and loaded from that file with a shared
    cache (an in-memory ``Dataset.from_list`` fails under several ranks: its temp Arrow files are per rank).

    ``template_kwargs`` (the recipe's ``chat_template_kwargs``, e.g. Llama-3.2's pinned ``date_string``) go
    into every row's ``chat_template_kwargs`` column, which TRL passes to the chat template as it renders
    the pair: without it the template writes the day the job runs into every training prompt."""
    from accelerate import PartialState
    from datasets import load_dataset


    pairs = load_pairs(prefs_path)
    extra = {"chat_template_kwargs": dict(template_kwargs)} if template_kwargs else {}
    rows = [{"pair_id": p["pair_id"], "prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"], **extra}
            for p in pairs]
    rows_file = work_dir / "pairs" / f"pairs-{content_hash(rows)}.jsonl"
    with PartialState().main_process_first():
        if not rows_file.exists():
            atomic_write_jsonl(rows_file, rows)
        return load_dataset("json", data_files=str(rows_file), split="train", cache_dir=str(work_dir / "pairs" / "cache"))


def default_pad_token(tokenizer, args, model_dir) -> None:
    """Give a tokenizer without a pad token (Llama-3) the one TRL's DPOTrainer would pick (its ``pad_token``
    argument, else EOS), before our collator is built with its id."""
    pad = args.pad_token or tokenizer.pad_token or tokenizer.eos_token
    if pad is None or pad not in tokenizer.get_vocab():
        raise ConfigError(f"{model_dir}: tokenizer has no pad token and no EOS token in its vocabulary to pad with")
    tokenizer.pad_token = pad


def build_trainer(method: dict, base_dir: str | Path, prefs_path: str | Path, checkpoint_dir: str | Path,
                  guide_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                  template_kwargs: dict | None = None):
    """The configured :class:`PreferenceTrainer` for ``method`` (not yet trained) and its tokenizer;
    ``template_kwargs`` are the recipe's pinned chat-template variables (see :func:`pairs_dataset`)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.train.losses import get_loss
    from reproduce.train.trainer import PreferenceTrainer, TokenLogpCollator, check_same_tokenizer

    loss = method["loss"]
    loss_fn = get_loss(loss)
    if method["beta"] <= 0 or method.get("alpha", 0) < 0:
        raise ValueError(f"{loss}: beta must be > 0 and alpha >= 0 (got beta={method['beta']}, alpha={method.get('alpha')})")
    live = method.get("token_rewards", "precomputed") == "live"
    checkpoint_dir = Path(checkpoint_dir)
    args = dpo_config(method, checkpoint_dir, live and loss_fn.needs_reference)
    dataset = pairs_dataset(prefs_path, checkpoint_dir, template_kwargs)

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    tokenizer.padding_side = "left"
    default_pad_token(tokenizer, args, base_dir)
    dtype = model_dtype(method)
    guide = None
    if loss_fn.needs_guide:
        if guide_dir is None:
            raise ValueError(f"{loss} needs a guidance model directory (--guide)")
        guide_tok = AutoTokenizer.from_pretrained(str(guide_dir))
        check_same_tokenizer(tokenizer, guide_tok, str(guide_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype)
    if loss_fn.needs_guide:
        guide = AutoModelForCausalLM.from_pretrained(str(guide_dir), dtype=dtype)
    # a reference copy only when its loss reads one and it forwards live; precomputed, TRL uses the policy
    # before training
    ref = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=dtype) if live and loss_fn.needs_reference else None

    loss_kwargs = {k: method[k] for k in ("alpha", "gamma") if k in method}
    takes = inspect.signature(loss_fn).parameters
    for k in loss_kwargs:
        if k not in takes:
            raise ConfigError(f"recipe key '{k}': loss '{loss}' has no such hyperparameter")
    collator = TokenLogpCollator(pad_token_id=tokenizer.pad_token_id, max_length=args.max_length)
    trainer = PreferenceTrainer(
        model=model, ref_model=ref, args=args, train_dataset=dataset, processing_class=tokenizer,
        data_collator=collator, loss_name=loss, loss_kwargs=loss_kwargs, guide_model=guide,
        token_rewards="live" if live else "precomputed", cache_dir=cache_dir,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LossProgress())
    return trainer, tokenizer


def _peak_gpu_bytes() -> dict | None:
    """This process's peak GPU memory (torch's max allocated and reserved bytes), None without a GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return {"allocated": torch.cuda.max_memory_allocated(), "reserved": torch.cuda.max_memory_reserved()}


def run_steps(trainer) -> int:
    """The optimizer steps the trainer's schedule spans."""
    args = trainer.args
    return total_steps(len(trainer.train_dataset), args.per_device_train_batch_size, trainer.accelerator.num_processes,
                       args.gradient_accumulation_steps, args.num_train_epochs, args.max_steps)


def _check_disk(trainer, method: dict, checkpoint_dir: Path, out_dir: Path, done_steps: int, existing: int,
                step_saves: int = 0) -> dict:
    """Stop before training when the checkpoints or eval-step saves still to come or the final model cannot
    be written (every rank checks its own node's disk); returns the byte figures for the summary."""
    saves = planned_saves(run_steps(trainer), trainer.args.save_steps, done_steps)
    return check_training_disk(model_bytes(trainer.model), saves, existing, checkpoint_dir, out_dir, step_saves)


def train_method(method: dict, base_dir: str | Path, prefs_path: str | Path, out_dir: str | Path,
                 guide_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 checkpoint_dir: str | Path | None = None, threads: int | None = None, log=print,
                 template_kwargs: dict | None = None) -> dict:
    """Train ``method`` and save the policy to ``out_dir``; returns the summary written beside it.

    Runs as one process or as every rank of ``accelerate launch`` (only the main process writes the log,
    the model and the summary). Checkpoints go to ``checkpoint_dir`` (default ``<out_dir>/checkpoints``);
    keep it outside a Snakemake output directory so a failed job's cleanup does not delete them. None is
    written at the final step, and they are deleted once the model is saved unless the recipe sets
    ``keep_checkpoints: true``; a run whose disk cannot hold them or the model stops before training. A
    ``guide: {model, revision}`` recipe entry is fetched here when no ``guide_dir`` is given.
    ``template_kwargs``: the recipe's pinned chat-template variables, applied as TRL renders the pairs.
    """
    import os

    import torch
    from accelerate import PartialState

    from reproduce.train.guide import external_guide_dir

    if threads:  # the job's threads are shared by the ranks on this node
        torch.set_num_threads(max(1, threads // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else out_dir / "checkpoints"
    if guide_dir is None and isinstance(method.get("guide"), dict):
        with PartialState().main_process_first():  # one download per node; the others find it cached
            guide_dir = external_guide_dir(method["guide"], "guide")
    trainer, tokenizer = build_trainer(method, base_dir, prefs_path, checkpoint_dir, guide_dir, cache_dir,
                                       template_kwargs)
    is_main = trainer.is_world_process_zero()
    log_path = out_dir / "train_log.jsonl"
    step_logger = StepLogger(log_path, is_main)
    trainer.add_callback(step_logger)
    # a checkpoint cut short by a kill has no parseable trainer_state.json (written last): never resume from it
    checkpoints = sorted((p for p in checkpoint_dir.glob("checkpoint-*") if _complete_checkpoint(p)),
                         key=lambda p: int(p.name.split("-")[-1]))
    resumed_step = int(checkpoints[-1].name.split("-")[-1]) if checkpoints else 0
    if is_main:
        _truncate_log(log_path, resumed_step)
    wanted = eval_steps(method, run_steps(trainer))
    saver = StepSaver(trainer, tokenizer, wanted, checkpoint_dir)
    todo = [s for s in wanted if not step_saved(step_dir(checkpoint_dir, s))]
    disk = _check_disk(trainer, method, checkpoint_dir, out_dir, resumed_step, len(checkpoints), len(todo))
    trainer.add_callback(NoFinalCheckpoint())
    if wanted:
        trainer.add_callback(saver)
    rule = convergence_rule(method)
    stop = ConvergenceStop(rule) if rule else None
    if stop:
        trainer.add_callback(stop)
    trainer.accelerator.wait_for_everyone()
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if checkpoints else None)
    seconds = time.time() - t0
    trainer.model.eval()
    keep = method.get("keep_checkpoints", False)
    if is_main and not keep and free_bytes(out_dir)[1] < disk["final_model"]:
        # no room for the final model beside the checkpoints: they go first (the model is in memory)
        log(f"{out_dir}: too little room for the final model beside the checkpoints; deleting "
            f"{gib(remove_checkpoints(checkpoint_dir))} of checkpoints first")
    trainer.save_model(str(out_dir))  # the main process writes (gathering a sharded model first)
    trainer.accelerator.wait_for_everyone()
    if is_main and not keep:  # resumable state is only for an unfinished run (``keep_checkpoints: true`` keeps it)
        disk["checkpoints_removed"] = remove_checkpoints(checkpoint_dir)
    summary = {"loss_name": method["loss"], "pairs": len(trainer.train_dataset), "steps": trainer.state.global_step,
               "steps_this_run": trainer.state.global_step - resumed_step, "processes": trainer.accelerator.num_processes,
               "distributed_type": str(trainer.accelerator.distributed_type.value),
               "train_seconds": round(seconds, 2), "final_train_loss": result.training_loss,
               "resumed_from": checkpoints[-1].name if checkpoints else None, "disk_bytes": disk,
               "precompute": trainer.precompute_stats, "peak_gpu_bytes": _peak_gpu_bytes(),
               "eval_steps": {str(s): str(step_dir(checkpoint_dir, s)) for s in wanted},
               "convergence": stop.summary() if stop else None, "first_step_at": step_logger.first_step_at,
               "method": method}
    if is_main:
        tokenizer.save_pretrained(str(out_dir))
        if trainer.token_index is not None:  # which cached log-prob row is which pair (the report's token strips)
            atomic_write_json(out_dir / TOKEN_INDEX, trainer.token_index)
        atomic_write_json(out_dir / "train_summary.json", summary)
        log(json.dumps({k: v for k, v in summary.items() if k != "method"}))
    trainer.accelerator.wait_for_everyone()
    return summary
