"""One report file (``results/report.md``): every table and figure, each number traceable.

The report embeds Table 1 for every judge, the judge-agreement report and the figures, and ends with a
provenance table: for every (benchmark, judge, setting, method) the score file, the benchmark version,
the judge job's config hash, the answers' config hash and the checkpoint with its config hash (the
``config_hash`` of the resolved config JSON written beside each output).
"""

from __future__ import annotations

import os
from pathlib import Path

from reproduce.io import DataError, atomic_write_text
from reproduce.report.provenance import load_score, missing_reason, software_section

CAPTIONS = {
    "scores_by_benchmark": "Scores per benchmark metric (table judge), 95% CIs where the protocol gives one.",
    "judge_scatter": "The same answers judged by two judges: each point is a (setting, method) score; the dashed line is y = x.",
    "length_bias": "Win rate against mean answer length (tokens): LLM judges are known to favour longer answers.",
    "training_curves": "Training loss, reward margin and reward accuracy per optimizer step.",
    "token_rewards": "TGDPO's token-level guidance r_t on example preference pairs: which tokens it weights up and down.",
    "alpha_sensitivity": "Scores against TGDPO's α (DPO at α = 0).",
    "method_differences": "Paired differences between methods with 95% paired-bootstrap CIs; crosses: the paper's claimed gaps.",
}


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def _strip_title(md: str) -> str:
    """A table file's Markdown without its own '# ' title (the report gives it a section heading)."""
    return "\n".join(line for line in md.splitlines() if not line.startswith("# ")).strip()


def provenance_rows(cfg: dict, results: Path) -> list[dict]:
    """One row per (benchmark, judge, setting, method): where its numbers come from, or why there are none."""
    rows = []
    for bench, bc in cfg["benchmarks"].items():
        for judge in cfg["judges"]:
            for setting in cfg["settings"]:
                for method in cfg["methods"]:
                    sc = load_score(results, cfg, bench, judge, setting, method)
                    row = {"benchmark": bench, "version": bc.get("version", "?"), "judge": judge, "setting": setting,
                           "method": method}
                    if sc is None:
                        row["missing"] = missing_reason(results, cfg, bench, judge, setting, method)[1]
                    else:
                        row.update(sc.trace)
                    rows.append(row)
    return rows


def _header_lines(cfg: dict, judges: list[str]) -> list[str]:
    """The report's title, config line and the benchmark and judge tables."""
    settings = ", ".join(f"{s} (`{r['_file']}`)" for s, r in cfg["settings"].items())
    lines = [f"# TGDPO reproduction report — preset `{cfg['preset']}`", "",
             f"Config: `{cfg['_file']}`; settings: {settings}; "
             f"methods: {', '.join(cfg['methods'])}.", "",
             "| benchmark | protocol | version | file |", "|---|---|---|---|"]
    for b, bc in cfg["benchmarks"].items():
        lines.append(f"| {b} | {bc['protocol']} | {bc.get('version', '?')} | `{bc.get('_file', '')}` |")
    lines += ["", "| judge | kind | model | file |", "|---|---|---|---|"]
    for j in judges:
        jc = cfg["judges"][j]
        lines.append(f"| {j}{' (table judge)' if j == cfg['table_judge'] else ''} | {jc['kind']}"
                     f"{(' / ' + jc['mode']) if jc.get('mode') else ''} | {jc.get('model', '—')} | `{jc.get('_file', '')}` |")
    lines += ["", "Every number below comes from a score file listed in the provenance table at the end, with its "
              "benchmark version, the judge job's config hash, the answers' config hash and the checkpoint's config hash."]
    return lines


