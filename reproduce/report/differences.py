"""Paired method comparisons: is method A better than method B, by how much, beyond prompt and seed noise?

For every setting, benchmark, judge, Table-1 metric and pair of methods (``comparisons`` in the preset,
``"a-b"`` meaning a minus b; default TGDPO−DPO, TGDPO−SimPO, DPO−SFT and TGDPO−control where the preset
has those methods) this module gives the difference of the two methods' scores with

- a **paired bootstrap 95% interval** (percentile method): every round draws the prompts with replacement
  once and scores *both* methods on the same draw, so prompt difficulty cancels. A prompt is the unit of
  resampling: MT-Bench resamples questions, keeping both turns of a question together; Arena-Hard keeps the
  two games of a prompt (and their repeated strong verdicts) together. With several seeds per method (a
  list of per-seed judgment sets), every round also draws each method's seeds with replacement, so the
  interval covers seed and prompt noise together; a method's score is the mean of its seeds' scores.
- a **p-value**: with one seed per method, a two-sided **sign-flip permutation test** over prompts (each
  prompt's two judgments swap methods with probability 1/2; exact enumeration of all 2^n flips when that is
  no more than ``rounds``, else ``rounds`` random flips with the (1 + hits) / (1 + rounds) correction);
  with several seeds, the two-sided **paired-bootstrap p-value** from the same rounds as the interval
  (a per-prompt flip conditions on the trained models, so it would ignore seed noise). The ``p_method``
  column says which one a row holds.

Each method's score is computed per resample exactly as its benchmark's official scoring computes it,
from per-prompt sufficient statistics (a numerator and a denominator per prompt, the score being
``scale * sum(num) / sum(den)``; each protocol module's ``PROMPT_METRICS`` extracts them, and the
statistics themselves are in :mod:`reproduce.report.stats`):

- AlpacaEval 2 win rate: alpaca_eval's ``get_winrate`` = 100 * mean(preference - 1) over judged
  instructions (a preference of 0 is a draw, 1.5; a failed judgment is dropped).
- Arena-Hard v0.1: the Bradley–Terry fit of ``show_result.py`` (unpenalised logistic regression without
  intercept on the battles duplicated once, ties split, strong verdicts counted 3 times). With one model
  against its baseline that likelihood has a closed-form maximum: the model's predicted win rate is
  (weighted wins + ties / 2) / weighted battles, so each resample's fit is that ratio
  (``tests/test_differences.py`` checks it against ``reproduce.benchmarks.arena_hard.score`` and its
  logistic-regression fit). A game without a verdict contributes no battle.
- MT-Bench score: the mean of all valid 1-10 ratings, both turns pooled (FastChat show_result).
- MT-Bench win rate: 100 * wins / (wins + losses + ties) over pairwise turns whose two games both gave a
  verdict; a win needs both orders to name the model.

AlpacaEval's length-controlled win rate refits a GLM per resample and needs ``df_gamed.csv``; it is not
compared here (the md legend says so).

Bad input stops with a one-line ``DataError``/``ConfigError`` naming the key or files, before anything is
written: a comparison naming a method the preset does not have, two methods' judgments on different
prompt sets, fewer than 2 prompts, a score file that disagrees with its judgments.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from reproduce.benchmarks.protocol import PROTOCOLS, get_protocol
from reproduce.config import ConfigError
from reproduce.seed_variants import seed_models
from reproduce.io import DataError, atomic_write_json, atomic_write_text
from reproduce.paths import ResultPaths
from reproduce.report import plotting
from reproduce.report.plotting import EXTRA, color
from reproduce.report.provenance import load_score, read_json
from reproduce.report.stats import DEFAULT_ROUNDS, DEFAULT_SEED, PromptStats, compare, verdict
from reproduce.report.table1 import COLUMNS, PAPER_COLUMN, load_paper_table, method_label

DEFAULT_PAIRS = ("tgdpo-dpo", "tgdpo-simpo", "dpo-sft", "tgdpo-chosen_nll")
FIELDS = ["setting", "setting_label", "benchmark", "metric", "judge", "method_a", "method_b", "diff", "ci_low",
          "ci_high", "p_value", "p_method", "n_prompts", "n_seeds", "n_seeds_a", "n_seeds_b", "score_a", "score_b",
          "paper_diff", "verdict", "finding", "ci_method", "rounds", "rounds_used", "p_sign_flip", "p_bootstrap",
          "var_prompt", "seed_var_a", "seed_var_b", "n_failed_a", "n_failed_b", "judgments_a", "judgments_b"]


# metric (Table-1 column) -> (protocol, per-prompt extractor, scale), from each protocol's PROMPT_METRICS
METRICS = {metric: (protocol, extract, scale) for protocol in PROTOCOLS
           for metric, (extract, scale) in get_protocol(protocol).PROMPT_METRICS.items()}
_SCORE_KEY = {c[0]: c[3] for c in COLUMNS}
_JUDGE_FIELD = {"alpaca_eval2": "annotator", "arena_hard": "judge", "mt_bench": "judge"}


def metrics_for(protocol: str, records: list[dict]) -> list[str]:
    """The metrics of ``protocol`` these records can give (MT-Bench's win rate only with pairwise games)."""
    out = [m for m, (p, _, _) in METRICS.items() if p == protocol]
    if protocol == "mt_bench" and not any(r.get("pairwise") for r in records):
        out.remove("MT-WR")
    return out


def read_records(path: Path, protocol: str) -> list[dict]:
    """Native judgment records of one file, read by the protocol's own reader."""
    return get_protocol(protocol).read_judgments(Path(path), "native")


def prompt_stats(records: list[dict], protocol: str, metric: str, source: str = "judgments") -> PromptStats:
    """Per-prompt numerator/denominator of ``metric`` (see the module docstring) from native records."""
    if metric not in METRICS or METRICS[metric][0] != protocol:
        raise ConfigError(f"metric '{metric}' is not a metric of protocol '{protocol}' "
                          f"(known: {', '.join(m for m, v in METRICS.items() if v[0] == protocol)})")
    _, extract, scale = METRICS[metric]
    ids = [str(r["question_id"]) for r in records]
    if len(set(ids)) != len(ids):
        dup = sorted({q for q in ids if ids.count(q) > 1})[:5]
        raise DataError(f"{source}: question ids occur more than once ({', '.join(dup)})")
    per_prompt, failed, baselines = extract([{**r, "question_id": str(r["question_id"])} for r in records])
    if len(baselines) > 1:
        raise DataError(f"{source}: judged against several baselines {sorted(baselines)}")
    qids = tuple(sorted(per_prompt))
    return PromptStats(question_ids=qids, num=np.array([per_prompt[q][0] for q in qids], dtype=float),
                       den=np.array([per_prompt[q][1] for q in qids], dtype=float), scale=scale, n_failed=failed,
                       source=source, baseline=next(iter(baselines), None))


# ---------------------------------------------------------------- the workflow's results


def resolve_pairs(cfg: dict, pairs: list[str] | None = None) -> list[tuple[str, str]]:
    """The comparisons to make, as (a, b) = a minus b: ``pairs``, else the preset's ``comparisons``, else the
    defaults whose methods the preset has. A named method the preset lacks is a ``ConfigError``."""
    asked = pairs if pairs is not None else cfg.get("comparisons")
    key = "--pairs" if pairs is not None else f"key 'comparisons' ({cfg.get('_file', 'preset')} or --config)"
    if asked is None:
        out = [tuple(p.split("-", 1)) for p in DEFAULT_PAIRS]
        return [(a, b) for a, b in out if a in cfg["methods"] and b in cfg["methods"]]
    out = []
    for p in asked:
        parts = p.split("-") if isinstance(p, str) else []
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"{key}: '{p}' is not a pair 'method_a-method_b' (e.g. tgdpo-dpo)")
        a, b = parts
        for m in (a, b):
            if m not in cfg["methods"]:
                raise ConfigError(f"{key}: '{p}' names method '{m}', which is not in the preset's methods "
                                  f"({', '.join(cfg['methods'])})")
        if a == b:
            raise ConfigError(f"{key}: '{p}' compares a method with itself")
        if (a, b) not in out:
            out.append((a, b))
    return out


