"""Mid-run checkpoints as model names: a method listing ``eval_steps`` saves its weights at those steps, and
each save is the model ``<method>-step<N>`` (recipe method names hold no '-', so the name never collides
with a method or a seed variant ``<method>-s<seed>``)."""

from __future__ import annotations

import re

STEP_MODEL = re.compile(r"(?P<method>[A-Za-z0-9][A-Za-z0-9._+]*(?:-s\d+)?)-step(?P<step>\d+)")


def step_model(method: str, step: int) -> str:
    """The model name of ``method``'s weights saved at ``step``: ``tgdpo_a1`` -> ``tgdpo_a1-step60``."""
    return f"{method}-step{int(step)}"


def parse_step_model(name: str) -> tuple[str, int] | None:
    """(method, step) of a step model's name, None for any other name."""
    m = STEP_MODEL.fullmatch(name)
    return (m["method"], int(m["step"])) if m else None
