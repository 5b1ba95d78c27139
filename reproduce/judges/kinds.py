"""Judges by kind: the ``kind`` of ``evals/judges/<name>.yaml`` names the class that answers.

Adding a kind of judge is one new module and one line in :data:`JUDGE_KINDS`; ``judges/base.py`` (the
interface) knows none of its implementations.
"""

from __future__ import annotations

import importlib

from reproduce.judges.base import Judge

# judge kind -> "module:class" implementing it
JUDGE_KINDS = {"verifier": "reproduce.judges.verifier:VerifierJudge",
               "openai": "reproduce.judges.openai_judge:OpenAIJudge"}


def make_judge(name: str, config: dict) -> Judge:
    """Build the judge described by ``evals/judges/<name>.yaml`` (already validated)."""
    kind = config["kind"]
    if kind not in JUDGE_KINDS:
        raise ValueError(f"judge '{name}': unknown kind '{kind}'")
    module, cls = JUDGE_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), cls)(name, config)
