"""Shared fixtures: a tiny random Llama + ChatML tokenizer built offline, and a few preference pairs."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A saved random-init tiny Llama (head_dim 64) with an offline-trained BPE tokenizer and ChatML template."""
    import torch

    from reproduce.tiny.model import build_tiny_llama
    from reproduce.tiny.task import load_task
    from reproduce.tiny.tokenizer import train_tokenizer

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("tiny_model")
    task = load_task("addition")
    rng = random.Random(0)
    corpus = [f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n{task.demonstrate(p, rng)}<|im_end|>\n"
              for p in task.split("sft")[:300]]
    tok = train_tokenizer(corpus, 300, out)
    model = build_tiny_llama(tok, hidden_size=64, num_layers=2, head_dim=64, seed=0)
    model.save_pretrained(str(out))
    return out


@pytest.fixture()
def pairs_file(tmp_path) -> Path:
    """Sixteen conversational preference pairs of varied lengths (so batches need padding)."""
    from reproduce.data.prefs import write_pairs
    from reproduce.tiny.task import load_task

    task = load_task("addition")
    pairs = []
    for i, p in enumerate(task.split("prefs")[:16]):
        right = str(task.solve(p))
        wrong = right[:-1] + str((int(right[-1]) + 1) % 10) + ("9" * (i % 3))
        pairs.append({"pair_id": f"p{i}", "prompt": [{"role": "user", "content": p}],
                      "chosen": [{"role": "assistant", "content": right}],
                      "rejected": [{"role": "assistant", "content": wrong}]})
    path = tmp_path / "prefs.jsonl"
    write_pairs(pairs, {"pairs": len(pairs)}, path)
    return path


def shared_dir(*parts: str) -> Path:
    """A path under ../shared, skipping the test with the reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (official benchmark mirror; CI has it beside the repo)")
    return path
