"""The bridge report: ``results/bridge/<judge>/<benchmark>/bridge.{md,json}``."""

from __future__ import annotations

from pathlib import Path

from reproduce.io import atomic_write_json, atomic_write_text

HOW_TO_READ = (
    "How to read a bridged number: it is what the retired judge would most likely have given the same answers, "
    "predicted from the current judge's verdicts by a calibration fitted on archived answers both judges judged. "
    "The interval is a 95% prediction interval (item noise plus the calibration's leave-one-model-out error). "
    "Differences between methods judged by the same current judge need no bridge: compare them directly "
    "(results/tables/method_differences.*); the bridge only matters when you put a number beside the paper's.")


def _f(x, nd=1) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _interval(b: dict | None) -> str:
    return "—" if not b else f"{b['estimate']:.1f} [{b['low']:.1f}, {b['high']:.1f}]"


def render_alpaca(rep: dict) -> str:
    """Markdown of an AlpacaEval bridge report."""
    rj = rep["retired_judge"]
    lines = [f"# Bridge: {rep['current_judge']} → retired {rj.get('model')} ({rj.get('annotator', '')}), "
             f"{rep['benchmark']}", "", HOW_TO_READ, ""]
    if rep.get("limit"):
        lines += [f"**Subset:** only the {rep['limit']} shortest pairs of each panel model were judged; these numbers "
                  "are not the panel's full-benchmark numbers.", ""]
    if rep.get("plan"):
        p = rep["plan"]
        lines += [f"Plan (printed before sending): {p['requests']} requests, {p['not_cached']} not cached, "
                  f"~{p['prompt_tokens']:,} prompt tokens, at most {p['output_tokens_max']:,} output tokens, at most "
                  f"${p['cost_usd_max']:.2f} at list prices.", ""]
    lines += ["## Per model", "",
              "Win rates in percent (alpaca_eval's: 100 × mean(preference − 1)). Δ = current − retired on the items "
              "both judged, with its paired bootstrap 95% interval. Bridged = retired-judge equivalent with its 95% "
              "prediction interval (in-sample for models in the calibration).", "",
              "| model | items | current WR | retired WR | Δ [95% CI] | agreement | κ | bridged [95% PI] | LOO error | "
              "published WR (LC) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["models"]:
        d = "—" if r.get("diff") is None else f"{r['diff']:+.1f} [{r['diff_ci_low']:+.1f}, {r['diff_ci_high']:+.1f}]"
        pub = r.get("published")
        pub_s = "—" if not pub else f"{pub['win_rate']:.2f} ({pub['length_controlled_winrate']:.2f})"
        loo = r.get("loo")
        loo_s = "—" if not loo else f"{loo['error']:+.2f} (from {loo['n_train_models']})"
        items = f"{r['n_items']}" + ("" if r.get("complete") else f"* ({r['n_current']} judged)")
        lines.append(f"| {r['model']} | {items} | {_f(r['current_win_rate'], 2)} | {_f(r.get('retired_win_rate'), 2)} | {d} | "
                     f"{_f(r.get('agreement'), 3)} | {_f(r.get('kappa'), 3)} | {_interval(r.get('bridged'))} | "
                     f"{loo_s} | {pub_s} |")
    checks = [r for r in rep["models"] if r.get("published_error") is not None]
    if checks:
        lines += ["", "Out-of-sample check on models with answers only (not in the calibration): bridged − published "
                  "AE2 win rate: " + ", ".join(f"{r['model']} {r['published_error']:+.1f}"
                                               + ("" if r.get("complete") else " (subset)") for r in checks) + "."]
    pooled, rc = rep["pooled"], rep["rank_correlation"]
    lines += ["", f"Pooled over the panel: {pooled['n_items']} items, agreement {_f(pooled['agreement'], 3)}, "
              f"Cohen's κ {_f(pooled['kappa'], 3)} (win / tie / loss). Rank correlation of the two judges' win rates "
              f"over {rc['n_models']} models: Spearman {_f(rc['spearman'], 3)}, Kendall {_f(rc['kendall'], 3)}"
              + (f" ({rc['note']})" if rc.get("note") else "") + ".", "", f"Position flips: {rep['flip_note']}.", "",
              "## Calibration", "",
              "P(retired judge prefers the model | current verdict, length difference), logistic regression over "
              f"{rep['calibration']['n_items']} items of {', '.join(rep['calibration']['models'])}: "
              + ", ".join(f"{k} {v:+.3f}" for k, v in rep["calibration"]["features"].items())
              + f", intercept {rep['calibration']['intercept']:+.3f}.", ""]
    if rep["loo"]:
        lines += [f"Leave-one-model-out (fit on the other models, predict this one's retired win rate): RMSE "
                  f"{_f(rep['loo_rmse'], 2)} points over {len(rep['loo'])} models.", "",
                  "| left out | retired WR | predicted | error | models learned from |", "|---|---|---|---|---|"]
        for r in rep["loo"]:
            lines.append(f"| {r['model']} | {r['actual']:.2f} | {r['predicted']:.2f} | {r['error']:+.2f} | "
                         f"{r['n_train_models']} |")
    else:
        lines += ["Leave-one-model-out: not possible with one calibration model; intervals hold item noise only."]
    if rep.get("table1"):
        lines += ["", render_table1(rep["table1"])]
    return "\n".join(lines) + "\n"


def render_table1(t: dict) -> str:
    """Markdown of the retired-judge equivalents of the user's Table 1."""
    lines = [f"## Your Table 1 ({t['table']}) under the retired judge", "",
             f"Each cell's retired-judge equivalent with its 95% prediction interval, beside the paper's number and "
             f"your number under {t['judge']}. Differences between your methods under {t['judge']} need no bridge.", "",
             "| setting | method | yours (current judge) | retired-judge equivalent [95% PI] | paper | note |",
             "|---|---|---|---|---|---|"]
    if t.get("paper_column_note"):
        lines[2] += f" Note: {t['paper_column_note']}."
    for c in t["cells"]:
        lines.append(f"| {c['setting']} | {c['method']} | {_f(c.get('current'))} | {_interval(c.get('bridged'))} | "
                     f"{_f(c.get('paper'))} | {c.get('note') or ''} |")
    return "\n".join(lines) + "\n"


def write_report(rep: dict, out_dir: Path, markdown: str, log=print) -> None:
    """Write ``bridge.json`` (every number) and ``bridge.md`` and print the markdown."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "bridge.json", {k: v for k, v in rep.items() if not k.startswith("_")})
    atomic_write_text(out_dir / "bridge.md", markdown)
    log(markdown)
