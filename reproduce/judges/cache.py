"""Content-addressed, append-only cache of judgments: one writer per file, every file of a judge read.

The key hashes everything that determines a verdict: the judge's identity (kind, model, endpoint,
decoding overrides) and the request's payload (the rendered prompt messages with both answers in their
order, the decoding parameters, the structured fields). A regenerated answer therefore misses the cache
instead of silently reusing a stale judgment, and a judge replaced by another never shares entries.

Layout (many judge jobs of one judge run at once, possibly on NFS): each job appends only to its own
file, ``results/judgments/<benchmark>/<judge>/_cache/<setting>/<model>.jsonl``, and looks hits up in
every ``*.jsonl`` under the judge's ``_cache/`` folder (plus a pre-split ``_cache.jsonl`` beside it, read
only). No job ever appends to, truncates or repairs a file another job writes: a torn last line in
another job's file (a write in progress, or a crash) is skipped on read, and only the job's own file is
repaired.

Only successes are stored: a failure (``None`` verdict) is never written, so a rerun asks again.
Every write is flushed and fsynced, so a crash tears at most the last line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reproduce.io import append_jsonl, content_hash, read_jsonl, repair_jsonl
from reproduce.judges.base import JudgeReply, JudgeRequest

KEY_LENGTH = 32  # hex chars of sha256: 128 bits, so collisions are not a practical concern
LEGACY_FILE = "_cache.jsonl"  # the single shared file of earlier versions, beside the _cache/ folder


def cache_files(cache_dir: str | Path) -> list[Path]:
    """Every judgment file of one judge's cache: ``<cache_dir>/**/*.jsonl`` (sorted, so lookups are the same
    in every process) and a legacy ``<cache_dir>.jsonl`` (``_cache.jsonl``) if present."""
    cache_dir = Path(cache_dir)
    files = sorted(cache_dir.rglob("*.jsonl")) if cache_dir.is_dir() else []
    legacy = cache_dir.with_suffix(".jsonl")
    return files + ([legacy] if legacy.is_file() else [])


def writer_file(cache_dir: str | Path, out: str | Path) -> Path:
    """The cache file the job writing judgments ``out`` appends to: ``<cache_dir>/<out relative to the
    judge's folder>`` (``<setting>/<model>.jsonl``), else ``<cache_dir>/<out name>``."""
    cache_dir, out = Path(cache_dir), Path(out)
    try:
        rel = out.resolve().relative_to(cache_dir.resolve().parent)
    except ValueError:
        rel = Path(out.name)
    return cache_dir / rel.with_suffix(".jsonl")


class JudgmentCache:
    """``key -> {"key", "reply", "verdict"}``; new judgments go to ``path`` (this job's own file).

    ``shared_dir``: a judge's cache folder whose every file is read for hits (never written). Without
    it the cache is the one file ``path``.
    """

    def __init__(self, path: str | Path, shared_dir: str | Path | None = None):
        self.path = Path(path)
        self._entries: dict[str, dict] = {}
        if self.path.exists():
            repair_jsonl(self.path)  # our own file only
        others = [f for f in cache_files(shared_dir) if f.resolve() != self.path.resolve()] if shared_dir else []
        # own entries first: a request this job judged keeps this job's verdict
        for file in ([self.path] if self.path.exists() else []) + others:
            for rec in read_jsonl(file, allow_torn_tail=True):
                key = rec.get("key")
                # an entry without a verdict (written by another tool or edited by hand) is no judgment:
                # skip it, so the request is asked again instead of its failure being reused as a result
                if isinstance(key, str) and not _failed(rec.get("verdict")) and isinstance(rec.get("reply"), dict):
                    self._entries.setdefault(key, rec)  # a duplicate key keeps the first entry

    @staticmethod
    def key(judge_identity: dict, request: JudgeRequest) -> str:
        """Content hash of the judge's identity plus the request payload (prompt, answers, order, decoding)."""
        return content_hash({"judge": judge_identity, "request": request.payload()}, length=KEY_LENGTH)

    def get(self, key: str) -> dict | None:
        """The stored entry ``{"key", "reply": JudgeReply dict, "verdict"}``, or None on a miss."""
        return self._entries.get(key)

    def put(self, key: str, reply: JudgeReply, verdict: Any) -> None:
        """Store a successful judgment in this job's file. A None (or NaN) verdict is a failure and raises
        ValueError; a key already present is left as it is (the first judgment stands)."""
        if _failed(verdict):
            raise ValueError(f"{self.path}: refusing to cache a failed judgment (verdict {verdict!r}) for key {key}")
        if key in self._entries:
            return
        rec = {"key": key, "reply": reply.to_dict(), "verdict": verdict}
        append_jsonl(self.path, [rec])
        self._entries[key] = rec

    def __contains__(self, key: str) -> bool:
        """Whether ``key`` has a stored judgment."""
        return key in self._entries

    def __len__(self) -> int:
        """Number of stored judgments."""
        return len(self._entries)


def _failed(verdict: Any) -> bool:
    """None or NaN: what the official tools store for a failed judgment; never a verdict here."""
    return verdict is None or (isinstance(verdict, float) and math.isnan(verdict))
