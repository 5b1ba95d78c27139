"""The cost guard, ``judging.max_usd``: a judge job whose planned cost exceeds what remains of the budget
stops before it sends anything, with one line naming the figure and the key.

What was spent lives in a ledger, ``results/judgments/_spend.jsonl`` (the workflow's judge rule passes it):
a job reserves its planned dollars before sending and records what it spent (the replies' ``usage`` at the
judge file's prices) when it ends; a run that never recorded its spending (killed) keeps its reservation,
so the guard errs on the side of spending less. Reserving happens under a file lock, so jobs running at
once never both take the last dollars. Delete the ledger to start a new budget.
"""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from reproduce.io import DataError, append_jsonl, read_jsonl


def money(usd: float) -> str:
    """Dollars, to the cent, or to a hundredth of a cent under a dollar (a small job's plan is not $0.00)."""
    return f"${usd:,.2f}" if abs(usd) >= 1 else f"${usd:.4f}"


@contextmanager
def _locked(ledger: Path):
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def spent(ledger: Path) -> float:
    """Dollars spent or reserved so far: each run's recorded spending, else its reservation."""
    if not ledger.is_file():
        return 0.0
    runs: dict[str, float] = {}
    for rec in read_jsonl(ledger, allow_torn_tail=True):
        run = rec.get("run")
        if "spent_usd" in rec:
            runs[run] = float(rec["spent_usd"])
        elif "reserved_usd" in rec:
            runs.setdefault(run, float(rec["reserved_usd"]))
    return sum(runs.values())


class CostGuard:
    """Reserve a judge job's planned dollars against ``max_usd`` (or refuse), then record what it spent."""

    def __init__(self, max_usd: float | None, ledger: str | Path | None, job: str):
        self.max_usd, self.job = max_usd, job
        self.ledger = Path(ledger) if ledger else None
        self.run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def reserve(self, planned_usd: float, what: str) -> None:
        """Raise :class:`DataError` (one line) when ``planned_usd`` exceeds what remains; else reserve it."""
        if self.max_usd is None or planned_usd <= 0:
            return
        if self.ledger is None:
            if planned_usd > self.max_usd:
                raise DataError(f"judging.max_usd: this job's plan is {money(planned_usd)} ({what}), over "
                                f"judging.max_usd = {money(self.max_usd)}; nothing was sent")
            return
        with _locked(self.ledger):
            used = spent(self.ledger)
            left = self.max_usd - used
            if planned_usd > left:
                raise DataError(f"judging.max_usd: this job's plan is {money(planned_usd)} ({what}) but only "
                                f"{money(max(left, 0))} of judging.max_usd = {money(self.max_usd)} remains "
                                f"({money(used)} spent or reserved in {self.ledger}); nothing was sent")
            append_jsonl(self.ledger, [{"run": self.run, "job": self.job, "reserved_usd": round(planned_usd, 6),
                                        "time": time.time()}])

    def record(self, spent_usd: float) -> None:
        """Replace this run's reservation by what it spent."""
        if self.max_usd is None or self.ledger is None:
            return
        with _locked(self.ledger):
            append_jsonl(self.ledger, [{"run": self.run, "job": self.job, "spent_usd": round(spent_usd, 6),
                                        "time": time.time()}])
