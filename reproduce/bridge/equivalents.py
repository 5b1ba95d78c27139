"""Retired-judge equivalents of the user's own Table 1 (``results/tables/table1*.csv``).

AlpacaEval 2 cells: the cell's own per-item judgments (``results/judgments/<benchmark>/<judge>/<setting>/
<method>.jsonl``, made by the bridge's current judge) go through every validated method of the bridge (the
per-item calibration and the model-level maps, :mod:`reproduce.bridge.methods`); each cell shows the default
method's retired-judge equivalent (with its 95% prediction interval where the panel allows one) and the
others', beside the paper's number. Arena-Hard cells go through the model-level map
(:mod:`reproduce.bridge.arena`). A cell whose judgments are missing, were made by another judge, or are
incomplete (failed or missing games) gets the reason instead of a number; a cell outside the panel's range
of retired win rate or output length is marked.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from reproduce.bridge import calibration as calib
from reproduce.io import DataError


def read_table(path: Path) -> list[dict]:
    """Rows of a Table 1 csv (one-line error when it is not one)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise DataError(f"{path}: Table 1 csv not found (make it with `snakemake reproduce_table1`)") from None
    need = {"setting", "setting_key", "method", "method_key"}
    if rows and not need <= set(rows[0]):
        raise DataError(f"{path}: not a Table 1 csv (lacks {', '.join(sorted(need - set(rows[0])))})")
    return rows


def _num(x) -> float | None:
    try:
        return float(x) if x not in (None, "") else None
    except ValueError:
        return None


def alpaca_cells(table: Path, judgments_dir: Path, judge: str, methods: list, default, n_expected: int = 805) -> dict:
    """Every row's AlpacaEval 2 win-rate cell bridged by every method (see module docstring)."""
    from reproduce.benchmarks.alpaca_eval2 import read_judgments
    from reproduce.bridge.methods import Cell

    cells = []
    for row in read_table(table):
        cell = {"setting": row["setting"], "method": row["method"], "current": _num(row.get("AE-WR")),
                "paper": _num(row.get("AE-WR_paper"))}
        path = Path(judgments_dir) / row["setting_key"] / f"{row['method_key']}.jsonl"
        if row.get("judge") not in (None, "", judge):
            cell["note"] = f"the table's judge is {row['judge']}, not {judge}"
        elif not path.exists():
            cell["note"] = f"no judgments file {path}"
        else:
            recs = read_judgments(path, "native")
            done = [r for r in recs if r["preference"] is not None]
            judges = {r.get("annotator") for r in recs} - {None}
            if judges and judges != {judge}:
                cell["note"] = f"{path} was judged by {', '.join(sorted(judges))}, not {judge}"
            elif len(done) < max(len(recs), n_expected):
                cell["note"] = (f"incomplete: {len(done)} of {max(len(recs), n_expected)} items judged; no bridged "
                                "number for an incomplete cell")
            else:
                prefs = np.array([r["preference"] for r in done])
                c = Cell(100.0 * float(np.mean(prefs - 1)), float(np.mean([len(r["output_2"]) for r in done])),
                         len(done), calib.features(prefs, np.array([len(r["output_2"]) - len(r["output_1"])
                                                                    for r in done])))
                cell["length"] = c.length
                cell["bridged_by"] = {m.name: m.predict(c) for m in methods}
                cell["bridged"] = cell["bridged_by"][default.name]
                if cell["bridged"] and cell["bridged"].get("extrapolated"):
                    cell["note"] = "outside the panel: " + "; ".join(cell["bridged"]["extrapolated"])
        cells.append(cell)
    return {"table": str(table), "judge": judge, "column": "AE-WR", "cells": cells, "default_method": default.name,
            "paper_column_note": "the paper's AE column does not say whether it is LC or raw WR (evals/paper_table1.yaml)"}
