"""Table 1: our scores per (setting, method) beside the paper's, with differences and CIs.

Reads ``results/scores/<benchmark>/<judge>/<setting>/<method>.json`` and ``evals/paper_table1.yaml``.
An empty cell always says why (not run, LC files missing, no paper counterpart).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from reproduce.config import ROOT, load_yaml
from reproduce.io import DataError, atomic_write_text

METHOD_LABELS = {"sft": "SFT", "dpo": "DPO", "simpo": "SimPO", "tgdpo": "TGDPO"}

# (our column, paper column, protocol, score key, ci keys)
COLUMNS = [
    ("AE-LC", "AE", "alpaca_eval2", "length_controlled_winrate", None),
    ("AE-WR", "AE", "alpaca_eval2", "win_rate", ("standard_error",)),
    ("AH", "AH", "arena_hard", "score", ("ci_low", "ci_high")),
    ("MT-S", "MT-S", "mt_bench", "score", None),
    ("MT-WR", "MT-WR", "mt_bench", "win_rate", None),
]


def load_paper_table(path: Path = ROOT / "evals" / "paper_table1.yaml") -> dict:
    """The paper's Table 1 as ``{setting label: {method: {column: value}}}`` plus its source."""
    return load_yaml(path)


def collect_rows(cfg: dict, judge: str, results: Path) -> list[dict]:
    """One row per (setting, method) with our values, CIs, the paper's values and notes."""
    paper = load_paper_table()
    rows = []
    for setting, recipe in cfg["settings"].items():
        paper_rows = paper["rows"].get(recipe.get("paper_setting") or "", {})
        for method in cfg["methods"]:
            row = {"setting": recipe["label"], "method": METHOD_LABELS.get(method, method), "judge": judge}
            for col, paper_col, protocol, key, ci in COLUMNS:
                benches = [b for b, bc in cfg["benchmarks"].items() if bc["protocol"] == protocol]
                value, note, extra = None, "", {}
                if not benches:
                    note = "benchmark not in preset"
                for bench in benches[:1]:
                    path = results / "scores" / bench / judge / setting / f"{method}.json"
                    if not path.exists():
                        note = "not run"
                        continue
                    try:
                        score = json.loads(path.read_text())
                    except json.JSONDecodeError:
                        raise DataError(f"{path}: not valid JSON") from None
                    version = cfg["benchmarks"][bench].get("version")
                    value = score.get(key)
                    if value is None:
                        note = score.get("length_controlled_reason") or score.get(f"{key}_reason") or f"no '{key}' in score"
                    if ci:
                        extra = {k: score.get(k) for k in ci}
                    row[f"{col}_source"] = f"{path} ({version})"
                p = paper_rows.get(method, {}).get(paper_col)
                row[col] = _round(value)
                for k, v in extra.items():
                    row[f"{col}_{k}"] = _round(v)
                row[f"{col}_paper"] = p
                row[f"{col}_diff"] = _round(value - p) if value is not None and p is not None else None
                notes = [note] if note else []
                if p is None:
                    notes.append("no paper counterpart" if not paper_rows else "paper reports none")
                row[f"{col}_note"] = "; ".join(notes)
            rows.append(row)
    return rows


def _round(x, nd: int = 2):
    return None if x is None else round(float(x), nd)


def _cell(row: dict, col: str) -> str:
    v, p, d = row.get(col), row.get(f"{col}_paper"), row.get(f"{col}_diff")
    if v is None:
        return f"— ({row.get(f'{col}_note') or 'n/a'})"
    text = f"{v:.1f}"
    if f"{col}_ci_low" in row and row[f"{col}_ci_low"] is not None:
        text += f" [{row[f'{col}_ci_low']:.1f}, {row[f'{col}_ci_high']:.1f}]"
    if f"{col}_standard_error" in row and row[f"{col}_standard_error"] is not None:
        text += f" ±{row[f'{col}_standard_error']:.1f}"
    if p is not None:
        text += f" (paper {p:.1f}, Δ {d:+.1f})"
    return text


def render_markdown(rows: list[dict], judge: str, source: str) -> str:
    """The table as Markdown: each cell 'ours [CI] (paper, Δ)' or '— (why empty)'."""
    cols = [c[0] for c in COLUMNS]
    lines = [f"# Table 1 — judge: {judge}", "",
             "AE-LC / AE-WR: AlpacaEval 2 length-controlled / raw win rate (± standard error); AH: Arena-Hard win rate "
             "[95% CI]; MT-S: MT-Bench score; MT-WR: MT-Bench win rate. The paper's AE column is compared with both "
             "LC and raw (which one the paper reports is not known).", "",
             "| setting | method | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['method']} | " + " | ".join(_cell(r, c) for c in cols) + " |")
    lines += ["", f"Paper numbers: {source}."]
    return "\n".join(lines) + "\n"


def build_table1(cfg: dict, judge: str, results: Path, out_dir: Path, log=print) -> list[dict]:
    """Write ``table1_<judge>.csv`` and ``.md`` into ``out_dir``; returns the rows."""
    rows = collect_rows(cfg, judge, results)
    fields = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_dir / f"table1_{judge}.csv", buf.getvalue())
    md = render_markdown(rows, judge, load_paper_table()["source"])
    atomic_write_text(out_dir / f"table1_{judge}.md", md)
    log(md)
    return rows