def _provenance_lines(cfg: dict, results: Path, base: Path) -> list[str]:
    """The provenance section: one row per score cell, with its files and config hashes (or why it is missing)."""
    lines = ["", "## Provenance", "",
              "| benchmark | version | judge | setting | method | score file | judge job | answers | checkpoint |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in provenance_rows(cfg, results):
        if "missing" in r:
            lines.append(f"| {r['benchmark']} | {r['version']} | {r['judge']} | {r['setting']} | {r['method']} | "
                         f"— ({r['missing']}) | | | |")
        else:
            lines.append(f"| {r['benchmark']} | {r['version']} | {r['judge']} | {r['setting']} | {r['method']} | "
                         f"`{_rel(r['score_file'], base)}` | {r['judge_config_hash'] or '—'} | "
                         f"{r['answers_config_hash'] or '—'} | `{_rel(r['checkpoint'], base)}` "
                         f"({r['checkpoint_config_hash'] or '—'}) |")
    return lines


def build_report(cfg: dict, results: Path, tables_dir: Path, figures_dir: Path, out: Path,
                 figures: list[str] | None = None, log=print, differences: bool = False) -> str:
    """Write ``out`` (Markdown) from the table files in ``tables_dir`` and the PNGs in ``figures_dir``.

    ``differences``: also embed ``method_differences.md`` and the planning lines of ``power.md`` (as the
    workflow does when the preset has a comparison). Raises ``DataError`` naming the file when a table or
    figure the report embeds is missing.
    """
    from reproduce.report.figures import default_figures

    results, tables_dir, figures_dir, out = Path(results), Path(tables_dir), Path(figures_dir), Path(out)
    base = out.parent
    judges = [cfg["table_judge"], *[j for j in cfg["judges"] if j != cfg["table_judge"]]]
    lines = _header_lines(cfg, judges)
    for j in judges:
        stem = "table1" if j == cfg["table_judge"] else f"table1_{j}"
        md = tables_dir / f"{stem}.md"
        if not md.exists():
            raise DataError(f"report: missing {md} (build it with `reproduce table --judge {j}`)")
        lines += ["", f"## Table 1 — judge: {j}", "",
                  f"Files: [{stem}.csv]({_rel(tables_dir / f'{stem}.csv', base)}), "
                  f"[{stem}.tex]({_rel(tables_dir / f'{stem}.tex', base)}).", "", _strip_title(md.read_text())]
    if len(judges) >= 2:
        agreement = tables_dir / "judge_agreement.md"
        if not agreement.exists():
            raise DataError(f"report: missing {agreement} (build it with `reproduce agreement`)")
        text = _strip_title(agreement.read_text()).replace("\n## ", "\n### ")
        lines += ["", "## Judge agreement", "", text]
    if differences:
        diff_md, power_md = tables_dir / "method_differences.md", tables_dir / "power.md"
        for path in (diff_md, power_md):
            if not path.exists():
                raise DataError(f"report: missing {path} (build it with `reproduce differences`)")
        lines += ["", "## Method differences", "",
                  f"Files: [method_differences.csv]({_rel(tables_dir / 'method_differences.csv', base)}), "
                  f"[power.csv]({_rel(tables_dir / 'power.csv', base)}).", "", _strip_title(diff_md.read_text()),
                  "", "## Planning", "", _strip_title(power_md.read_text())]
    lines += ["", "## Figures"]
    for name in figures or default_figures(cfg):
        png = figures_dir / f"{name}.png"
        if not png.exists():
            raise DataError(f"report: missing figure {png} (build it with `reproduce figure --name {name}`)")
        lines += ["", f"### {name}", "", f"![{CAPTIONS.get(name, name)}]({_rel(png, base)})", "",
                  f"{CAPTIONS.get(name, name)} PDF: [{name}.pdf]({_rel(png.with_suffix('.pdf'), base)})."]
    lines += ["", "## Software", "", "Package versions, git commit and whether the tree was dirty, for the outputs "
              "(from their resolved configs) and for this report.", "", *software_section(results)]
    lines += _provenance_lines(cfg, results, base)
    text = "\n".join(lines) + "\n"
    atomic_write_text(out, text)
    log(f"wrote {out}")
    return text
