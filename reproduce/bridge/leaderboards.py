"""Published AlpacaEval 2 leaderboard csvs as model-level bridge points.

A leaderboard csv (alpaca_eval's ``leaderboards/data_AlpacaEval_2/<annotator>_leaderboard.csv``) has one row
per model: ``win_rate`` (percent, against the reference gpt4_1106_preview), ``avg_length`` (characters of the
model's outputs) and ``n_total`` (pairs judged). A model on both the current annotator's board and the retired
judge's is one point of the model-level map; the reference itself (50% under every judge) is no point.
"""

from __future__ import annotations

import csv
from pathlib import Path

from reproduce.bridge.model_map import Point
from reproduce.io import DataError


def read_board(path: Path) -> dict[str, dict]:
    """model -> {win_rate, avg_length, n_total} of one leaderboard csv (one-line error naming file and row)."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for i, r in enumerate(rows):
        name = r.get("") or r.get("name") or r.get("model")
        try:
            out[name] = {"win_rate": float(r["win_rate"]), "avg_length": float(r["avg_length"]),
                         "n_total": int(float(r.get("n_total") or 805))}
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{path}: row {i + 2} ({name}) is not an AlpacaEval leaderboard row "
                            f"(win_rate, avg_length, n_total): {e}") from None
    return out


def board_points(current: dict[str, dict], retired: dict[str, dict], reference: str) -> list[Point]:
    """Points of the models on both boards (not the reference), in the current board's order."""
    return [Point(m, c["win_rate"], retired[m]["win_rate"], c["avg_length"], c["n_total"])
            for m, c in current.items() if m in retired and m != reference]


def reference_length(boards: list[dict[str, dict]], reference: str) -> float | None:
    """The reference model's average output length, from the first board that lists it."""
    for b in boards:
        if reference in b:
            return b[reference]["avg_length"]
    return None
