"""The bridge report: ``results/bridge/<judge>/<benchmark>/bridge.{md,json}``."""

from __future__ import annotations

from pathlib import Path

from reproduce.io import atomic_write_json, atomic_write_text

HOW_TO_READ = (
    "How to read a bridged number: it is what the retired judge would most likely have given the same answers, "
    "predicted from the current judge's verdicts by a map fitted on archived answers both judges judged. "
    "Differences between methods judged by the same current judge need no bridge: compare them directly "
    "(results/tables/method_differences.*); the bridge only matters when you put a number beside the paper's.")
WITH_INTERVAL = (
    " Where an interval is shown, it is a 95% prediction interval validated leave-one-model-out: a t quantile "
    "from the panel's own errors, which already hold item noise (not added twice).")
WITHOUT_INTERVAL = (
    " No interval is shown: the panel has fewer than three calibration models, too few to validate one. The "
    "figures are point predictions; the leave-one-model-out errors show how far such predictions have been off.")


def how_to_read(bridged: list) -> str:
    """The how-to-read paragraph; it speaks of a 95% interval only when one of ``bridged`` has one."""
    return HOW_TO_READ + (WITH_INTERVAL if any(b and b.get("low") is not None for b in bridged) else WITHOUT_INTERVAL)


def bridged_header(bridged: list) -> str:
    """Column header of bridged numbers: '[95% PI]' only when an interval exists."""
    return "bridged [95% PI]" if any(b and b.get("low") is not None for b in bridged) else "bridged (no interval)"


def _f(x, nd=1) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def _interval(b: dict | None) -> str:
    if not b:
        return "—"
    if b.get("low") is None:
        return f"{b['estimate']:.1f} (no interval)"
    return f"{b['estimate']:.1f} [{b['low']:.1f}, {b['high']:.1f}]" + (" (extrapolated)" if b.get("extrapolated") else "")


def loo_cells(loo: dict | None) -> str:
    """'LOO prediction | LOO error | inside its interval' cells of a left-out model."""
    if not loo:
        return "— | — | —"
    pred = f"{loo['predicted']:.1f}" + ("" if loo.get("low") is None else f" [{loo['low']:.1f}, {loo['high']:.1f}]")
    ins = {True: "inside", False: "**outside**", None: "no interval"}[loo.get("inside")]
    return f"{pred} | {loo['error']:+.2f} (from {loo['n_train_models']}) | {ins}"


def render_methods(rep: dict) -> list[str]:
    """The methods section: each method's form, free parameters, LOO RMSE, coverage and panel range."""
    lines = ["## Methods", "", "Each method is validated leave-one-model-out on its own calibration models. The default "
             f"(**{rep['default_method']}**) has the smallest LOO RMSE among the methods with intervals.", "",
             "| method | form | models | LOO RMSE | left-out inside own 95% PI | panel retired WR | panel length |",
             "|---|---|---|---|---|---|---|"]
    for m in rep["methods"]:
        cov = [r["inside"] for r in m["loo"] if r.get("inside") is not None]
        rng = (m.get("map") or {}).get("panel_range") or m.get("panel_range") or {}
        ret = rng.get("retired")
        ln = rng.get("length")
        lines.append(f"| {m['name']} | {m['description']} | {m['n_models']} | {_f(m['loo_rmse'], 2)} | "
                     + (f"{sum(cov)}/{len(cov)}" if cov else "no interval (fewer than 3 models)") + " | "
                     + ("—" if not ret else f"{ret[0]:.1f}-{ret[1]:.1f}") + " | "
                     + ("—" if not ln else f"{ln[0]:.0f}-{ln[1]:.0f}") + " |")
    lines += ["", "A cell outside the default method's panel range (retired win rate or output length) is marked "
              "'extrapolated': the map was never checked there. Its interval is not widened by a made-up amount; "
              "the item noise of a cell is computed at its own q(1-q) and only its excess over the panel's is added.",
              "No combined estimate: the archives hold too few models with both judges' per-item verdicts to "
              "validate one."]
    return lines


