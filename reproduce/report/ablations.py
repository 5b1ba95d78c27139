"""The paper's other results beside ours (``results/tables/ablations.{md,csv,json}``): alpha sensitivity at
mid-run checkpoints, guidance quality, training to loss convergence (the preset's ``ablations``).

Every row is one model of the ablation setting (a step model ``<method>-step<N>`` or a final model) with the
cells Table 1 has for the ablation benchmarks: ours with its interval (AlpacaEval ± SE, Arena-Hard's bootstrap
CI), the paper's number (``evals/paper_ablations.yaml``, matched by what the model is: its alpha and step, its
guide's beta, its loss and training length) and the difference. The paired differences between ablation
variants use the paired bootstrap over prompts and the sign-flip test of ``method_differences``
(:func:`reproduce.report.stats.compare`); "larger alpha converges faster" is the difference of every alpha
against the first at ``compare_step``, "does not collapse" is each method trained to convergence minus its
one-epoch model.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from reproduce.ablation_models import ablation_spec
from reproduce.config import ROOT, ConfigError, judge_for, load_yaml
from reproduce.io import DataError, atomic_write_json, atomic_write_text, read_jsonl
from reproduce.paths import ResultPaths
from reproduce.report.differences import metrics_for, prompt_stats, read_records
from reproduce.report.provenance import load_score, read_json
from reproduce.report.stats import DEFAULT_ROUNDS, DEFAULT_SEED, compare, verdict
from reproduce.report.table1 import COLUMNS, PAPER_COLUMN, _score_cell, cell_text, method_label
from reproduce.step_models import parse_step_model, step_model

FIGURE_NAMES = ("ablation_alpha", "ablation_guidance", "ablation_convergence")
PAIR_FIELDS = ["ablation", "question", "benchmark", "metric", "judge", "model_a", "model_b", "diff", "ci_low",
               "ci_high", "p_value", "p_method", "n_prompts", "score_a", "score_b", "paper_diff", "verdict", "finding"]


def load_paper_ablations(path: Path = ROOT / "evals" / "paper_ablations.yaml") -> dict:
    """The paper's ablation numbers, ``{"source", "setting", "alpha", "guidance", "convergence", ...}``."""
    data = load_yaml(path)
    if not isinstance(data, dict) or not {"source", "setting"} <= set(data):
        raise ConfigError(f"{path}: expected keys 'source' and 'setting'")
    return data


def columns(cfg: dict, spec: dict) -> list[tuple]:
    """Table 1's columns whose benchmark protocol the ablations judge (AlpacaEval 2 LC and WR, Arena-Hard)."""
    protocols = {cfg["benchmarks"][b]["protocol"] for b in spec["benchmarks"]}
    return [c for c in COLUMNS if c[2] in protocols]


def _summary(results: Path, setting: str, method: str) -> dict:
    """A trained method's train_summary.json ({} when absent: a table built before its training ran)."""
    path = Path(ResultPaths(results).model_dir(setting, method)) / "train_summary.json"
    return read_json(path) if path.exists() else {}


def _paper_match(paper: dict, ablation: str, **want) -> dict:
    """The paper's entry of ``ablation`` whose keys equal ``want`` (floats compared rounded), else {}."""
    for entry in paper.get(ablation) or []:
        if all(str(entry.get(k)) == str(v) if not isinstance(v, float) else
               entry.get(k) is not None and abs(float(entry[k]) - v) < 1e-9 for k, v in want.items()):
            return entry
    return {}


def _plan(cfg: dict, spec: dict, results: Path) -> list[tuple[str, str, str, object, dict]]:
    """(ablation, variant label, model, step or "final", want-keys of its paper entry) of every row."""
    recipe = cfg["settings"][spec["setting"]]["methods"]
    rows = []
    for m in spec["alpha"]:
        alpha = float(recipe[m]["alpha"])
        for step in [*sorted(recipe[m]["eval_steps"]), "final"]:
            model = m if step == "final" else step_model(m, step)
            rows.append(("alpha", f"α={alpha:g}", model, step, {"alpha": alpha, "step": step}))
    for m in spec["guidance"]:
        guide = recipe[m]["guide"]
        beta = float(recipe[guide]["beta"])
        rows.append(("guidance", f"guide: {guide} (DPO β={beta:g})", guide, "final", {"guide_beta": beta, "role": "guide"}))
        rows.append(("guidance", f"TGDPO guided by {guide}", m, "final", {"guide_beta": beta, "role": "tgdpo"}))
    for short, long in spec["convergence"].items():
        loss = recipe[short]["loss"]
        rows.append(("convergence", f"{method_label(cfg, spec['setting'], short)}, one epoch", short, "final",
                     {"loss": loss, "trained": "one_epoch"}))
        rows.append(("convergence", f"{method_label(cfg, spec['setting'], short)}, to convergence", long, "final",
                     {"loss": loss, "trained": "converged"}))
    return rows


