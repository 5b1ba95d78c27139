"""Table 1 over training seeds: each trained method's mean over the preset's ``seeds`` with the spread.

The seeds target (``reproduce_seeds``) trains, answers, judges and scores every Table-1 method once per
training seed; seed ``s`` other than the first is the model ``<method>-s<s>`` (``reproduce.config``). This
module reads those score files and writes ``table1_<judge>.{csv,md}`` (under ``results/tables/seeds/``):

- one md row per (setting, method): ``mean ±sd (k seeds)`` per column, where sd is the sample standard
  deviation (ddof 1) of the per-seed scores (the seed-to-seed spread, not a CI of the mean), then the
  paper's value and ``Δ`` = mean − paper where the paper has one. The starting model ("sft") is shared by
  every seed: its cell is the plain Table-1 cell (its own SE / CI).
- the csv holds those rows (``row`` = ``mean over seeds``, with ``C_sd``, ``C_min``, ``C_max``, ``C_n_seeds``)
  and then one row per (setting, method, seed) with every column the plain Table 1 has plus ``seed``/``model``.

A mean computed from fewer seeds than listed, or from a seed whose value used fewer games than asked,
is never shown as complete: it is marked ``55.1* ±0.8 (2/3 seeds)`` or ``(3 seeds, 1 incomplete)``, the
legend names it, and the command exits non-zero after writing unless ``accept_incomplete: true``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from reproduce.config import ConfigError, judge_for
from reproduce.seed_variants import training_seeds
from reproduce.io import DataError, atomic_write_text
from reproduce.report.provenance import load_score
from reproduce.report.table1 import (COLUMN_KEYS, COLUMNS, benchmark_for, cell_text, collect_rows, load_paper_table,
                                     method_label, write_csv)

MEAN_ROW, SEED_ROW = "mean over seeds", "seed"


def seed_count(cfg: dict) -> int:
    """How many training seeds the preset lists (1 without ``seeds``)."""
    return len(cfg.get("seeds") or [None])


def _seed_view(cfg: dict, index: int) -> tuple[dict, dict]:
    """``cfg`` whose Table-1 methods are the models of seed number ``index`` (the shared "sft" only in the
    first), and {model: (method, training seed)}."""
    setting = next(iter(cfg["settings"]))  # seed model names do not depend on the setting
    models = {training_seeds(cfg, setting, m)[index][0]: (m, training_seeds(cfg, setting, m)[index][1])
              for m in cfg["methods"] if m != "sft" or index == 0}
    return {**cfg, "methods": list(models)}, models


def _paper_from_first_seed(row: dict, first: dict) -> None:
    """A later seed's row is looked up in the paper under its model name (``dpo-s43``), which the paper lacks:
    give it the first seed's paper value and difference, and drop the 'paper reports none' it got instead."""
    for c in COLUMN_KEYS:
        p = first.get(f"{c}_paper")
        if p is None:
            continue
        row[f"{c}_paper"] = p
        row[f"{c}_diff"] = None if row[c] is None else round(float(row[c]) - p, 2)
        row[f"{c}_reason"] = "; ".join(x for x in row[f"{c}_reason"].split("; ") if x and x != "paper reports none")


def seed_rows(cfg: dict, judge: str, results: Path) -> list[dict]:
    """Plain Table-1 rows (``table1.collect_rows``) of every method and training seed, with ``seed``,
    ``seed_index`` and ``model``; "sft" once (the shared starting model, seed None)."""
    out, first = [], {}
    for index in range(seed_count(cfg)):
        view, models = _seed_view(cfg, index)
        for row in collect_rows(view, judge, results):
            setting, model = row["setting_key"], row["method_key"]
            method, seed = models[model]
            row.update({"row": SEED_ROW, "method": method_label(cfg, setting, method), "method_key": method,
                        "model": model, "seed": seed, "seed_index": index})
            if index == 0:
                first[(setting, method)] = row
            else:
                _paper_from_first_seed(row, first[(setting, method)])
            out.append(row)
    return out


def _raw_values(cfg: dict, judge: str, results: Path, setting: str, method: str, col: tuple) -> list:
    """The unrounded score of ``col`` of each seed of ``method`` (None where a seed has no score)."""
    _, _, protocol, key, *_ = col
    bench = benchmark_for(cfg, protocol)
    if bench is None:
        return []
    bjudge = judge_for(cfg, bench, judge)
    values = []
    for model, _ in training_seeds(cfg, setting, method):
        sc = load_score(results, cfg, bench, bjudge, setting, model)
        values.append(None if sc is None else sc.get(key))
    return values


