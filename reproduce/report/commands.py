"""Report subcommands of the ``reproduce`` command (registered by ``reproduce.cli``).

- ``reproduce table`` / ``reproduce figures``: Table 1 for one judge; every figure the config supports.
- ``reproduce figure --name <figure>``: draw one figure (PNG + PDF).
- ``reproduce agreement``: the judge-agreement report (table judge vs every other judge).
- ``reproduce report``: ``results/report.md`` embedding the tables, the agreement report and the figures.
- ``reproduce differences``: paired method comparisons (``method_differences.*``) and the planning (``power.*``).
- ``reproduce report-html``: ``results/report.html``, Table 1 down to each judge's verdict, opened from disk.
- ``reproduce ablations``: the paper's ablations beside ours (``ablations.*``) and one figure per ablation.
"""

from __future__ import annotations

from pathlib import Path

from reproduce.config import config_from_cli
from reproduce.stage import log as _log


def _cfg(args) -> dict:
    return config_from_cli(args.preset, args.config_json, getattr(args, "methods", None))


def cmd_table(args) -> None:
    """Build Table 1 (csv, md, tex) for one judge from score files."""
    from reproduce.report.table1 import build_table1

    cfg = _cfg(args)
    if args.all_seeds:
        from reproduce.report.seeds import build_seeds_table

        build_seeds_table(cfg, args.judge or cfg["table_judge"], Path(args.results), Path(args.out_dir), log=_log)
        return
    build_table1(cfg, args.judge or cfg["table_judge"], Path(args.results), Path(args.out_dir), log=_log)


def cmd_figures(args) -> None:
    """Draw every figure the config supports (PNG + PDF)."""
    from reproduce.report.figures import draw_figures

    draw_figures(_cfg(args), Path(args.results), Path(args.out_dir), log=_log)


def cmd_figure(args) -> None:
    """Draw one report figure (PNG + PDF)."""
    from reproduce.report.figures import draw_figure

    for p in draw_figure(args.name, _cfg(args), Path(args.results), Path(args.out_dir), judge=args.judge):
        _log(f"wrote {p}")


def cmd_agreement(args) -> None:
    """Judge-agreement report: rank correlations, per-item agreement and score moves between judges."""
    from reproduce.report.agreement import build_agreement

    build_agreement(_cfg(args), Path(args.results), Path(args.out_dir), judges=args.judges, log=_log)


def cmd_report(args) -> None:
    """Write the report (Markdown) embedding every table and figure with provenance."""
    from reproduce.report.report import build_report

    build_report(_cfg(args), Path(args.results), Path(args.tables_dir), Path(args.figures_dir), Path(args.out),
                 figures=args.figures, log=_log, differences=args.differences)


def cmd_report_html(args) -> None:
    """Write the HTML report (results/report.html and results/report_files/): Table 1 down to every verdict."""
    from reproduce.report.html.page import build_html_report

    build_html_report(_cfg(args), Path(args.results), Path(args.tables_dir), Path(args.figures_dir), Path(args.out),
                      figures=args.figures, token_pairs=args.token_pairs, log=_log)


def cmd_differences(args) -> None:
    """Paired method differences with bootstrap CIs and p-values, and the prompts/seeds planning."""
    from reproduce.report.differences import DEFAULT_ROUNDS, DEFAULT_SEED, build_differences

    build_differences(_cfg(args), Path(args.results), Path(args.out_dir), pairs=args.pairs,
                      rounds=DEFAULT_ROUNDS if args.rounds is None else args.rounds,
                      seed=DEFAULT_SEED if args.seed is None else args.seed, log=_log, all_seeds=args.all_seeds)


def cmd_ablations(args) -> None:
    """The paper's ablations (alpha at mid-run checkpoints, guidance quality, convergence) beside ours, with
    paired differences, and one figure per ablation."""
    from reproduce.report.ablations import build_ablations
    from reproduce.report.stats import DEFAULT_ROUNDS

    build_ablations(_cfg(args), Path(args.results), Path(args.out_dir), Path(args.figures_dir),
                    rounds=DEFAULT_ROUNDS if args.rounds is None else args.rounds, log=_log)


