"""The repository's prose speaks of the project (what it is, what it does, what was measured on which
hardware), never of how it was made. The phrases below come from lines that did: who filed a figure, who was
given which machine, who else loaded it, which tool drew the import graph. A bare "session" is fine
(pytest's ``scope="session"``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WHERE = ["README.md", "ARCHITECTURE.md", "docs", "perf", "config", "evals", "reproduce"]
SUFFIXES = {".md", ".py", ".yaml", ".yml", ".smk", ".txt", ".json", ".js", ".html", ".css", ".cfg", ".toml"}
PHRASES = ["session-filed", "filed by a session", "lent to the session", "was lent", "the session that wrote",
           "sessions)", "shared by 8", "other developers", "developers loaded", "farm-studio", "shared cores",
           "shared machine", "the build machine"]
# Patterns for phrasings that vary in their details: a number in the project's own issue tracker, which a reader
# of the repository cannot open.
PATTERNS = [r"\bissue \d+\b"]


def files() -> list[Path]:
    """The text files under WHERE (generated caches excluded)."""
    out = []
    for name in WHERE:
        path = ROOT / name
        found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        out += [p for p in found if p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    return out


def hits(text: str) -> list[str]:
    """The listed phrases and patterns found in ``text`` (case-insensitive)."""
    return ([p for p in PHRASES if re.search(re.escape(p), text, re.I)]
            + [p for p in PATTERNS if re.search(p, text, re.I)])


def test_no_prose_about_how_the_project_was_made():
    found = {str(p.relative_to(ROOT)): hits(p.read_text(errors="replace")) for p in files()}
    found = {k: v for k, v in found.items() if v}
    assert not found, f"prose about how the project was made: {found}"


@pytest.mark.parametrize("line, expected", [
    ("a session-filed H200 run", ["session-filed"]),
    ("no GPU was lent to the session that wrote them", ["lent to the session", "was lent", "the session that wrote"]),
    ("on the 2-core machine shared by 8 sessions", ["shared by 8"]),
    ("while 7 other developers loaded it", ["other developers", "developers loaded"]),
    ("`farm-studio look`: 0 circles", ["farm-studio"]),
    ('@pytest.fixture(scope="session")', []),
    ("`reproduce train`, one process per run (issue 22)", [r"\bissue \d+\b"]),
    ("see the upstream GitHub issues page", []),
])
def test_the_phrases_match_the_lines_they_came_from(line, expected):
    assert hits(line) == expected
