"""Table 1: our scores per (setting, method) beside the paper's, with differences and CIs.

Reads ``results/scores/<benchmark>/<judge>/<setting>/<method>.json`` (through
:mod:`reproduce.report.provenance`, which refuses mixed judges or benchmark versions) and
``evals/paper_table1.yaml``. Writes csv (every value, CI, paper value, difference, full reason for an
empty cell and the provenance of each cell), md and tex (short cells, short reasons).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from reproduce.benchmarks.coverage import cell_coverage
from reproduce.config import ROOT, ConfigError, judge_for, load_yaml
from reproduce.io import DataError, atomic_write_text
from reproduce.report.provenance import load_score, missing_reason

METHOD_LABELS = {"sft": "SFT", "dpo": "DPO", "simpo": "SimPO", "tgdpo": "TGDPO", "chosen_nll": "SFT on chosen (control)"}

# (our column, paper column, protocol, score key, CI kind, CI keys, header)
# CI kind: "ci" = [low, high] from the protocol (Arena-Hard bootstrap), "se" = ± standard error (AlpacaEval).
COLUMNS = [
    ("AE-LC", "AE", "alpaca_eval2", "length_controlled_winrate", "se", ("lc_standard_error",), "AlpacaEval 2 LC (%)"),
    ("AE-WR", "AE", "alpaca_eval2", "win_rate", "se", ("standard_error",), "AlpacaEval 2 WR (%)"),
    ("AH", "AH", "arena_hard", "score", "ci", ("ci_low", "ci_high"), "Arena-Hard WR (%) [95% CI]"),
    ("MT-S", "MT-S", "mt_bench", "score", None, (), "MT-Bench score (1-10)"),
    ("MT-WR", "MT-WR", "mt_bench", "win_rate", None, (), "MT-Bench WR (%)"),
]
COLUMN_KEYS = [c[0] for c in COLUMNS]
PAPER_COLUMN = {c[0]: c[1] for c in COLUMNS}  # our column -> the paper's column (evals/paper_table1.yaml)


def method_label(cfg: dict, setting: str, method: str) -> str:
    """Display name of a method; TGDPO variants of an alpha sweep show their alpha."""
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    recipe = cfg["settings"][setting]["methods"].get(method, {})
    if recipe.get("loss") == "tgdpo" and "alpha" in recipe:
        return f"TGDPO (α={recipe['alpha']:g})"
    return method


def load_paper_table(path: Path = ROOT / "evals" / "paper_table1.yaml") -> dict:
    """The paper's Table 1 as ``{"source", "columns", "rows": {setting label: {method: {column: value}}}}``."""
    data = load_yaml(path)
    if not isinstance(data, dict) or "rows" not in data or "source" not in data:
        raise ConfigError(f"{path}: expected keys 'source' and 'rows'")
    return data


def benchmark_for(cfg: dict, protocol: str) -> str | None:
    """The preset's benchmark running ``protocol`` (first one; a preset runs each protocol once)."""
    benches = [b for b, bc in cfg["benchmarks"].items() if bc["protocol"] == protocol]
    return benches[0] if benches else None


