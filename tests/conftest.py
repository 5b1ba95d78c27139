"""Shared fixtures: a tiny random Llama + ChatML tokenizer built offline, and a few preference pairs."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))


def build_tiny_model(out: Path) -> Path:
    """Save a random-init tiny Llama (head_dim 64) with an offline-trained BPE tokenizer and ChatML template."""
    import torch

    from reproduce.tiny.sft import init_tiny_base
    from reproduce.tiny.task import load_task

    torch.set_num_threads(2)
    _, model = init_tiny_base(load_task("addition"), out, random.Random(0), vocab_size=300, corpus_size=300,
                              hidden_size=64, num_layers=2, head_dim=64)
    model.save_pretrained(str(out))
    return out


def near_miss_pairs(n: int) -> list[dict]:
    """``n`` conversational pairs: the right sum vs one with its last digit off (plus 0-2 extra digits, so
    batches need padding)."""
    from reproduce.tiny.task import load_task

    task = load_task("addition")
    pairs = []
    for i, p in enumerate(task.split("prefs")[:n]):
        right = str(task.solve(p))
        wrong = right[:-1] + str((int(right[-1]) + 1) % 10) + ("9" * (i % 3))
        pairs.append({"pair_id": f"p{i}", "prompt": [{"role": "user", "content": p}],
                      "chosen": [{"role": "assistant", "content": right}],
                      "rejected": [{"role": "assistant", "content": wrong}]})
    return pairs


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved tiny random model and tokenizer (see build_tiny_model)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture()
def pairs_file(tmp_path) -> Path:
    """Sixteen near-miss preference pairs of varied lengths."""
    from reproduce.data.prefs import write_pairs

    path = tmp_path / "prefs.jsonl"
    write_pairs(near_miss_pairs(16), {"pairs": 16}, path)
    return path


def shared_dir(*parts: str) -> Path:
    """A path under ../shared, skipping the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (official benchmark mirror; CI has it beside the repo)")
    return path