def judgment_sets(cfg: dict, results: Path, bench: str, judge: str, setting: str, method: str,
                  all_seeds: bool = False) -> list[tuple[Path, object]]:
    """(judgments file, its score) of one method, one per training seed: the first seed's only, or with
    ``all_seeds`` every seed of the preset's ``seeds`` (``dpo``, ``dpo-s43``, ...). A missing seed is an error.

    Checks each through its score file (``load_score``: judge, benchmark and version must match the cell).
    """
    out = []
    for model in seed_models(cfg, setting, method, all_seeds):
        sc = load_score(results, cfg, bench, judge, setting, model)
        expected = Path(ResultPaths(results).judgments(bench, judge, setting, model))
        if sc is None:
            raise DataError(f"method differences: no score file for {bench} / {judge} / {setting} / {model} "
                            f"(expected {ResultPaths(results).score(bench, judge, setting, model)} beside {expected}); "
                            f"run the judge first (snakemake ... {'reproduce_seeds' if all_seeds else 'all'})")
        path = sc.judgments if sc.judgments is not None else expected
        if not path.exists():
            raise DataError(f"method differences: missing judgments file {path} (named by {sc.path})")
        out.append((path, sc))
    return out


def _load_stats(cfg, results, bench, judge, setting, method, cache, all_seeds=False) -> dict[str, list[PromptStats]]:
    """Per metric, the method's per-seed PromptStats (checked against the score files' own values)."""
    key = (bench, judge, setting, method)
    if key in cache:
        return cache[key]
    protocol = cfg["benchmarks"][bench]["protocol"]
    out: dict[str, list[PromptStats]] = {}
    for path, sc in judgment_sets(cfg, results, bench, judge, setting, method, all_seeds):
        records = read_records(path, protocol)
        wrong = {r.get(_JUDGE_FIELD[protocol]) for r in records} - {judge, None}
        if wrong:
            raise DataError(f"{path}: records judged by {sorted(wrong)}, filed under judge '{judge}'")
        for metric in metrics_for(protocol, records):
            st = prompt_stats(records, protocol, metric, source=str(path))
            ours, theirs = st.score(), sc.get(_SCORE_KEY[metric]) if sc is not None else None
            # a score file that disagrees with its judgments is stale: never report a difference from it
            if ours is not None and theirs is not None and abs(ours - theirs) > 1e-4 * max(1.0, abs(theirs)):
                raise DataError(f"{sc.path}: {_SCORE_KEY[metric]} = {theirs} but its judgments {path} give {ours:.6g}; "
                                "re-score (the score file is stale)")
            out.setdefault(metric, []).append(st)
    cache[key] = out
    return out


