"""Shared fixtures: a tiny random Llama + ChatML tokenizer built offline, a few preference pairs, and the
official files the fidelity tests read (through ``reproduce.official.fetch_file``, as the product reads them)."""

from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

OFFLINE_VAR = "REPRODUCE_OFFLINE_TESTS"  # =1: tests whose official files are not here are not run (counted)
OFFLINE_PREFIX = "offline:"  # the reason of every skip the offline switch causes (counted at the end)


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


def offline_tests() -> bool:
    """Whether the user chose to run without downloads (``REPRODUCE_OFFLINE_TESTS=1``)."""
    return os.environ.get(OFFLINE_VAR, "") == "1"


def official_file(path: str) -> Path:
    """The official file pinned under mirror path ``path`` (a benchmark config or an ``evals/official``
    manifest pins it), from a mirror directory, the cache or its pinned URL, sha256-checked.

    A file that cannot be had fails the test with fetch_file's one-line message; it is skipped only under the
    offline switch (``REPRODUCE_OFFLINE_TESTS=1``), which never downloads."""
    from reproduce.io import DataError
    from reproduce.official import all_specs, fetch_file, find_local

    spec = all_specs().get(path)
    if spec is None:
        raise KeyError(f"{path}: no benchmark config or evals/official manifest pins this file")
    if offline_tests():
        local = find_local(spec)
        if local is None:
            pytest.skip(f"{OFFLINE_PREFIX} official file {path} not in the mirror or cache ({OFFLINE_VAR}=1)")
        return local
    try:
        return fetch_file(spec)
    except DataError as e:
        message = str(e)
    pytest.fail(message, pytrace=False)  # outside the except: the report is the one line, no exception chain


def official_benchmark(*names: str) -> None:
    """Every official file that ``evals/benchmarks/<name>.yaml`` pins, for each name, made present (mirror or
    cache) as :func:`official_file` does: afterwards ``load_questions`` and ``load_templates`` find them."""
    from reproduce.official import benchmark_files

    for name in names:
        for spec in benchmark_files(name).values():
            official_file(spec["path"])


def arena_synthetic_on_real_ids(out: Path) -> Path:
    """tests/data's synthetic Arena-Hard judgments placed on the first real v0.1 question ids, written to
    ``out``: a score covers the benchmark's own questions, so the synthetic q000.. ids would be refused
    (this one is INCOMPLETE, 80 of 500)."""
    import json

    real_ids = [json.loads(line)["uid"] for line in
                official_file("arena_hard_v0.1/question.jsonl").read_text().splitlines() if line.strip()]
    synthetic = ROOT / "tests" / "data" / "arena_hard_synthetic_judgments.jsonl"
    rows = [json.loads(line) for line in synthetic.read_text().splitlines() if line.strip()]
    out.write_text("".join(json.dumps({**r, "question_id": qid}) + "\n" for r, qid in zip(rows, real_ids)))
    return out


@pytest.fixture()
def official():
    """``official(path)``: see :func:`official_file`."""
    return official_file


def pytest_terminal_summary(terminalreporter):
    """Under the offline switch, one line: how many tests did not run for want of official files."""
    skipped = terminalreporter.stats.get("skipped", [])
    offline = [r for r in skipped if OFFLINE_PREFIX in str(getattr(r, "longrepr", ""))]
    if offline_tests():
        terminalreporter.write_line(f"{OFFLINE_VAR}=1: {len(offline)} test(s) not run because their official files "
                                    "are neither in the mirror nor the cache (no downloads in offline mode)")


def pytest_collection_modifyitems(items):
    """The order files are handed out in under ``pytest -n`` (scripts/test.sh passes --no-loadscope-reorder so
    that it holds): the file of cluster tests first, the longest (minutes of SLURM jobs, mostly waiting), so
    that it runs beside the others instead of alone at the end; then the others, most tests first (what
    pytest-xdist does by default). Within a file the order is unchanged."""
    per_file = Counter(item.path for item in items)
    cluster = {item.path for item in items if item.get_closest_marker("slurm")}
    items.sort(key=lambda item: (item.path not in cluster, -per_file[item.path], str(item.path)))  # stable