def collect_rows(cfg: dict, results: Path, judge: str | None = None) -> list[dict]:
    """One row per ablation model: Table-1 cells (ours, interval, paper, Δ) for the ablation benchmarks,
    the step it was saved at, the steps its run trained and, for a converged run, where its rule fired."""
    spec = ablation_spec(cfg)
    if not spec:
        raise ConfigError(f"{cfg.get('_file', 'preset')}: no key 'ablations' (see docs/ablations.md)")
    judge = judge or cfg["table_judge"]
    results, setting = Path(results), spec["setting"]
    paper = load_paper_ablations()
    use_paper = cfg["settings"][setting].get("paper_setting") == paper["setting"]
    rows = []
    for ablation, variant, model, step, want in _plan(cfg, spec, results):
        method = parse_step_model(model)[0] if parse_step_model(model) else model
        summary = _summary(results, setting, method)
        entry = _paper_match(paper, ablation, **want) if use_paper else {}
        row = {"ablation": ablation, "variant": variant, "model": model, "step": step, "setting": setting,
               "setting_key": setting, "method_key": model, "judge": judge,
               "run_steps": summary.get("steps"), "paper_note": entry.get("note", ""),
               "convergence_fired_step": ((summary.get("convergence") or {}).get("fired") or {}).get("step"),
               "convergence_rule": {k: v for k, v in (summary.get("convergence") or {}).items()
                                    if k in ("max_epochs", "window", "tolerance")} or None}
        for col, paper_col, protocol, key, ci_kind, ci_keys, _ in columns(cfg, spec):
            c = _score_cell(cfg, results, judge, True, setting, model, protocol, key, ci_kind, ci_keys)
            p = entry.get(paper_col)
            row.update({col: _r(c["value"]), f"{col}_se": _r(c["se"]), f"{col}_ci_low": _r(c["lo"]),
                        f"{col}_ci_high": _r(c["hi"]), f"{col}_paper": p, f"{col}_note": c["note"],
                        f"{col}_diff": _r(c["value"] - p) if c["value"] is not None and p is not None else None,
                        f"{col}_reason": c["reason"] or ("" if p is not None or not use_paper else "paper reports none"),
                        f"{col}_n_judged": c["judged"], f"{col}_n_expected": c["expected"], f"{col}_source": c["source"],
                        f"{col}_complete": None if c["value"] is None or c["judged"] is None else c["judged"] == c["expected"]})
        rows.append(row)
    return rows


def _r(x, nd: int = 2):
    return None if x is None else round(float(x), nd)


def ablation_pairs(cfg: dict, spec: dict) -> list[tuple[str, str, str, str]]:
    """(ablation, question, model a, model b) of every paired difference, a minus b."""
    recipe = cfg["settings"][spec["setting"]]["methods"]
    out = []
    alphas, cs = spec["alpha"], spec["compare_step"]
    for m in alphas[1:]:
        a0, a1 = recipe[alphas[0]]["alpha"], recipe[m]["alpha"]
        out.append(("alpha", f"converges faster: α={a1:g} vs α={a0:g} at step {cs}", step_model(m, cs), step_model(alphas[0], cs)))
        out.append(("alpha", f"α={a1:g} vs α={a0:g} at the end", m, alphas[0]))
    g = spec["guidance"]
    for m in g[1:]:
        out.append(("guidance", f"TGDPO guided by {recipe[m]['guide']} vs by {recipe[g[0]]['guide']}", m, g[0]))
        out.append(("guidance", f"guide {recipe[m]['guide']} vs guide {recipe[g[0]]['guide']}", recipe[m]["guide"],
                    recipe[g[0]]["guide"]))
    for short, long in spec["convergence"].items():
        out.append(("convergence", f"does not collapse: {long} (to convergence) vs {short} (one epoch)", long, short))
    for a, b in spec["comparisons"]:
        out.append(("comparison", f"{a} vs {b}", a, b))
    return out


