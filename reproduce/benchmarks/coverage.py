"""How much of a benchmark a score was computed from: every score carries these keys.

``n_expected`` games the protocol asks for, ``n_judged`` of them with a verdict, ``n_failed`` without one,
and ``complete`` (no failed game). A score with ``complete: false`` is never shown as a finished number:
Table 1 marks its cells ``43.9* (804/805)`` and refuses them unless told to accept them.
"""

from __future__ import annotations


def coverage(n_expected: int, n_failed: int) -> dict:
    """``{"n_expected", "n_judged", "n_failed", "complete"}`` for ``n_failed`` failed of ``n_expected`` games."""
    if not 0 <= n_failed <= n_expected:
        raise ValueError(f"coverage: {n_failed} failed of {n_expected} expected games")
    return {"n_expected": int(n_expected), "n_judged": int(n_expected - n_failed), "n_failed": int(n_failed),
            "complete": n_failed == 0}


def cell_coverage(score: dict, key: str) -> tuple[int, int] | None:
    """(judged, expected) behind the number ``score[key]``: the metric's own counts when the protocol
    gives them (``coverage[key]``, e.g. MT-Bench rating vs pairwise games), else the score's; None when the
    score predates these keys."""
    own = (score.get("coverage") or {}).get(key)
    src = own if isinstance(own, dict) else score
    if "n_expected" not in src or "n_judged" not in src:
        return None
    return int(src["n_judged"]), int(src["n_expected"])
