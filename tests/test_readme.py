"""The README's first two code blocks are the demo and the test command; .ci/run runs the latter."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _blocks() -> list[str]:
    return re.findall(r"```(?:bash)?\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_demo_block_runs_reproduce_table1():
    demo = _blocks()[0]
    assert "snakemake --cores all reproduce_table1" in demo
    assert "scripts/setup.sh" in demo


def test_ci_runs_the_readme_test_command():
    test_cmd = _blocks()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci, f".ci/run must run the README's test command: {test_cmd!r}"
