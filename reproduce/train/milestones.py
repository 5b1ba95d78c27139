"""Two things a run can do besides training to its last step: save the policy's weights at chosen steps
(``eval_steps``, each later evaluated as a model of its own, ``<method>-step<N>``), and stop at an epoch's
end once the loss has converged (``max_epochs`` with a ``convergence`` rule).

Step saves are weights only (no optimizer state), written through ``Trainer.save_model`` (under FSDP that
is the full state-dict gather, under ZeRO-3 the 16-bit gather, as for the final model), and kept apart
from the resumable checkpoints (``save_steps``): they live in ``<checkpoint_dir>/eval/step-<N>`` and
survive the checkpoints' deletion. A save is complete once its ``step_summary.json`` (written last) is there,
so a resumed run skips the saves already made.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from transformers import TrainerCallback

from reproduce.config import ConfigError
from reproduce.io import DataError, atomic_write_json
from reproduce.paths import step_save_dir

STEP_SUMMARY = "step_summary.json"
DEFAULT_WINDOW, DEFAULT_TOLERANCE = 20, 0.01


def step_dir(checkpoint_dir: str | Path, step: int) -> Path:
    """Where the weights saved at ``step`` lie (beside, never among, the resumable ``checkpoint-*``)."""
    return step_save_dir(checkpoint_dir, step)


def step_saved(path: Path) -> bool:
    """Whether a step save was completed (its summary, written last, parses)."""
    try:
        json.loads((Path(path) / STEP_SUMMARY).read_text(encoding="utf-8"))
        return True
    except (OSError, ValueError):
        return False


def eval_steps(method: dict, total: int) -> list[int]:
    """The recipe's ``eval_steps``, sorted; a step past the run's last one is a one-line error (its model
    could never be made)."""
    steps = sorted({int(s) for s in method.get("eval_steps") or []})
    late = [s for s in steps if s > total]
    if late:
        raise ConfigError(f"recipe key 'eval_steps': step(s) {late} lie past the run's last step {total}")
    return steps


class StepSaver(TrainerCallback):
    """Save the policy's weights (and tokenizer) at each of ``steps``; every rank calls the save, which
    gathers a sharded model onto the main process."""

    def __init__(self, trainer, tokenizer, steps: list[int], checkpoint_dir: Path):
        self.trainer, self.tokenizer, self.steps, self.root = trainer, tokenizer, set(steps), Path(checkpoint_dir)
        self.saved: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step not in self.steps:
            return control
        out = step_dir(self.root, step)
        if not step_saved(out):
            self.trainer.save_model(str(out))  # weights + config only: no optimizer, scheduler or RNG state
            if state.is_world_process_zero:
                self.tokenizer.save_pretrained(str(out))
                losses = [r["loss"] for r in state.log_history if "loss" in r and r.get("step", 0) <= step]
                atomic_write_json(out / STEP_SUMMARY, {"step": step, "epoch": state.epoch,
                                                       "train_loss_last": losses[-1] if losses else None})
            self.trainer.accelerator.wait_for_everyone()
        self.saved.append(step)
        return control


def convergence_rule(method: dict) -> dict | None:
    """The recipe's stopping rule, or None: ``max_epochs`` epochs at most (the schedule spans them all);
    stop at the end of an epoch whose mean loss over its last ``window`` steps moved by less than
    ``tolerance`` from the previous epoch's."""
    if "max_epochs" not in method:
        if "convergence" in method:
            raise ConfigError("recipe key 'convergence': needs 'max_epochs' (the epochs the schedule spans)")
        return None
    if "epochs" in method or "max_steps" in method:
        raise ConfigError("recipe key 'max_epochs': give it instead of 'epochs' and 'max_steps'")
    rule = dict(method.get("convergence") or {})
    return {"max_epochs": int(method["max_epochs"]), "window": int(rule.get("window", DEFAULT_WINDOW)),
            "tolerance": float(rule.get("tolerance", DEFAULT_TOLERANCE))}


def epoch_means(log_history: list[dict], steps_per_epoch: int, window: int) -> list[float]:
    """Each completed epoch's mean loss over its last ``window`` logged steps (from the trainer's log history,
    which a resumed run restores, so the rule reads the same numbers after a restart)."""
    by_epoch: dict[int, list[tuple[int, float]]] = {}
    for row in log_history:
        if "loss" in row and "step" in row:
            by_epoch.setdefault(math.ceil(row["step"] / steps_per_epoch), []).append((row["step"], row["loss"]))
    last = max(by_epoch) if by_epoch else 0
    means = []
    for e in range(1, last + 1):
        rows = sorted(by_epoch.get(e, []))
        if not rows or rows[-1][0] != e * steps_per_epoch:
            break  # an epoch not finished yet
        tail = [loss for _, loss in rows[-window:]]
        means.append(sum(tail) / len(tail))
    return means


class ConvergenceStop(TrainerCallback):
    """Stop training at an epoch's end when :func:`convergence_rule` fires; ``fired`` records where."""

    def __init__(self, rule: dict):
        self.rule, self.fired, self.means = rule, None, []

    def on_epoch_end(self, args, state, control, **kwargs):
        spe = max(1, state.max_steps // self.rule["max_epochs"])
        self.means = epoch_means(state.log_history, spe, self.rule["window"])
        if len(self.means) >= 2 and abs(self.means[-1] - self.means[-2]) < self.rule["tolerance"] \
                and state.global_step < state.max_steps:
            self.fired = {"step": state.global_step, "epoch": len(self.means),
                          "moved": abs(self.means[-1] - self.means[-2])}
            control.should_training_stop = True
        return control

    def summary(self) -> dict:
        """The rule, each epoch's windowed mean loss, and the step where it fired (None: it ran every epoch)."""
        return {**self.rule, "epoch_means": self.means, "fired": self.fired}


def publish_step(save: str | Path, out: str | Path) -> int:
    """Make the step save ``save`` the model directory ``out``: its files hard-linked (no bytes copied; a
    copy where the two lie on different filesystems). Returns the bytes the model holds. A save that is
    missing or was cut short is a one-line error naming it."""
    import os
    import shutil

    save, out = Path(save), Path(out)
    if not step_saved(save):
        raise DataError(f"{save}: no complete eval-step save (no {STEP_SUMMARY}); retrain the method (delete its "
                        "model directory) so the run saves this step")
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for f in sorted(save.iterdir()):
        if not f.is_file():
            continue
        try:
            os.link(f, out / f.name)
        except OSError:  # another filesystem, or links refused: copy
            shutil.copy2(f, out / f.name)
        total += f.stat().st_size
    return total