def _stats(cfg, results, bench, judge, setting, model, cache) -> dict:
    """Per metric, one model's per-prompt statistics from its judgments (the score file names them)."""
    if (bench, model) in cache:
        return cache[(bench, model)]
    sc = load_score(results, cfg, bench, judge, setting, model)
    if sc is None or sc.judgments is None or not Path(sc.judgments).exists():
        raise DataError(f"ablations: no score and judgments for {bench} / {judge} / {setting} / {model} (expected "
                        f"{ResultPaths(results).score(bench, judge, setting, model)}); run `snakemake reproduce_ablations`")
    protocol = cfg["benchmarks"][bench]["protocol"]
    records = read_records(sc.judgments, protocol)
    out = cache[(bench, model)] = {m: prompt_stats(records, protocol, m, str(sc.judgments))
                                   for m in metrics_for(protocol, records)}
    return out


def collect_pairs(cfg: dict, results: Path, rows: list[dict], rounds: int = DEFAULT_ROUNDS, seed: int = DEFAULT_SEED,
                  judge: str | None = None) -> list[dict]:
    """Every paired difference of :func:`ablation_pairs` on every ablation benchmark and metric, with the
    paper's difference where the paper gives both models' numbers."""
    spec = ablation_spec(cfg)
    judge, setting = judge or cfg["table_judge"], spec["setting"]
    paper_of = {}
    for r in rows:
        for c in columns(cfg, spec):
            if r.get(f"{c[0]}_paper") is not None:
                paper_of.setdefault((r["model"], c[0]), r[f"{c[0]}_paper"])
    cache, out = {}, []
    for ablation, question, a, b in ablation_pairs(cfg, spec):
        for bench in spec["benchmarks"]:
            bj = judge_for(cfg, bench, judge)
            sa, sb = _stats(cfg, results, bench, bj, setting, a, cache), _stats(cfg, results, bench, bj, setting, b, cache)
            for metric in [m for m in sa if m in sb]:
                res = compare([sa[metric]], [sb[metric]], rounds, seed)
                pa, pb = paper_of.get((a, metric)), paper_of.get((b, metric))
                pd_ = round(pa - pb, 4) if pa is not None and pb is not None else None
                v, finding = verdict(res["diff"], res["ci_low"], res["ci_high"], pd_)
                out.append({**res, "ablation": ablation, "question": question, "benchmark": bench, "metric": metric,
                            "judge": bj, "model_a": a, "model_b": b, "paper_diff": pd_, "verdict": v,
                            "finding": finding.replace("a ahead", f"{a} ahead").replace("b ahead", f"{b} ahead")})
    return [{k: r.get(k) for k in PAIR_FIELDS} for r in out]


def loss_curve(results: Path, setting: str, method: str) -> list[tuple[int, float]]:
    """(step, loss) of a trained method, from its train_log.jsonl ([] when it has none)."""
    path = Path(ResultPaths(results).model_dir(setting, method)) / "train_log.jsonl"
    if not path.exists():
        return []
    return [(r["step"], r["loss"]) for r in read_jsonl(path, allow_torn_tail=True) if "loss" in r and "step" in r]


def _f(x, nd: int = 1) -> str:
    return "—" if x is None else f"{x:+.{nd}f}"