def _command(sub, name: str, fn):
    """A report subcommand with the flags every one takes: which config, which results."""
    p = sub.add_parser(name, help=fn.__doc__)
    p.set_defaults(fn=fn)
    p.add_argument("--preset", help="the preset (default: config/default.yaml's)")
    p.add_argument("--config-json", help="the Snakemake config (preset + overrides) as JSON")
    p.add_argument("--methods", nargs="+", help="override the preset's methods (e.g. an alpha sweep)")
    p.add_argument("--results", default="results", help="the results directory to read (default results)")
    return p


def _report_command(sub, name: str, fn):
    """``report`` or ``report-html``: both read the same tables and figures."""
    p = _command(sub, name, fn)
    p.add_argument("--tables-dir", default="results/tables", help="where the tables are (default results/tables)")
    p.add_argument("--figures-dir", default="figures", help="where the figures are (default figures)")
    p.add_argument("--figures", nargs="+", help="figure names to embed (default: all the config supports)")
    return p


def _register_tables_and_figures(sub) -> None:
    from reproduce.report.figures import FIGURES

    t = _command(sub, "table", cmd_table)
    t.add_argument("--judge", help="whose scores (default: the table judge)")
    t.add_argument("--out-dir", default="results/tables", help="where to write the tables (default results/tables)")
    t.add_argument("--all-seeds", action="store_true",
                   help="mean and spread over the preset's training seeds (per-seed rows in the csv)")
    fs = _command(sub, "figures", cmd_figures)
    fs.add_argument("--out-dir", default="figures", help="where to write the PNG and PDF (default figures)")
    f = _command(sub, "figure", cmd_figure)
    f.add_argument("--name", required=True, choices=FIGURES, help="the figure to draw")
    f.add_argument("--judge", help="judge of the scores (default: the table judge)")
    f.add_argument("--out-dir", default="figures", help="where to write the PNG and PDF (default figures)")
    a = _command(sub, "agreement", cmd_agreement)
    a.add_argument("--judges", nargs="+", help="reference judge first (default: table judge, then the others)")
    a.add_argument("--out-dir", default="results/tables", help="where to write the tables (default results/tables)")


def _register_reports(sub) -> None:
    r = _report_command(sub, "report", cmd_report)
    r.add_argument("--out", default="results/report.md", help="the report to write (default results/report.md)")
    r.add_argument("--differences", action="store_true",
                   help="embed method_differences.md and the planning lines of power.md (from --tables-dir)")
    h = _report_command(sub, "report-html", cmd_report_html)
    h.add_argument("--token-pairs", type=int,
                   help="token-reward strips for the first N preference pairs of each setting (default: the preset's "
                        "token_reward_pairs, else all; 0: none)")
    h.add_argument("--out", default="results/report.html",
                   help="the page to write; its assets go to <stem>_files/ beside it (default results/report.html)")


def _register_differences(sub) -> None:
    d = _command(sub, "differences", cmd_differences)
    d.add_argument("--pairs", nargs="+", metavar="A-B",
                   help="comparisons a minus b, e.g. tgdpo-dpo (default: the preset's 'comparisons', else tgdpo-dpo "
                        "tgdpo-simpo dpo-sft and tgdpo-chosen_nll where the preset has those methods)")
    d.add_argument("--rounds", type=int, help="bootstrap rounds and permutation flips (default 2000)")
    d.add_argument("--seed", type=int, help="random seed of the resampling (default 0)")
    d.add_argument("--all-seeds", action="store_true",
                   help="every training seed of the preset's 'seeds' (bootstrap over seeds and prompts)")
    d.add_argument("--out-dir", default="results/tables", help="where to write the tables (default results/tables)")


def _register_ablations(sub) -> None:
    a = _command(sub, "ablations", cmd_ablations)
    a.add_argument("--rounds", type=int, help="bootstrap rounds and permutation flips (default 2000)")
    a.add_argument("--out-dir", default="results/tables", help="where to write the tables (default results/tables)")
    a.add_argument("--figures-dir", default="figures", help="where to write the figures (default figures)")


def register(sub) -> None:
    """Add the report subcommands to the ``reproduce`` argument parser."""
    _register_tables_and_figures(sub)
    _register_reports(sub)
    _register_differences(sub)
    _register_ablations(sub)
