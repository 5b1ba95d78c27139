"""The software behind every output: :func:`software` (the package's version, the git commit and whether
the tree was dirty, the versions of the packages that can change a number) is recorded in each resolved
config and score file a stage writes; ``reproduce --version`` prints :func:`version_line`.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
import sys
from pathlib import Path

# Packages whose version can change a number we report (training, decoding, judging, scoring, planning).
TRACKED_PACKAGES = ("torch", "transformers", "trl", "datasets", "accelerate", "vllm", "alpaca-eval", "openai",
                    "snakemake")
# The checkout the package was imported from (None when it is installed, not a git working tree).
_CHECKOUT = Path(__file__).resolve().parents[1]


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state(checkout: Path | None = _CHECKOUT) -> dict:
    """{"commit": sha or None, "dirty": bool or None} of ``checkout``, from one ``git status`` call.

    Dirty means tracked files differ from the commit or untracked (not ignored) files exist: either can
    change what runs. Both are None when the package is not imported from a git working tree or git is
    missing.
    """
    if checkout is None or not (Path(checkout) / ".git").exists():
        return {"commit": None, "dirty": None}
    try:
        out = subprocess.run(["git", "--no-optional-locks", "-C", str(checkout), "status", "--porcelain=v2", "--branch"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": None, "dirty": None}
    if out.returncode != 0:
        return {"commit": None, "dirty": None}
    lines = out.stdout.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    return {"commit": None if commit in (None, "(initial)") else commit,
            "dirty": any(not line.startswith("#") for line in lines)}


@functools.lru_cache(maxsize=1)
def software() -> dict:
    """What this process runs: the package's version, the git state and the tracked packages' versions.

    Computed once per process (one git call). Packages that are not installed are ``None``.
    """
    from reproduce import __version__

    return {"reproduce": __version__, "python": ".".join(map(str, sys.version_info[:3])), "git": git_state(),
            "packages": {name: _version(name) for name in TRACKED_PACKAGES}}


def version_line() -> str:
    """``reproduce --version``: the package version and the git commit (with ``-dirty``) it runs from."""
    sw = software()
    git = sw["git"]
    where = "not a git checkout" if git["commit"] is None else f"git {git['commit'][:12]}{'-dirty' if git['dirty'] else ''}"
    return f"reproduce {sw['reproduce']} ({where})"
