"""File helpers every stage uses: atomic whole-file writes, crash-safe JSONL, content hashes.

Whole files are written to a temporary sibling and renamed into place, so a killed job never leaves a
half-written file that looks finished. JSONL files are append-only; a torn last line (the process died
mid-write) is detected on read and dropped by ``repair_jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable


class DataError(ValueError):
    """Bad input data; the message names the file and the record or key."""


def make_parent(path: str | Path) -> Path:
    """Create the folder ``path`` will be written in; one that cannot be is a ``DataError`` naming ``path``
    (call it before long work, so a bad output path fails first)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else (e.strerror or str(e))
        raise DataError(f"{path}: cannot be written ({why})") from None
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` via a temp file + rename (readers never see a partial file)."""
    path = make_parent(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            # mkstemp makes the file private (0600); results are read by others (a cluster group, a browser
            # opening report.html served by someone else), like any file a plain open() writes
            os.fchmod(fh.fileno(), 0o644)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any, allow_nan: bool = True) -> Path:
    """Write ``obj`` as pretty JSON atomically; ``allow_nan=False`` (score files) refuses NaN and infinities,
    which are not JSON, before anything is written."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=allow_nan) + "\n"
    return atomic_write_text(path, text)


def atomic_write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write all ``records`` as JSONL atomically (one JSON object per line)."""
    return atomic_write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in records))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a parse error names the file."""
    path = Path(path)
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def _read_text(path: Path) -> str:
    """A file's UTF-8 text; a missing, unreadable or non-UTF-8 file is a ``DataError`` naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a file") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def read_jsonl(path: str | Path, *, allow_torn_tail: bool = False, with_lines: bool = False) -> list:
    """Read a JSONL file. A malformed line raises ``DataError`` naming file and line.

    With ``allow_torn_tail`` a malformed *last* line without a trailing newline (a write cut short by a
    crash) is skipped instead; use it for append-only logs that ``repair_jsonl`` will fix. With
    ``with_lines`` the result is ``(line number, record)`` pairs, for messages that name the line.
    """
    path = Path(path)
    raw = _read_text(path)
    lines = raw.split("\n")
    records = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            is_tail = i == len(lines) and not raw.endswith("\n")
            if allow_torn_tail and is_tail:
                break
            raise DataError(f"{path}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
        records.append((i, rec) if with_lines else rec)
    return records


def repair_jsonl(path: str | Path) -> int:
    """Drop a torn last line of an append-only JSONL file; returns the number of bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    cut = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(cut)
    return len(data) - cut


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append records to a JSONL file, flushed and fsynced so a crash tears at most the last line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, default=_json_default) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def content_hash(obj: Any, length: int = 16) -> str:
    """Stable hash of a JSON-serialisable object (sorted keys), truncated to ``length`` hex chars."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]


def sha256_file(path: str | Path) -> str:
    """Full sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
