"""Which model answered: the name each judge reply's ``response.model`` carried, per record and per run.

A judge file pins a dated snapshot where the provider has one, but an endpoint may still answer as another
model (a bare alias such as ``gpt-4o`` moved between snapshots while alpaca_eval users judged with it:
tatsu-lab/alpaca_eval #282). Every judgment record keeps the names its games got; a run (and a score) whose
replies carry more than one name says so, since its verdicts then mix two judges.
"""

from __future__ import annotations

from collections import Counter

FIELD = "response_models"  # the record key: {game: model name the endpoint returned}


def record_models(replies: dict) -> dict[str, str]:
    """``{game: returned model name}`` of one record's replies (games without a reply or a name are left out)."""
    return {g: r.model for g, r in replies.items() if r is not None and getattr(r, "model", None)}


def count_models(records: list[dict]) -> dict[str, int]:
    """How many games each returned model name answered, over ``records`` (most first)."""
    counts = Counter(name for rec in records for name in (rec.get(FIELD) or {}).values())
    return dict(counts.most_common())


def drift_warning(judge: str, counts: dict[str, int], where: str) -> str | None:
    """A one-line warning when the games answered under more than one model name, else None."""
    if len(counts) < 2:
        return None
    names = ", ".join(f"{name!r} ({n} games)" for name, n in counts.items())
    return (f"warning: {where}: judge {judge} answered as {len(counts)} different models: {names} - alias drift: "
            "these verdicts mix judges; pin a dated snapshot in the judge file and rejudge the minority")