def _score_cell(cfg: dict, results: Path, judge: str, routed: bool, setting: str, method: str, protocol: str,
                key: str, ci_kind: str | None, ci_keys: tuple) -> dict:
    """Our side of one Table-1 cell: ``value`` with ``se``/``lo``/``hi``, the games behind it (``judged`` of
    ``expected``), ``source`` (provenance), ``note``/``reason`` when it is empty or incomplete, the ``bench``
    it comes from and the AlpacaEval ``preference`` kind."""
    c = {"bench": benchmark_for(cfg, protocol), "value": None, "se": None, "lo": None, "hi": None, "note": "",
         "reason": "", "source": "", "judged": None, "expected": None, "preference": None}
    bench = c["bench"]
    if bench is None:
        c["note"], c["reason"] = "not in preset", f"no benchmark with protocol {protocol} in preset '{cfg['preset']}'"
        return c
    bjudge = judge_for(cfg, bench, judge) if routed else judge
    sc = load_score(results, cfg, bench, bjudge, setting, method)
    if sc is None:
        c["note"], c["reason"] = missing_reason(results, cfg, bench, bjudge, setting, method)
        return c
    t = sc.trace
    c["source"] = (f"{t['score_file']} | {bench} {t['benchmark_version']} | judge {bjudge} "
                   f"(job {t['judge_config_hash']}) | answers {t['answers_config_hash']} | "
                   f"checkpoint {t['checkpoint']} ({t['checkpoint_config_hash']})")
    c["preference"] = sc.score.get("preference")
    value = c["value"] = sc.get(key)
    judged, expected = c["judged"], c["expected"] = cell_coverage(sc.score, key) or (None, None)
    if value is not None and judged is not None and judged < expected:
        failures = Path(sc.judgments).with_suffix(".failures.json") if sc.judgments else None
        c["reason"] = (f"incomplete: computed from {judged} of {expected} games ({expected - judged} "
                       f"failed{f', listed in {failures}' if failures else ''})")
    if value is None:
        full = sc.score.get(f"{key}_reason") or (
            sc.score.get("length_controlled_reason") if key == "length_controlled_winrate" else None)
        if full and full.startswith("not applicable"):
            c["note"], c["reason"] = "not applicable", full
        elif key == "length_controlled_winrate" and full and full.startswith("length control disabled"):
            c["note"], c["reason"] = "LC disabled", full
        elif key == "length_controlled_winrate":
            c["note"], c["reason"] = "LC files missing", full or "length-controlled win rate not computed"
        else:
            c["note"], c["reason"] = "not scored", full or f"no '{key}' in {sc.path}"
    elif ci_kind == "ci":
        c["lo"], c["hi"] = sc.get(ci_keys[0]), sc.get(ci_keys[1])
    elif ci_kind == "se":
        se = c["se"] = sc.get(ci_keys[0])
        if se is not None:
            c["lo"], c["hi"] = value - 1.96 * se, value + 1.96 * se
    return c


def collect_rows(cfg: dict, judge: str, results: Path, routed: bool = True) -> list[dict]:
    """One row per (setting, method): our value, CI, paper value, difference, reason when empty, provenance.

    ``routed`` (default): cells of benchmarks listed in the preset's ``benchmark_judges`` come from that
    judge when ``judge`` is the table judge; ``routed=False`` reads ``judge``'s own scores everywhere.

    Keys per column ``C``: ``C`` (ours), ``C_ci_low``/``C_ci_high`` (95% interval; for AlpacaEval ±1.96 SE),
    ``C_se``, ``C_paper``, ``C_diff``, ``C_note`` (short), ``C_reason`` (full), ``C_source`` (score file,
    benchmark version, judge and checkpoint config hashes), ``C_n_judged``/``C_n_expected`` (games behind the
    number) and ``C_complete`` (False: computed from fewer games than asked; shown as ``43.9* (804/805)``).
    """
    paper = load_paper_table()
    results = Path(results)
    rows = []
    for setting, recipe in cfg["settings"].items():
        paper_setting = recipe.get("paper_setting")
        paper_rows = paper["rows"].get(paper_setting or "", {})
        if paper_setting and paper_setting not in paper["rows"]:
            raise DataError(f"{recipe['_file']}: paper_setting '{paper_setting}' is not a row group of evals/paper_table1.yaml "
                            f"(known: {', '.join(paper['rows'])})")
        for method in cfg["methods"]:
            row = {"setting": recipe["label"], "setting_key": setting, "method": method_label(cfg, setting, method),
                   "method_key": method, "judge": judge}
            for col, paper_col, protocol, key, ci_kind, ci_keys, _ in COLUMNS:
                c = _score_cell(cfg, results, judge, routed, setting, method, protocol, key, ci_kind, ci_keys)
                bench, value, se, lo, hi = c["bench"], c["value"], c["se"], c["lo"], c["hi"]
                note, reason, source, judged, expected = c["note"], c["reason"], c["source"], c["judged"], c["expected"]
                p = paper_rows.get(method, {}).get(paper_col) if paper_rows else None
                paper_note = ("no paper counterpart (setting not in the paper)" if not paper_rows
                              else "paper reports none" if p is None else "")
                row[col] = _round(value)
                row[f"{col}_se"] = _round(se)
                row[f"{col}_ci_low"] = _round(lo)
                row[f"{col}_ci_high"] = _round(hi)
                row[f"{col}_paper"] = p
                row[f"{col}_diff"] = _round(value - p) if value is not None and p is not None else None
                row[f"{col}_note"] = note
                row[f"{col}_reason"] = "; ".join(x for x in (reason, paper_note) if x)
                row[f"{col}_source"] = source
                if protocol == "alpaca_eval2":  # weighted (log-probs) or discrete verdicts (a judge without them)
                    row[f"{col}_preference"] = c["preference"]
                # the judge behind the paper's number (config 'paper_judges'), when the preset records it
                row[f"{col}_paper_judge"] = (cfg.get("paper_judges") or {}).get(bench) if bench else None
                row[f"{col}_n_judged"], row[f"{col}_n_expected"] = judged, expected
                row[f"{col}_complete"] = None if value is None or judged is None else judged == expected
            rows.append(row)
    return rows


