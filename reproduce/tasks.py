"""Tasks: question sources whose answers a program checks (the tiny presets' addition and carry tasks).

A task is named by ``evals/tasks/<name>.yaml``; its ``kind`` names the implementation registered in
:data:`TASK_KINDS`, which builds it from the validated file. The core uses a task only through
:class:`Task`: a benchmark's ``questions.task`` draws its questions from a split, the ``task_demonstrator``
reference answers with :meth:`Task.demonstrate`, the verifier judge checks answers with it, and on-policy
preference pairs are rewarded by it. No core module imports an implementation (they live in
``reproduce/tiny/``, which imports the core); adding a task is one module and one line here.
"""

from __future__ import annotations

import importlib
import random
from pathlib import Path
from typing import Protocol

from reproduce.config import ROOT, ConfigError, load_yaml, validate

# task kind -> "module:function" building the task from its validated file (a dict)
TASK_KINDS = {"addition": "reproduce.tiny.task:task_from_config"}


class Task(Protocol):
    """What the core asks of a task."""

    name: str
    """The task's name (its file's stem); question ids start with it."""

    def split(self, name: str) -> list[str]:
        """The prompts of a split (``eval``, ``prefs``, ``sft``), in a fixed order."""

    def solve(self, prompt: str):
        """The true answer of a prompt."""

    def demonstrate(self, prompt: str, rng: random.Random) -> str:
        """A (noisy) demonstration answer: SFT data and the benchmarks' reference answers."""

    def parse_answer(self, answer: str):
        """The value an answer states, or None."""

    def is_correct(self, prompt: str, answer: str) -> bool:
        """Whether an answer is right."""

    def reward(self, prompt: str, answer: str) -> float:
        """The scalar reward of an answer (on-policy preference pairs pick best and worst by it)."""

    def rating(self, prompt: str, answer: str) -> int:
        """A 1-10 rating (the verifier judge's MT-Bench single grade)."""

    def distance(self, prompt: str, answer: str) -> float:
        """How far an answer is from the truth (the verifier judge's pairwise comparison)."""


def load_task(name: str, root: Path = ROOT) -> Task:
    """Load and validate ``evals/tasks/<name>.yaml`` and build its task."""
    path = root / "evals" / "tasks" / f"{name}.yaml"
    data = validate(load_yaml(path), "task", path)
    if data["kind"] not in TASK_KINDS:
        raise ConfigError(f"{path}: key 'kind': unknown task kind '{data['kind']}' (known: {', '.join(TASK_KINDS)})")
    module, function = TASK_KINDS[data["kind"]].split(":")
    return getattr(importlib.import_module(module), function)(data)
