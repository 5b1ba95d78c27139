"""Content-addressed, append-only cache of judgments (one JSONL file).

The key hashes everything that determines a verdict: the judge's identity (kind, model, endpoint,
decoding overrides) and the request's payload (the rendered prompt messages with both answers in their
order, the decoding parameters, the structured fields). A regenerated answer therefore misses the cache
instead of silently reusing a stale judgment, and a judge replaced by another never shares entries.

Only successes are stored: a failure (``None`` verdict) is never written, so a rerun asks again.
The file is append-only and fsynced per write; a torn last line (a crash mid-write) is dropped on load.
One writer per file at a time (a Snakemake job owns its cache file).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reproduce.io import append_jsonl, content_hash, read_jsonl, repair_jsonl
from reproduce.judges.base import JudgeReply, JudgeRequest

KEY_LENGTH = 32  # hex chars of sha256: 128 bits, so collisions are not a practical concern


class JudgmentCache:
    """``key -> {"key", "reply", "verdict"}`` backed by an append-only JSONL file at ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._entries: dict[str, dict] = {}
        if self.path.exists():
            repair_jsonl(self.path)
            for rec in read_jsonl(self.path, allow_torn_tail=True):
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
        """Store a successful judgment. A None (or NaN) verdict is a failure and raises ValueError; a key
        already present is left as it is (the first judgment stands)."""
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