def render_alpaca(rep: dict) -> str:
    """Markdown of an AlpacaEval bridge report."""
    rj = rep["retired_judge"]
    bridged = [r.get("bridged") for r in rep["models"]]
    lines = [f"# Bridge: {rep['current_judge']} → retired {rj.get('model')} ({rj.get('annotator', '')}), "
             f"{rep['benchmark']}", "", how_to_read(bridged), ""]
    for note in rep.get("notes") or []:
        lines += [note, ""]
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
              "both judged, with its paired bootstrap 95% interval. Bridged = retired-judge equivalent by the default "
              f"method ({rep['default_method']}; in-sample for models in its calibration); LOO = this model left out "
              "of that method's fit, predicted with the interval of the other models' errors.", "",
              f"| model | items | current WR | retired WR | Δ [95% CI] | agreement | κ | {bridged_header(bridged)} | "
              "LOO prediction | LOO error | inside its interval | published WR (LC) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rep["models"]:
        d = "—" if r.get("diff") is None else f"{r['diff']:+.1f} [{r['diff_ci_low']:+.1f}, {r['diff_ci_high']:+.1f}]"
        pub = r.get("published")
        pub_s = "—" if not pub else f"{pub['win_rate']:.2f} ({pub['length_controlled_winrate']:.2f})"
        items = f"{r['n_items']}" + ("" if r.get("complete") else f"* ({r['n_current']} judged)")
        lines.append(f"| {r['model']} | {items} | {_f(r['current_win_rate'], 2)} | {_f(r.get('retired_win_rate'), 2)} | {d} | "
                     f"{_f(r.get('agreement'), 3)} | {_f(r.get('kappa'), 3)} | {_interval(r.get('bridged'))} | "
                     f"{loo_cells(r.get('loo'))} | {pub_s} |")
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
              ]
    lines += render_methods(rep)
    if rep.get("calibration"):
        c = rep["calibration"]
        lines += ["", "## Per-item calibration", "",
                  "P(retired judge prefers the model | current verdict, length difference), logistic regression over "
                  f"{c['n_items']} items of {', '.join(c['models'])}: "
                  + ", ".join(f"{k} {v:+.3f}" for k, v in c["features"].items()) + f", intercept {c['intercept']:+.3f}."]
    for m in rep["methods"]:
        if not m["loo"]:
            lines += ["", f"{m['name']}: leave-one-model-out not possible with one calibration model."]
            continue
        lines += ["", f"Leave-one-model-out, {m['name']} (fit on the other models, predict this one's retired win "
                  f"rate): RMSE {_f(m['loo_rmse'], 2)} points over {len(m['loo'])} models.", "",
                  "| left out | retired WR | predicted | 95% PI | error | inside | models learned from |",
                  "|---|---|---|---|---|---|---|"]
        for r in m["loo"]:
            pi = "no interval" if r.get("low") is None else f"[{r['low']:.1f}, {r['high']:.1f}]"
            ins = {True: "yes", False: "**no**", None: "—"}[r.get("inside")]
            lines.append(f"| {r['model']} | {r['actual']:.2f} | {r['predicted']:.2f} | {pi} | {r['error']:+.2f} | {ins} | "
                         f"{r['n_train_models']} |")
    if rep.get("table1"):
        lines += ["", render_table1(rep["table1"])]
    return "\n".join(lines) + "\n"


def render_table1(t: dict) -> str:
    """Markdown of the retired-judge equivalents of the user's Table 1."""
    bridged = [c.get("bridged") for c in t["cells"]]
    others = sorted({k for c in t["cells"] for k in (c.get("bridged_by") or {})} - {t.get("default_method")})
    lines = [f"## Your Table 1 ({t['table']}) under the retired judge", "",
             f"Each cell's retired-judge equivalent ({'with its 95% prediction interval' if any(b and b.get('low') is not None for b in bridged) else 'no interval: too few calibration models'}"
             f"{', by ' + t['default_method'] if t.get('default_method') else ''}), beside the paper's number and "
             f"your number under {t['judge']}. Differences between your methods under {t['judge']} need no bridge. "
             "Incomplete cells get no bridged number, only the reason.", "",
             f"| setting | method | yours (current judge) | retired-judge equivalent, {bridged_header(bridged)} | "
             + "".join(f"{o} | " for o in others) + "paper | note |",
             "|---|---|---|---|" + "---|" * len(others) + "---|---|"]
    if t.get("paper_column_note"):
        lines[2] += f" Note: {t['paper_column_note']}."
    for c in t["cells"]:
        by = c.get("bridged_by") or {}
        lines.append(f"| {c['setting']} | {c['method']} | {_f(c.get('current'))} | {_interval(c.get('bridged'))} | "
                     + "".join(f"{_interval(by.get(o))} | " for o in others)
                     + f"{_f(c.get('paper'))} | {c.get('note') or ''} |")
    return "\n".join(lines) + "\n"


def write_report(rep: dict, out_dir: Path, markdown: str, log=print) -> None:
    """Write ``bridge.json`` (every number) and ``bridge.md`` and print the markdown."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "bridge.json", {k: v for k, v in rep.items() if not k.startswith("_")})
    atomic_write_text(out_dir / "bridge.md", markdown)
    log(markdown)
