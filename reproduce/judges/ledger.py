"""The spend ledger: one append-only JSONL file (``results/judgments/_spend.jsonl``) that every billed request
of a results folder passes through - judge jobs, batches, the bridge.

Each request is one entry, keyed by (job, id): a ``reserve`` line just before it is sent (its upper bound in
dollars), then a ``bill`` line once its reply is in (the billed usage; a reply whose usage cannot be read
is billed at its reservation) or a ``release`` line (nothing was billed: an error status, a refused
connection). A bill or release replaces the entry's reservation; a second bill of the same entry is ignored,
so nothing is ever added twice. What is committed = every bill + every open reservation.

Cheap to check: each process keeps the totals in memory and, under the file lock, reads only the lines
appended since its last look (an index over the file, never a reread). Lines are written with one
``write`` each on an ``O_APPEND`` descriptor, so processes sharing the ledger never interleave them.

A killed job leaves its open reservations; its next run (same job) settles them with :meth:`reconcile`:
a request sent and never answered may have been billed, so it is billed at its reservation, the bound the
stand-in and this file agree on. Batch entries (ids ``batch:<nonce>``, the nonce kept in the batch's state
file) are left open: the resumed batch bills them with what its output says.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

BATCH_PREFIX = "batch:"
EPSILON_USD = 1e-9  # sums of many float dollars drift by far less; a request that fits exactly is not refused


class SpendLedger:
    """Totals of one ledger file (``path`` None: in memory, for a job run without a shared ledger)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.billed_usd = 0.0
        self.open: dict[tuple[str, str], tuple[float, str]] = {}  # (job, id) -> (reserved usd, run)
        self.open_usd = 0.0
        self.billed: set[tuple[str, str]] = set()
        self.job_billed: dict[str, float] = {}
        self.tokens = [0, 0]  # billed prompt, completion tokens (all jobs)
        self._offset = 0
        self._mutex = threading.Lock()  # flock does not exclude threads of one process
        self._fd: int | None = None
        self._lock_fd: int | None = None

    # ----- reading -----

    def committed(self) -> float:
        """Dollars billed plus dollars reserved by requests in flight (or killed), as of the last look."""
        return self.billed_usd + self.open_usd

    def look(self) -> float:
        """Catch up with the file (under its lock) and return :meth:`committed`."""
        with self._locked():
            return self.committed()

    def _catch_up(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written (no newline yet) is read next time
        for raw in data[:end].splitlines():
            try:
                rec = json.loads(raw)
            except ValueError:  # a line torn by a crash mid-write: its entry counts as never written
                continue
            if isinstance(rec, dict):
                self._apply(rec)
        self._offset += end

    def _apply(self, rec: dict) -> None:
        kind, job, rid = rec.get("t"), str(rec.get("job")), str(rec.get("id"))
        if kind is None:  # a ledger of the earlier per-job format: spending, or a whole job's reservation
            kind, rid = ("bill", f"run:{rec.get('run')}") if "spent_usd" in rec else ("reserve", f"run:{rec.get('run')}")
            rec = {**rec, "usd": rec.get("spent_usd", rec.get("reserved_usd", 0.0))}
        key = (job, rid)
        if key in self.billed:
            return
        usd = float(rec.get("usd") or 0.0)
        old = self.open.pop(key, None)
        if old is not None:
            # a running sum of floats drifts; with nothing in flight it is exactly zero again
            self.open_usd = self.open_usd - old[0] if self.open else 0.0
        if kind == "reserve":
            self.open[key] = (usd, str(rec.get("run")))
            self.open_usd += usd
        elif kind == "bill":
            self.billed.add(key)
            self.billed_usd += usd
            self.job_billed[job] = self.job_billed.get(job, 0.0) + usd
            self.tokens[0] += int(rec.get("prompt_tokens") or 0)
            self.tokens[1] += int(rec.get("completion_tokens") or 0)

    # ----- writing -----

    @contextmanager
    def _locked(self):
        with self._mutex:
            if self.path is None:
                yield
                return
            if self._lock_fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(self.path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o644)
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                self._catch_up()
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, rec: dict) -> None:
        """Append one line (called under the lock) and apply it to the totals."""
        if self.path is not None:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
            os.write(self._fd, line)
            self._offset += len(line)  # our own line: applied here, not read back
        self._apply(rec)

    def reserve(self, job: str, rid: str, run: str, usd: float, cap: float | None, force: bool = False) -> float | None:
        """Reserve ``usd`` for entry (job, rid) unless that would take the committed total over ``cap``;
        returns None when reserved, else the dollars left under the cap. ``force`` reserves regardless
        (a batch already created: its money is committed whatever the cap says)."""
        with self._locked():
            old = self.open.get((job, rid), (0.0, ""))[0]
            left = (cap - (self.committed() - old)) if cap is not None else None
            if left is not None and usd > left + EPSILON_USD and not force:
                return max(left, 0.0)
            self._write({"t": "reserve", "job": job, "id": rid, "run": run, "usd": usd, "time": round(time.time(), 3)})
            return None

    def bill(self, job: str, rid: str, run: str, usd: float, prompt_tokens: int, completion_tokens: int,
             usage: str = "read") -> bool:
        """Record what entry (job, rid) was billed (replacing its reservation); False if it already was."""
        with self._locked():
            if (job, rid) in self.billed:
                return False
            self._write({"t": "bill", "job": job, "id": rid, "run": run, "usd": usd, "prompt_tokens": prompt_tokens,
                         "completion_tokens": completion_tokens, "usage": usage, "time": round(time.time(), 3)})
            return True

    def release(self, job: str, rid: str, run: str) -> None:
        """Drop entry (job, rid)'s reservation: nothing was billed for it."""
        with self._locked():
            if (job, rid) in self.open:
                self._write({"t": "release", "job": job, "id": rid, "run": run, "time": round(time.time(), 3)})

    def reconcile(self, job: str, run: str) -> tuple[int, float]:
        """Bill, at their reservations, the open entries other runs of ``job`` left (killed mid-request);
        batch entries stay open for the resumed batch. Returns (entries, dollars) settled."""
        with self._locked():
            stale = [(rid, usd) for (j, rid), (usd, r) in self.open.items()
                     if j == job and r != run and not rid.startswith(BATCH_PREFIX)]
            for rid, usd in stale:
                self._write({"t": "bill", "job": job, "id": rid, "run": run, "usd": usd, "prompt_tokens": 0,
                             "completion_tokens": 0, "usage": "reserved (killed run)", "time": round(time.time(), 3)})
            return len(stale), sum(usd for _, usd in stale)

    def open_entry(self, job: str, rid: str) -> float | None:
        """The dollars entry (job, rid) holds reserved, or None (not reserved, or already settled)."""
        with self._locked():
            held = self.open.get((job, rid))
            return held[0] if held else None

    def close(self) -> None:
        """Close the file descriptors."""
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None
