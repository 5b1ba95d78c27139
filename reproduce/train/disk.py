"""Disk a training run needs, checked before it starts, and its resumable checkpoints' lifetime.

A resumable checkpoint holds the weights and AdamW's two moments (each the size of the weights: about 3x
the model's bytes, ~48 GB at 8B in bf16). Transformers saves the new checkpoint before it deletes the old
one (``save_total_limit=1``), so from the second save on two exist for a moment. The final model needs its
own bytes once more. The trainer therefore writes no checkpoint at the final step, and deletes its
checkpoints once the final model is saved (``keep_checkpoints: true`` keeps them).
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

from transformers import TrainerCallback

ADAM_MOMENTS = 2  # exp_avg and exp_avg_sq, each the dtype and size of the weights


class InsufficientDiskError(OSError):
    """A run that cannot write what it will need; ``str()`` is one line naming the path and the bytes."""


def gib(n: float) -> str:
    """Bytes as GiB with one decimal (what the error and the notes print)."""
    return f"{n / 2**30:.1f} GiB"


def model_bytes(model) -> int:
    """Bytes of a model's weights as saved: every distinct parameter (tied ones once) at its dtype's size.
    Under ZeRO-3 each rank holds empty placeholders; their full size is ``ds_numel``."""
    seen, total = set(), 0
    for p in model.parameters():
        key = p.data_ptr() if p.numel() else id(p)
        if key in seen:
            continue
        seen.add(key)
        total += getattr(p, "ds_numel", p.numel()) * p.element_size()
    return total


def checkpoint_bytes(weights: int) -> int:
    """Bytes of one resumable checkpoint: the weights plus AdamW's moments (scheduler and RNG states are KBs)."""
    return weights * (1 + ADAM_MOMENTS)


def total_steps(n_pairs: int, batch: int, processes: int, accumulation: int, epochs: float, max_steps: int) -> int:
    """Optimizer steps of a run, as transformers counts them (``max_steps`` > 0 wins)."""
    if max_steps and max_steps > 0:
        return max_steps
    batches = math.ceil(n_pairs / (batch * processes))
    return math.ceil(epochs * max(math.ceil(batches / accumulation), 1))


def planned_saves(total_steps: int, save_steps: float, done_steps: int = 0) -> int:
    """Mid-run checkpoints still to be written after ``done_steps``: every multiple of ``save_steps`` (a
    fraction < 1 is of ``total_steps``, rounded up as transformers does) below the final step."""
    every = math.ceil(save_steps * total_steps) if save_steps < 1 else int(save_steps)
    every = max(every, 1)
    return max(0, (total_steps - 1) // every - done_steps // every)


def free_bytes(path: Path) -> tuple[Path, int]:
    """The nearest existing ancestor of ``path`` (or itself) and the bytes free on its filesystem."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path, shutil.disk_usage(path).free


def _device(path: Path) -> int:
    return os.stat(free_bytes(path)[0]).st_dev


def check_training_disk(weights: int, saves: int, existing: int, checkpoint_dir: Path, out_dir: Path,
                        step_saves: int = 0) -> dict:
    """Raise :class:`InsufficientDiskError` before training when the run's checkpoints or its final model
    cannot fit; returns the figures it checked (bytes).

    ``saves`` mid-run checkpoints are still to come and ``existing`` complete ones are on disk already. The
    checkpoint filesystem needs room for one more checkpoint (two from an empty directory with two or more
    saves: the new one is written before the old is deleted). The final model needs its bytes on the output
    filesystem, where the checkpoints already there count as free when they share it (they can be deleted
    before the final save). ``step_saves`` weights-only saves (``eval_steps``) still to come are kept for
    evaluation, so each needs the weights' bytes on the checkpoint filesystem besides the checkpoints.
    """
    ckpt = checkpoint_bytes(weights)
    extra = ckpt * min(saves, max(0, 2 - existing)) if saves else 0
    needs = {"checkpoints": extra, "final_model": weights, "checkpoint_bytes_each": ckpt,
             "step_saves": weights * step_saves}
    where, free = free_bytes(checkpoint_dir)
    if step_saves and extra + weights * step_saves > free:
        raise InsufficientDiskError(
            f"{checkpoint_dir}: {gib(free)} free on {where}, the run's {step_saves} eval-step saves need "
            f"{gib(weights * step_saves)} ({step_saves} x {gib(weights)}, weights only) besides {gib(extra)} of "
            f"resumable checkpoints; free space, list fewer eval_steps, or point --checkpoints elsewhere")
    if extra > free:
        raise InsufficientDiskError(
            f"{checkpoint_dir}: {gib(free)} free on {where}, the run's resumable checkpoints need {gib(extra)} "
            f"({min(saves, max(0, 2 - existing))} x {gib(ckpt)}: weights + AdamW moments); free space, raise "
            f"save_steps, or point --checkpoints elsewhere")
    out_where, out_free = free_bytes(out_dir)
    # every checkpoint can go before the final save (train_method deletes them first when room is short)
    room = out_free + (ckpt * existing if _device(out_dir) == _device(checkpoint_dir) else 0)
    if weights > room:
        raise InsufficientDiskError(f"{out_dir}: {gib(out_free)} free on {out_where}, the final model needs {gib(weights)}")
    return needs


def check_cache_disk(cache_file: Path, nbytes: int) -> None:
    """Raise :class:`InsufficientDiskError` when the per-token log-prob cache cannot be written (before its
    precompute runs, so no forward pass is wasted)."""
    where, free = free_bytes(cache_file.parent)
    if nbytes > free:
        raise InsufficientDiskError(f"{cache_file.parent}: {gib(free)} free on {where}, the per-token log-prob cache "
                                    f"needs {gib(nbytes)}")


def remove_checkpoints(checkpoint_dir: Path) -> int:
    """Delete the resumable ``checkpoint-*`` directories (the run's final model is saved); returns bytes freed."""
    freed = 0
    for d in Path(checkpoint_dir).glob("checkpoint-*"):
        if d.is_dir():
            freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            shutil.rmtree(d, ignore_errors=True)
    return freed


class NoFinalCheckpoint(TrainerCallback):
    """Cancel transformers' checkpoint at the last step: the final model is saved next, and a resumable
    checkpoint there (~3x the model's bytes) would only ever be deleted."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.max_steps and state.global_step >= state.max_steps:
            control.should_save = False
        return control
