"""The first screen of the HTML report: Table 1 per judge, the paired differences, judge agreement, the
figures, the planning, and the plan/bridge slots, as one JSON-able dict.

Every number comes from a file the workflow wrote (``results/tables/table1*.csv``, ``method_differences.json``,
``judge_agreement.md``, ``power.md``); nothing is recomputed here, so the page shows what the files say.
Table cells are rendered by :func:`reproduce.report.table1.cell_text`, the same text as ``table1.md``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from reproduce.io import DataError
from reproduce.report.html.markdown import md_to_html
from reproduce.config import judge_for
from reproduce.report.table1 import COLUMNS, benchmark_for, cell_text

# Table-1 column -> the per-item metric of the drill-down (AE-LC refits a GLM over all items: no per-item value)
COLUMN_METRIC = {"AE-LC": "AE-WR", "AE-WR": "AE-WR", "AH": "AH", "MT-S": "MT-S", "MT-WR": "MT-WR"}
_INT_KEYS = ("_n_judged", "_n_expected")
_TEXT_KEYS = ("_note", "_reason", "_source")


def _typed(row: dict) -> dict:
    """A csv row with numbers as numbers and booleans as booleans (empty = None), as collect_rows made it."""
    columns = {c[0] for c in COLUMNS}
    out = {}
    for k, v in row.items():
        if v == "":
            out[k] = None
        elif k.endswith("_complete"):
            out[k] = v == "True"
        elif k.endswith(_INT_KEYS):
            out[k] = int(float(v))
        elif k.split("_")[0] in columns and not k.endswith(_TEXT_KEYS):  # a value, CI, SE, paper value or diff
            out[k] = _number(v)
        else:
            out[k] = v
    return out


def _number(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:  # a text field of a column this page does not know (e.g. AE-WR_preference: weighted)
        return v


def table_rows(path: Path, cfg: dict, judge: str) -> list[dict]:
    """Table 1 of ``judge`` from its csv: per row the setting/method keys and, per column, the cell text, the
    value, CI, paper value, completeness, the full reason/provenance and where its items are (benchmark, judge)."""
    if not path.exists():
        raise DataError(f"report html: missing {path} (build it with `reproduce table`)")
    with open(path, newline="") as f:
        rows = [_typed(r) for r in csv.DictReader(f)]
    out = []
    for r in rows:
        cells = {}
        for col, _, protocol, *_ in COLUMNS:
            bench = benchmark_for(cfg, protocol)
            cells[col] = {"text": cell_text(r, col), "value": r.get(col), "ci": [r.get(f"{col}_ci_low"), r.get(f"{col}_ci_high")],
                          "paper": r.get(f"{col}_paper"), "complete": r.get(f"{col}_complete"),
                          "reason": r.get(f"{col}_reason") or "", "source": r.get(f"{col}_source") or "",
                          "metric": COLUMN_METRIC[col], "bench": bench,
                          "judge": judge_for(cfg, bench, judge) if bench else None}
        out.append({"setting": r["setting"], "setting_key": r["setting_key"], "method": r["method"],
                    "method_key": r["method_key"], "cells": cells})
    return out


def _md_file(path: Path) -> str | None:
    return md_to_html(path.read_text()) if path.exists() else None


def _slot(results: Path, name: str, paths: list[Path], command: str) -> dict:
    """A section other stages fill: their files rendered when they exist, else what builds them."""
    found = []
    for p in paths:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if not f.is_file() or (f.suffix == ".json" and f.with_suffix(".md").exists()):
                continue  # a stage's .json beside its .md holds the same numbers for programs; show the .md
            if f.suffix == ".md":
                found.append({"file": str(f.relative_to(results.parent)), "html": md_to_html(f.read_text())})
            elif f.suffix in (".json", ".csv", ".txt") and f.stat().st_size < 200_000:
                found.append({"file": str(f.relative_to(results.parent)), "text": f.read_text()})
            elif f.is_file():
                found.append({"file": str(f.relative_to(results.parent)), "text": None})
    return {"name": name, "files": found, "command": command}


def summary(cfg: dict, results: Path, tables_dir: Path, figures: list[dict]) -> dict:
    """The report's first screen (see the module docstring); ``figures``: ``[{"name", "src", "caption"}]``."""
    results, tables_dir = Path(results), Path(tables_dir)
    judges = [cfg["table_judge"], *[j for j in cfg["judges"] if j != cfg["table_judge"]]]
    tables = {}
    for j in judges:
        stem = "table1" if j == cfg["table_judge"] else f"table1_{j}"
        tables[j] = {"file": str((tables_dir / f"{stem}.csv")), "rows": table_rows(tables_dir / f"{stem}.csv", cfg, j)}
    diffs_path = tables_dir / "method_differences.json"
    differences = json.loads(diffs_path.read_text())["rows"] if diffs_path.exists() else None
    return {
        "preset": cfg["preset"], "table_judge": cfg["table_judge"], "judges": judges,
        "settings": {s: r["label"] for s, r in cfg["settings"].items()},
        "methods": list(cfg["methods"]),
        "benchmarks": {b: {"protocol": bc["protocol"], "version": bc.get("version")} for b, bc in cfg["benchmarks"].items()},
        "columns": [{"key": c[0], "protocol": c[2], "header": c[6]} for c in COLUMNS],
        "tables": tables, "differences": differences,
        "agreement_html": _md_file(tables_dir / "judge_agreement.md"),
        "power_html": _md_file(tables_dir / "power.md"),
        "figures": figures,
        "slots": [_slot(results, "Plan and cost", [results / "plan.json", results / "plan.md"], "reproduce plan"),
                  _slot(results, "Bridge to the authors' files", [results / "bridge"], "reproduce bridge")],
    }