def paper_difference(cfg: dict, setting: str, metric: str, a: str, b: str, paper: dict) -> float | None:
    """The paper's Table-1 difference a - b for this setting and metric, when the paper has both cells."""
    rows = paper["rows"].get(cfg["settings"][setting].get("paper_setting") or "", {})
    col = PAPER_COLUMN[metric]
    va, vb = rows.get(a, {}).get(col), rows.get(b, {}).get(col)
    return None if va is None or vb is None else round(va - vb, 4)


def collect_differences(cfg: dict, results: Path, pairs: list[str] | None = None, rounds: int = DEFAULT_ROUNDS,
                        seed: int = DEFAULT_SEED, all_seeds: bool = False) -> list[dict]:
    """One row per (setting, benchmark, metric, judge, pair): the FIELDS of the csv (``all_seeds``: each
    method's every training seed, else the first seed's models)."""
    results = Path(results)
    comparisons = resolve_pairs(cfg, pairs)
    if not comparisons:
        raise ConfigError(f"method differences: no comparison for methods {cfg['methods']} (set 'comparisons', "
                          f"e.g. [{DEFAULT_PAIRS[0]}])")
    paper = load_paper_table()
    cache: dict = {}
    rows = []
    for setting, recipe in cfg["settings"].items():
        for bench in cfg["benchmarks"]:
            for judge in cfg["judges"]:
                for a, b in comparisons:
                    sa = _load_stats(cfg, results, bench, judge, setting, a, cache, all_seeds)
                    sb = _load_stats(cfg, results, bench, judge, setting, b, cache, all_seeds)
                    for metric in sa:
                        if metric not in sb:
                            continue  # e.g. MT-Bench pairwise judged for one method only: no common metric
                        res = compare(sa[metric], sb[metric], rounds, seed)
                        pd_ = paper_difference(cfg, setting, metric, a, b, paper)
                        v, finding = verdict(res["diff"], res["ci_low"], res["ci_high"], pd_)
                        rows.append({
                            "setting": setting, "setting_label": recipe["label"], "benchmark": bench, "metric": metric,
                            "judge": judge, "method_a": a, "method_b": b, **res, "paper_diff": pd_, "verdict": v,
                            "finding": finding.replace("a ahead", f"{a} ahead").replace("b ahead", f"{b} ahead"),
                            "n_seeds": min(res["n_seeds_a"], res["n_seeds_b"]),
                            "n_failed_a": sum(s.n_failed for s in sa[metric]),
                            "n_failed_b": sum(s.n_failed for s in sb[metric]),
                            "judgments_a": "; ".join(s.source for s in sa[metric]),
                            "judgments_b": "; ".join(s.source for s in sb[metric])})
    return [{k: r.get(k) for k in FIELDS} for r in rows]