def render_markdown(cfg: dict, rows: list[dict], pairs: list[dict], source: str) -> str:
    """The ablations table (one section per ablation) and the paired differences, with a legend."""
    spec = ablation_spec(cfg)
    cols = [c[0] for c in columns(cfg, spec)]
    judge = rows[0]["judge"] if rows else cfg["table_judge"]
    lines = [f"# The paper's ablations — {cfg['settings'][spec['setting']]['label']}, judge: {judge}", ""]
    titles = {"alpha": "alpha sensitivity (mid-run checkpoints)", "guidance": "guidance quality",
              "convergence": "trained to loss convergence"}
    for ablation, title in titles.items():
        sub = [r for r in rows if r["ablation"] == ablation]
        if not sub:
            continue
        lines += [f"## {title}", "", "| variant | model | step | steps trained | " + " | ".join(cols) + " |",
                  "|---|---|---|---|" + "---|" * len(cols)]
        for r in sub:
            trained = f"{r['run_steps']}" if r["run_steps"] is not None else "—"
            if r["convergence_fired_step"] is not None:
                trained += f" (rule fired at {r['convergence_fired_step']})"
            elif r["convergence_rule"]:
                trained += " (rule never fired: all epochs)"
            lines.append(f"| {r['variant']} | {r['model']} | {r['step']}{' (' + r['paper_note'] + ')' if r['paper_note'] else ''}"
                         f" | {trained} | " + " | ".join(cell_text(r, c) for c in cols) + " |")
        lines.append("")
    lines += ["## paired differences (A − B)", "",
              "| question | benchmark | metric | A − B [95% CI] | p | prompts | paper A − B | verdict |",
              "|---|---|---|---|---|---|---|---|"]
    for p in pairs:
        lines.append(f"| {p['question']} | {p['benchmark']} | {p['metric']} | {_f(p['diff'])} [{_f(p['ci_low'])}, "
                     f"{_f(p['ci_high'])}] | {p['p_value']:.3f} | {p['n_prompts']} | {_f(p['paper_diff'])} | "
                     f"{p['verdict']}; ours: {p['finding']} |")
    rule = next((r["convergence_rule"] for r in rows if r["convergence_rule"]), None)
    lines += ["", "Cells: ours (AlpacaEval ± one standard error; Arena-Hard [bootstrap 95% CI]) then (paper, Δ) where "
              "the paper gives the number; the paper's AE is set beside both our LC and raw win rates. step: the "
              "optimizer step the weights were saved at (final: the end of the run).",
              "Differences: paired bootstrap over prompts (percentile 95%, both models scored on the same resampled "
              "prompts) and a two-sided sign-flip test, as in method_differences; one training seed per model, so "
              "seed-to-seed noise is not in these intervals. Verdict: the paper's direction (where it gives both "
              "numbers) supported, not resolved (CI contains 0) or contradicted.",
              f"Paper numbers: {source}."]
    if rule:
        lines.append(f"Convergence rule: at most {rule['max_epochs']} epochs (the schedule spans them all); stop at "
                     f"the end of an epoch whose mean loss over its last {rule['window']} steps moved by less than "
                     f"{rule['tolerance']} from the previous epoch's.")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[dict], path: Path) -> None:
    """Rows as csv, one column per key (the union over rows, first-seen order)."""
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def build_ablations(cfg: dict, results: Path, out_dir: Path, figures_dir: Path | None = None,
                    rounds: int = DEFAULT_ROUNDS, seed: int = DEFAULT_SEED, log=print) -> list[dict]:
    """Compute every row and paired difference, then write ``ablations.{md,csv,json}`` into ``out_dir`` (and the
    figures into ``figures_dir``); nothing is written when an input is bad."""
    rows = collect_rows(cfg, results)
    pairs = collect_pairs(cfg, results, rows, rounds, seed)
    spec = ablation_spec(cfg)
    curves = {m: loss_curve(Path(results), spec["setting"], m) for pair in spec["convergence"].items() for m in pair}
    paper = load_paper_ablations()
    md = render_markdown(cfg, rows, pairs, paper["source"])
    out_dir = Path(out_dir)
    write_csv([{**r, "convergence_rule": str(r["convergence_rule"] or "")} for r in rows], out_dir / "ablations.csv")
    atomic_write_json(out_dir / "ablations.json", {"rows": rows, "pairs": pairs, "loss_curves": curves, "spec": spec,
                                                   "rounds": rounds, "seed": seed, "paper_source": paper["source"]})
    atomic_write_text(out_dir / "ablations.md", md)
    log(f"wrote {out_dir}/ablations.{{md,csv,json}}: {len(rows)} rows, {len(pairs)} paired differences")
    if figures_dir is not None:
        from reproduce.report.ablation_figures import draw_ablation_figures

        for p in draw_ablation_figures(cfg, rows, curves, Path(figures_dir), paper):
            log(f"wrote {p}")
    return rows