def mean_rows(cfg: dict, judge: str, results: Path, per_seed: list[dict]) -> list[dict]:
    """One row per (setting, method): per column the mean and spread over seeds (see the module docstring)."""
    n_listed = seed_count(cfg)
    out = []
    for setting in cfg["settings"]:
        for method in cfg["methods"]:
            rows = [r for r in per_seed if r["setting_key"] == setting and r["method_key"] == method]
            seeds = [r["seed"] for r in rows]
            agg = {"row": MEAN_ROW, "setting": rows[0]["setting"], "setting_key": setting, "method": rows[0]["method"],
                   "method_key": method, "judge": judge, "seeds": " ".join(str(s) for s in seeds if s is not None)}
            for col in COLUMNS:
                c = col[0]
                if method == "sft":  # the shared starting model: its plain cell, no seeds behind it
                    agg.update({k: v for k, v in rows[0].items() if k == c or k.startswith(f"{c}_")})
                    agg[f"{c}_n_seeds"] = None
                    continue
                raw = _raw_values(cfg, judge, results, setting, method, col)
                present = [float(v) for v in raw if v is not None]
                incomplete = sum(r.get(f"{c}_complete") is False for r in rows)
                mean = statistics.fmean(present) if present else None
                p = rows[0].get(f"{c}_paper")
                agg.update({
                    c: None if mean is None else round(mean, 4),
                    f"{c}_sd": round(statistics.stdev(present), 4) if len(present) >= 2 else None,
                    f"{c}_min": min(present) if present else None, f"{c}_max": max(present) if present else None,
                    f"{c}_n_seeds": len(present), f"{c}_n_seeds_expected": n_listed, f"{c}_n_incomplete": incomplete,
                    f"{c}_complete": None if mean is None else (len(present) == n_listed and not incomplete),
                    f"{c}_paper": p, f"{c}_diff": None if mean is None or p is None else round(mean - p, 4),
                    f"{c}_note": rows[0].get(f"{c}_note") if mean is None else "",
                    f"{c}_reason": "; ".join(f"seed {r['seed']}: {r[f'{c}_reason']}" for r in rows if r[f"{c}_reason"]),
                })
            out.append(agg)
    return out


def mean_cell(row: dict, col: str) -> str:
    """``mean ±sd (k seeds)`` then ``(paper p, Δ d)``; ``*`` and ``(k/n seeds)`` when seeds or games are missing."""
    if row["method_key"] == "sft":
        return cell_text(row, col)
    v, n, n_exp = row.get(col), row.get(f"{col}_n_seeds"), row.get(f"{col}_n_seeds_expected")
    nd = 2 if col == "MT-S" else 1
    if v is None:
        return f"— ({row.get(f'{col}_note') or 'n/a'})"
    text = f"{v:.{nd}f}" + ("*" if row.get(f"{col}_complete") is False else "")
    if row.get(f"{col}_sd") is not None:
        text += f" ±{row[f'{col}_sd']:.{nd}f}"
    seeds = f"{n}/{n_exp} seeds" if n != n_exp else f"{n} seed{'s' if n != 1 else ''}"
    if row.get(f"{col}_n_incomplete"):
        seeds += f", {row[f'{col}_n_incomplete']} incomplete"
    text += f" ({seeds})"
    if row.get(f"{col}_paper") is not None:
        text += f" (paper {row[f'{col}_paper']:.{nd}f}, Δ {row[f'{col}_diff']:+.{nd}f})"
    return text


def incomplete_means(rows: list[dict]) -> list[str]:
    """``setting/method/column`` of every mean computed from fewer seeds, or games, than asked."""
    return [f"{r['setting_key']}/{r['method_key']}/{c}" for r in rows for c in COLUMN_KEYS if r.get(f"{c}_complete") is False]


def render_markdown(rows: list[dict], cfg: dict, judge: str) -> str:
    """The seeds table as Markdown, one row per (setting, method), with its legend."""
    seeds = cfg.get("seeds") or []
    lines = [f"# Table 1 over training seeds — judge: {judge}", "",
             "| setting | method | " + " | ".join(COLUMN_KEYS) + " |", "|---|---|" + "---|" * len(COLUMN_KEYS)]
    lines += [f"| {r['setting']} | {r['method']} | " + " | ".join(mean_cell(r, c) for c in COLUMN_KEYS) + " |"
              for r in rows]
    lines += ["", "Columns: " + "; ".join(f"{c[0]} = {c[6]}" for c in COLUMNS) + ".",
              f"Training seeds: {', '.join(map(str, seeds)) if seeds else 'one (the recipe seed)'}. Each cell of a "
              "trained method is the mean over its seeds' scores ± the sample standard deviation between seeds "
              "(ddof 1; the seed-to-seed spread, not a CI), then the paper's value and Δ = mean − paper. "
              "SFT is the shared starting model, not trained per seed: its cell is the plain Table-1 cell. "
              "Per-seed values, their CIs and provenance are the csv rows with row = 'seed'; paired differences "
              "over seeds and prompts are in method_differences.md.",
              f"Judge: {judge}. Paper numbers: {load_paper_table()['source']}."]
    bad = incomplete_means(rows)
    if bad:
        lines.append(f"INCOMPLETE: {len(bad)} mean(s) marked '*' lack seeds or games: {'; '.join(bad)}.")
    return "\n".join(lines) + "\n"


def build_seeds_table(cfg: dict, judge: str, results: Path, out_dir: Path, log=print) -> list[dict]:
    """Write ``table1_<judge>.csv`` (means, then per-seed rows) and ``.md`` into ``out_dir``; returns the mean rows.

    After writing, an incomplete mean is a ``DataError`` naming every such cell unless ``accept_incomplete``.
    """
    if judge not in cfg["judges"]:
        raise ConfigError(f"--judge: '{judge}' is not a judge of preset '{cfg['preset']}' (judges: {', '.join(cfg['judges'])})")
    results, out_dir = Path(results), Path(out_dir)
    per_seed = seed_rows(cfg, judge, results)
    rows = mean_rows(cfg, judge, results, per_seed)
    md = render_markdown(rows, cfg, judge)
    write_csv(rows + per_seed, out_dir / f"table1_{judge}.csv")
    atomic_write_text(out_dir / f"table1_{judge}.md", md)
    log(md)
    bad = incomplete_means(rows)
    if bad and not cfg.get("accept_incomplete", False):
        raise DataError(f"{out_dir / f'table1_{judge}.md'}: {len(bad)} mean(s) lack seeds or games: {'; '.join(bad)}. "
                        "Run the missing seeds (snakemake --cores all reproduce_seeds), or accept them with "
                        "--config accept_incomplete=true")
    return rows