def _round(x, nd: int = 2):
    return None if x is None else round(float(x), nd)


def _num(x: float, nd: int = 1) -> str:
    return f"{x:.{nd}f}"


def cell_text(row: dict, col: str) -> str:
    """One short cell: ``ours ±SE`` or ``ours [lo, hi]``, then ``paper / Δ`` when the paper has one;
    an empty cell is ``— (short reason)``."""
    v, p, d = row.get(col), row.get(f"{col}_paper"), row.get(f"{col}_diff")
    nd = 2 if col == "MT-S" else 1
    pm, delta, dash = "±", "Δ", "—"  # render_latex maps these to LaTeX after escaping
    if v is None:
        return f"{dash} ({row.get(f'{col}_note') or 'n/a'})"
    text = _num(v, nd)
    if row.get(f"{col}_complete") is False:  # fewer games than the benchmark asks for: never a plain number
        text += f"* ({row[f'{col}_n_judged']}/{row[f'{col}_n_expected']})"
    if row.get(f"{col}_se") is not None:
        text += f" {pm}{_num(row[f'{col}_se'], nd)}"
    elif row.get(f"{col}_ci_low") is not None:
        text += f" [{_num(row[f'{col}_ci_low'], nd)}, {_num(row[f'{col}_ci_high'], nd)}]"
    if p is not None:
        text += f" (paper {_num(p, nd)}, {delta} {d:+.{nd}f})"
    elif row.get(f"{col}_reason", "").endswith("paper reports none"):
        text += f" (paper {dash})"
    return text


def _legend(judge: str, source: str, rows: list[dict]) -> list[str]:
    has_paper = any(r.get(f"{c}_paper") is not None for r in rows for c in COLUMN_KEYS)
    lines = ["Columns: " + "; ".join(f"{c[0]} = {c[6]}" for c in COLUMNS) + ".",
             "AlpacaEval cells show ± one standard error; Arena-Hard cells its bootstrap 95% CI; MT-Bench gives none. "
             "The paper's AE column is compared with both LC and raw win rate (which one the paper reports is not known).",
             f"Judge: {judge}. Paper numbers: {source}" + ("" if has_paper else " (no setting of this preset is in the paper)") + ".",
             "Empty cells: '— (reason)'; the full reason and each cell's provenance (score file, benchmark version, "
             "judge job / answers / checkpoint config hashes) are in the csv."]
    incomplete = incomplete_cells(rows)
    if incomplete:
        lines.append(f"INCOMPLETE: {len(incomplete)} value(s) marked '*' (judged/expected games) were computed from "
                     "fewer games than the benchmark asks for (judge games failed): " + "; ".join(incomplete) + ".")
    return lines


def incomplete_cells(rows: list[dict]) -> list[str]:
    """``setting/method/column judged/expected`` of every value computed from fewer games than asked."""
    return [f"{r['setting_key']}/{r['method_key']}/{c} {r[f'{c}_n_judged']}/{r[f'{c}_n_expected']}"
            for r in rows for c in COLUMN_KEYS if r.get(f"{c}_complete") is False]


def render_markdown(rows: list[dict], judge: str, source: str) -> str:
    """The table as Markdown: one row per (setting, method), cells 'ours [CI] (paper, Δ)' or '— (why)'."""
    lines = [f"# Table 1 — judge: {judge}", "",
             "| setting | method | " + " | ".join(COLUMN_KEYS) + " |", "|---|---|" + "---|" * len(COLUMN_KEYS)]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['method']} | " + " | ".join(cell_text(r, c) for c in COLUMN_KEYS) + " |")
    lines += [""] + _legend(judge, source, rows)
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"), ("$", r"\$"),
                 ("α", r"$\alpha$"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("—", "--")):
        s = s.replace(a, b)
    return s