# ---------------------------------------------------------------- output


def _f(x, nd: int) -> str:
    return "—" if x is None else f"{x:+.{nd}f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


VERDICT_WORDS = {"supported": "supported (CI excludes 0 on the paper's side)",
                 "not resolved": "not resolved (CI contains 0)",
                 "contradicted": "contradicted (CI excludes 0 on the other side)",
                 "no paper claim": "no paper claim"}


def render_markdown(rows: list[dict], cfg: dict) -> str:
    """The comparisons as Markdown, one row per (setting, benchmark, metric, judge, pair)."""
    lines = ["# Method differences (paired)", "",
             "| setting | benchmark | metric | judge | A − B | A − B [95% CI] | p | prompts | seeds | paper A − B | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        nd = 2 if r["metric"] == "MT-S" else 1
        label = lambda m: method_label(cfg, r["setting"], m)  # noqa: E731
        failed = r["n_failed_a"] + r["n_failed_b"]
        note = f" ({failed} verdicts failed, dropped)" if failed else ""
        words = VERDICT_WORDS[r["verdict"]] if r["verdict"] != "no paper claim" else (
            f"{'paper shows no gap' if r['paper_diff'] == 0 else 'no paper claim'}; ours: {r['finding']}")
        lines.append(f"| {r['setting_label']} | {r['benchmark']} | {r['metric']} | {r['judge']} | "
                     f"{label(r['method_a'])} − {label(r['method_b'])} | {_f(r['diff'], nd)} "
                     f"[{_f(r['ci_low'], nd)}, {_f(r['ci_high'], nd)}] | {_p(r['p_value'])} | {r['n_prompts']}{note} | "
                     f"{r['n_seeds']} | {_f(r['paper_diff'], nd)} | {words} |")
    p_methods = sorted({r["p_method"] for r in rows})
    one_seed = all(r["n_seeds"] == 1 for r in rows)
    lines += ["", "A − B: difference of the two methods' scores on the same prompts (win rates in points, MT-Bench "
              "score on its 1-10 scale); each score is computed as its benchmark's official scoring does (Arena-Hard: "
              "the Bradley–Terry win rate against the baseline). CI: paired bootstrap, percentile 95%, "
              f"{rows[0]['rounds'] if rows else '?'} rounds, both methods scored on the same resampled prompts "
              "(MT-Bench: questions, both turns together; Arena-Hard: prompts, both games together)"
              + ("; one training seed per method, so seed-to-seed noise is NOT in these intervals." if one_seed else
                 "; seeds resampled together with the prompts."),
              f"p: {', '.join(p_methods)} (two-sided; method per row in the csv column p_method).",
              "Verdict: the paper's claimed direction (its Table-1 gap, where it has both cells) is supported when "
              "our CI excludes 0 on the paper's side, not resolved when it contains 0, contradicted when it excludes "
              "0 on the other side. AlpacaEval's LC win rate is not compared (its GLM would be refitted per resample "
              "and needs df_gamed.csv); the paper's AE gap is set beside our raw win-rate gap."]
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    """Rows as csv with the FIELDS columns."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def build_differences(cfg: dict, results: Path, out_dir: Path, pairs: list[str] | None = None,
                      rounds: int = DEFAULT_ROUNDS, seed: int = DEFAULT_SEED, log=print,
                      all_seeds: bool = False) -> list[dict]:
    """Compute every comparison, then write ``method_differences.{csv,md,json}`` and the planning
    ``power.{csv,md}`` into ``out_dir`` (nothing is written when any input is bad). ``all_seeds``: over
    every training seed of the preset's ``seeds`` (seeds and prompts resampled together)."""
    from reproduce.report.power import build_power

    rows = collect_differences(cfg, results, pairs, rounds, seed, all_seeds)
    plan_rows, plan_md = build_power(cfg, rows)  # computed before any write: a failure leaves no table
    out_dir = Path(out_dir)
    md = render_markdown(rows, cfg)
    write_csv(rows, out_dir / "method_differences.csv")
    atomic_write_json(out_dir / "method_differences.json", {"rows": rows, "rounds": rounds, "seed": seed})
    atomic_write_text(out_dir / "method_differences.md", md)
    from reproduce.report.power import write_power

    write_power(plan_rows, plan_md, out_dir)
    log(md)
    log(plan_md)
    return rows


def differences_figure(cfg: dict, results: Path, out: Path) -> None:
    """Forest plot: one panel per metric, one line per (setting, pair, judge): the paired difference with its
    95% CI (colored by judge), the paper's claimed gap as a cross, a dashed line at 0."""
    plt = plotting.pyplot()
    src = Path(ResultPaths(results).tables_dir()) / "method_differences.json"
    if not src.exists():
        raise DataError(f"method-differences figure: missing {src} (build it with `reproduce differences`)")
    rows = read_json(src).get("rows") or []
    if not rows:
        raise DataError(f"method-differences figure: {src} holds no comparison")
    metrics = [m for m in METRICS if any(r["metric"] == m for r in rows)]
    judges = list(dict.fromkeys(r["judge"] for r in rows))
    judge_color = {j: color("tgdpo") if k == 0 else EXTRA[k % len(EXTRA)] for k, j in enumerate(judges)}
    several_settings = len({r["setting"] for r in rows}) > 1
    per_panel = max(sum(r["metric"] == m for r in rows) for m in metrics)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 1.2, 0.32 * per_panel + 1.6), squeeze=False)
    headers = {c[0]: c[6] for c in COLUMNS}
    legend_ax = axes[0][0]
    labelled: set[str] = set()

    def once(label: str) -> str | None:
        # the shared legend reads the first panel: label each judge / marker there once
        if label in labelled:
            return None
        labelled.add(label)
        return label

    for j in judges:
        legend_ax.errorbar([], [], fmt="o", color=judge_color[j], label=once(j))
    if any(r.get("paper_diff") is not None for r in rows):
        legend_ax.scatter([], [], marker="x", color="black", label=once("paper's gap"))
    for ax, metric in zip(axes[0], metrics):
        mine = [r for r in rows if r["metric"] == metric]
        labels = []
        for y, r in enumerate(reversed(mine)):
            ax.errorbar(r["diff"], y, xerr=[[r["diff"] - r["ci_low"]], [r["ci_high"] - r["diff"]]], fmt="o",
                        color=judge_color[r["judge"]], markersize=4.5, capsize=2.5)
            if r.get("paper_diff") is not None:
                ax.scatter([r["paper_diff"]], [y], marker="x", s=40, color="black", zorder=4)
            label = (f"{method_label(cfg, r['setting'], r['method_a'])} − {method_label(cfg, r['setting'], r['method_b'])}"
                     f" · {r['judge']}")
            labels.append(f"{r['setting_label']}: {label}" if several_settings else label)
        ax.axvline(0, color="gray", linestyle="--", linewidth=1, zorder=1)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels, fontsize=7.5)
        ax.set_title(f"{headers.get(metric, metric).replace(' [95% CI]', '')}\n{mine[0]['benchmark']}", fontsize=9.5)
        ax.set_xlabel("difference A − B" + (" (1-10 scale)" if metric == "MT-S" else " (points)"), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    one_seed = all(r["n_seeds"] == 1 for r in rows)
    plotting.finish(fig, axes, "Paired method differences A − B, 95% paired-bootstrap CIs"
            + (" (one seed per method: prompt noise only)" if one_seed else " (over seeds and prompts)"), out)
