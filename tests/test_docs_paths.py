"""Every repository path that README.md and docs/*.md name in backticks exists in the repository (tracked by
git), so the documentation cannot point at a file that moved or never was. A backticked word counts as a
path when its first component is a tracked top-level file or folder (``reproduce/``, ``config/``, ...).
Exempt: what runs write (``results/``, ``figures/``), environments and caches (``.venv*``, ``.cache/``), and
anything with a placeholder (``<setting>``, ``{csv,md}``); a ``*`` must match at least one tracked path."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXEMPT = ("results/", "figures/", ".venv", ".cache/")
PLACEHOLDER = re.compile(r"[<>{}]|\.\.\.|PATH|NAME")


def tracked() -> set[str]:
    """Tracked files and every folder above them, relative to the root (folders without a trailing /)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout: nothing is tracked")
    out = set(files)
    for f in files:
        parts = f.split("/")
        out.update("/".join(parts[:i]) for i in range(1, len(parts)))
    return out


def named_paths(text: str, top: set[str]) -> list[str]:
    """The backticked words of ``text`` (outside fenced blocks) that name a repository path."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    out = []
    for word in re.findall(r"`([^`\s]+)`", prose):
        first = word.split("/")[0]
        if first in top and (word == first or "/" in word):
            out.append(word)
    return out


def missing(word: str, paths: set[str]) -> bool:
    """Whether ``word`` names nothing tracked (exempt words never do)."""
    if word.startswith(EXEMPT) or PLACEHOLDER.search(word):
        return False
    path = word.rstrip("/")
    if "*" in path:
        return not fnmatch.filter(paths, path)
    return path not in paths


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(page):
    paths = tracked()
    top = {p for p in paths if "/" not in p}
    words = named_paths(page.read_text(), top)
    gone = sorted({w for w in words if missing(w, paths)})
    assert not gone, f"{page.relative_to(ROOT)} names paths the repository does not have: {gone}"


def test_the_check_finds_a_missing_path():
    """A backticked path to no file is reported; placeholders, run outputs and prose words are not."""
    paths, top = {"reproduce", "reproduce/cli.py", "docs", "docs/paper.md"}, {"reproduce", "docs"}
    words = named_paths("see `reproduce/cli.py`, `reproduce/gone.py`, `docs/<page>.md`, `results/x`, `cli.py`, "
                        "`reproduce/*.py` and `docs/*.txt`\n```bash\nls `reproduce/nope`\n```\n", top | {"results"})
    assert words == ["reproduce/cli.py", "reproduce/gone.py", "docs/<page>.md", "results/x", "reproduce/*.py",
                     "docs/*.txt"]
    assert [w for w in words if missing(w, paths)] == ["reproduce/gone.py", "docs/*.txt"]