def render_latex(rows: list[dict], judge: str, source: str) -> str:
    """The table as a LaTeX ``table`` (booktabs), settings as row groups; needs \\usepackage{booktabs}."""
    heads = [c[6].replace("%", r"\%") for c in COLUMNS]
    out = [r"% Table 1 (generated by reproduce/report/table1.py; needs \usepackage{booktabs})",
           r"\begin{table*}[t]", r"\centering", r"\small", r"\resizebox{\textwidth}{!}{%",
           r"\begin{tabular}{ll" + "l" * len(COLUMNS) + "}", r"\toprule",
           "Setting & Method & " + " & ".join(heads) + r" \\", r"\midrule"]
    last = None
    for r in rows:
        if last is not None and r["setting"] != last:
            out.append(r"\midrule")
        setting = _tex_escape(r["setting"]) if r["setting"] != last else ""
        last = r["setting"]
        cells = [_tex_escape(cell_text(r, c)) for c in COLUMN_KEYS]
        out.append(f"{setting} & {_tex_escape(r['method'])} & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}}",
            r"\caption{Ours (paper, $\Delta$ = ours $-$ paper). Judge: " + _tex_escape(judge) +
            r". AlpacaEval: $\pm$ standard error; Arena-Hard: bootstrap 95\% CI. Paper: " + _tex_escape(source) + ".}",
            r"\end{table*}"]
    return "\n".join(out) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    """Rows as csv, every key a column (columns in first-seen order)."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _paper_judges_note(cfg: dict, judge: str) -> str:
    """`` (judged by gpt-4-1106-preview: alpaca_eval2, arena_hard; gpt-4: mt_bench - ...)`` when the preset records
    the paper's judges and they differ from this table's: the two columns are then on different judges' scales."""
    paper = cfg.get("paper_judges") or {}
    by: dict[str, list[str]] = {}
    for b, j in paper.items():
        by.setdefault(j, []).append(b)
    if not paper or all(judge_for(cfg, b, judge) == j for b, j in paper.items()):
        return ""
    return (" (judged by " + "; ".join(f"{j}: {', '.join(bs)}" for j, bs in by.items()) + f"; this table's judge is another, "
            "so ours and the paper's differ by judge as well as by run; `reproduce bridge` relates the two judges)")


def build_table1(cfg: dict, judge: str, results: Path, out_dir: Path, log=print, stem: str | None = None) -> list[dict]:
    """Write ``<stem>.csv``, ``.md`` and ``.tex`` (default stem ``table1_<judge>``) into ``out_dir``; returns the rows.

    A value computed from fewer games than asked is marked in all three files; then, unless the config
    says ``accept_incomplete: true``, a ``DataError`` names every such cell (the files are written first).
    """
    if judge not in cfg["judges"]:
        raise ConfigError(f"--judge: '{judge}' is not a judge of preset '{cfg['preset']}' (judges: {', '.join(cfg['judges'])})")
    rows = collect_rows(cfg, judge, results)
    stem = stem or f"table1_{judge}"
    label = judge  # say so when some benchmarks' cells come from their own official judge
    moved = {b: judge_for(cfg, b, judge) for b in cfg["benchmarks"] if judge_for(cfg, b, judge) != judge}
    if moved:
        label += " (" + ", ".join(f"{b}: {j}" for b, j in moved.items()) + ")"
    kinds = {r.get(f"{c}_preference") for r in rows for c in COLUMN_KEYS} - {None, "weighted"}
    if kinds:  # AlpacaEval 2 read from discrete verdicts: not the weighted preference the paper's numbers used
        label += (f" [AlpacaEval 2: {'/'.join(sorted(kinds))} verdicts (judge without log-probs: preference 1 or 2 "
                  "per item, not the weighted preference)]")
    out_dir = Path(out_dir)
    source = load_paper_table()["source"] + _paper_judges_note(cfg, judge)
    write_csv(rows, out_dir / f"{stem}.csv")
    md = render_markdown(rows, label, source)
    atomic_write_text(out_dir / f"{stem}.md", md)
    atomic_write_text(out_dir / f"{stem}.tex", render_latex(rows, label, source))
    missing = [f"{r['setting']}/{r['method']}/{c}: {r[f'{c}_reason']}" for r in rows for c in COLUMN_KEYS
               if r[c] is None and r[f"{c}_note"] in ("not run", "judge unavailable")]
    for m in missing:
        log(f"warning: empty cell {m}")
    log(md)
    incomplete = incomplete_cells(rows)
    if incomplete and not cfg.get("accept_incomplete", False):
        raise DataError(f"{out_dir / stem}.md: {len(incomplete)} incomplete cell(s) (judged/expected games): "
                        f"{'; '.join(incomplete)}. Rerun the judge jobs to ask exactly the failed games "
                        "(snakemake --cores all reproduce_table1 --forcerun judge), or accept them with "
                        "--config accept_incomplete=true")
    return rows
