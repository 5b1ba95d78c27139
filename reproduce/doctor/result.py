"""One preflight check's outcome and its printed line."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass
class Check:
    """The outcome of one check: ``status`` is ok, warn (worth reading, not a blocker) or FAIL (a blocker)."""

    status: str
    name: str
    detail: str

    def line(self) -> str:
        """The check as one printed line: status, name, what was found (never a secret's value)."""
        return f"{self.status:<4}  {self.name:<34}  {' '.join(self.detail.split())}"


def blocked(checks: list[Check]) -> bool:
    """Whether any check is a blocker."""
    return any(c.status == FAIL for c in checks)
