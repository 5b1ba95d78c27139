"""Names that become parts of paths (judge, model, method, setting, preset, benchmark) and paths that must
stay inside their root.

One pattern for every name, checked before any path is built from it: a letter or digit, then letters,
digits, ``.``, ``_``, ``+`` or ``-`` (so ``gpt-4.1``, ``Llama-3-8B-Instruct`` and ``dpo-s43`` pass, and
``..``, ``/`` or an empty name cannot). An environment variable *name* (``api_key_env``) has its own
pattern, the shape such names have by convention (upper case letters, digits and ``_``, at most 64
characters): an API key pasted in its place fails it (keys mix cases and dashes), and a value that fails it
is never echoed.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
ENV_VAR = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


class BadName(ValueError):
    """A name or path that is refused; ``str()`` is one line naming where it came from."""


def check_name(name, where: str, kind: str = "name") -> str:
    """``name`` when it matches :data:`NAME`; else a one-line ``ValueError`` naming ``where`` (a file, key or flag)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        shown = repr(name) if isinstance(name, str) and len(name) <= 80 else f"a {type(name).__name__}"
        raise BadName(f"{where}: {kind} {shown} is not a plain name (letters, digits, '.', '_', '+', '-'; "
                         "starting with a letter or digit; no '/' or '..')")
    return name


def check_env_var_name(value, where: str) -> str | None:
    """``value`` when it names an environment variable (:data:`ENV_VAR`: upper case, digits, ``_``, at most 64
    characters) or is None; anything else is refused without being shown, since a key pasted in place of its
    variable's name must not reach any log."""
    if value is None or (isinstance(value, str) and ENV_VAR.fullmatch(value)):
        return value
    raise BadName(f"{where}: must be the name of an environment variable (upper case letters, digits and '_', at "
                  "most 64 characters, e.g. OPENAI_API_KEY), not the key itself; the value is not shown here - "
                  "remove it from the file and put the key in the environment")


def inside(root: str | Path, path: str | Path, where: str) -> Path:
    """``path`` (relative paths taken from ``root``) when it resolves inside ``root``; else a one-line error."""
    root_r = Path(root).resolve()
    full = (root_r / path).resolve() if not Path(path).is_absolute() else Path(path).resolve()
    if full != root_r and root_r not in full.parents:
        raise BadName(f"{where}: {path} would be written outside {root}")
    return full
