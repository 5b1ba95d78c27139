"""Reading pins files (``name==version`` lines of requirements files and locks), shared by the pin tests."""

from __future__ import annotations

import re
from pathlib import Path


def norm(name: str) -> str:
    """A distribution name in its normalised form (PEP 503): lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """{normalised name: version} of a pins file's ``name==version`` lines (comments, options and a lock's
    trailing line continuation skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;\\]+)", line.strip())
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out
