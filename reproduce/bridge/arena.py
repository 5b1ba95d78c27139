"""The Arena-Hard v0.1 bridge, model level: archived answers whose retired-judge scores are published.

The current judge judges each panel model's archived answers against the gpt-4-0314 baseline (both games,
official prompts, through the judge cache) and its score is computed by the official v0.1 scoring. The map
from current to retired scores is the ``slope`` form of :mod:`reproduce.bridge.model_map`: logit(published)
= b · logit(current), one free parameter, through the baseline's own point (any judge gives the baseline 50%
against itself), least squares over the panel. Its leave-one-model-out error is reported per model. A 95%
prediction interval needs at least three panel models (t quantile, residual df n - 1); the panel has two
today, so the bridged figures carry no interval and the report says so. The retired judge's per-game
verdicts are not archived here, so there is no per-item agreement; the current judge's own position-flip
rate (its two games of a prompt disagreeing) is reported.
"""

from __future__ import annotations

import csv
from reproduce.bridge.archives import Manifest, arena_answers, fetch_official
from reproduce.bridge import model_map
from reproduce.bridge.calibration import rmse
from reproduce.bridge.rejudge import Job, judge_jobs, plan, plan_line
from reproduce.config import ConfigError
from reproduce.io import DataError


def published_scores(manifest: Manifest) -> dict[str, dict]:
    """model -> published v0.1 score and interval from the manifest's leaderboard csv."""
    spec = manifest.extra.get("leaderboard")
    if not isinstance(spec, dict):
        raise ConfigError(f"{manifest.path}: key 'leaderboard' (the published scores file) missing")
    path = fetch_official(spec, f"{manifest.path.name}: leaderboard")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    try:
        return {r["model"]: {"score": float(r["score"]), "low": float(r["rating_q025"]), "high": float(r["rating_q975"])}
                for r in rows}
    except (KeyError, ValueError) as e:
        raise DataError(f"{path}: not a v0.1 leaderboard csv (model, score, rating_q025, rating_q975): {e}") from None


def _logit(pct: float) -> float:
    return model_map.logit(pct)


def _pct(z: float) -> float:
    return model_map.pct(z)


def fit_map(points: dict[str, tuple[float, float]]) -> model_map.MapFit | None:
    """The ``slope`` map over model -> (current, published) points."""
    return model_map.fit("slope", [model_map.Point(m, c, p) for m, (c, p) in points.items()])


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares b of logit(published) = b * logit(current) over (current, published) points."""
    f = fit_map({str(i): p for i, p in enumerate(points)})
    return None if f is None else float(f.beta[0])


def bridge_score(fitted: model_map.MapFit, current: float, cur_low: float | None = None,
                 cur_high: float | None = None) -> dict:
    """A current score mapped to the retired judge's scale, with the map's prediction interval when the panel
    allows one (its residuals already hold the panel's own score noise, so the current score's interval is
    reported beside it, not added to it)."""
    out = fitted.predict(current)
    out["current_interval"] = [cur_low, cur_high]
    return out


def _shortest_questions(questions, answers_by_model, reference, limit):
    if not limit or limit >= len(questions):
        return questions
    size = {q["question_id"]: len(q["turns"][0]) + len(reference[q["question_id"]]["turns"][0])
            + sum(len(a[q["question_id"]]["turns"][0]) for a in answers_by_model.values()) for q in questions}
    keep = set(sorted(size, key=lambda k: (size[k], k))[:limit])
    return [q for q in questions if q["question_id"] in keep]


def arena_jobs(manifest: Manifest, bench: dict, models: list[str], limit: int | None = None) -> list[Job]:
    """Each panel model's archived answers against the benchmark's baseline answers, as judging jobs."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.benchmarks.reference import reference_answers

    questions = load_questions(bench)
    reference = {r["question_id"]: r for r in reference_answers(bench, questions)}
    answers = {m: arena_answers(manifest, m) for m in models}
    for m, a in answers.items():
        lost = [q["question_id"] for q in questions if q["question_id"] not in a]
        if lost:
            raise DataError(f"{manifest.where(m, 'model_answer')}: no answer to question {lost[0]!r}")
    questions = _shortest_questions(questions, answers, reference, limit)
    return [Job(m, questions, answers[m], reference) for m in models]


def bridge_arena(manifest: Manifest, bench: dict, *, judge, cache_dir, panel=None, limit=None, dry_run=False,
                 log=print) -> dict:
    """Everything the Arena-Hard bridge reports (see the module docstring); with ``dry_run`` only the plan."""
    from reproduce.benchmarks import arena_hard
    from reproduce.report.agreement import _reliability_items

    models = list(panel or manifest.panel)
    published = published_scores(manifest)
    unpublished = [m for m in models if m not in published]
    if unpublished:
        raise DataError(f"{manifest.path.name}: panel model {unpublished[0]!r} has no published score in the leaderboard")
    jobs = arena_jobs(manifest, bench, models, limit)
    templates = arena_hard.load_templates(bench)
    p = plan(bench, judge, jobs, cache_dir, templates)
    log(plan_line(p))
    head = {"benchmark": manifest.benchmark, "manifest": manifest.name, "retired_judge": manifest.retired_judge,
            "current_judge": f"judge {judge.name}", "panel": models, "limit": limit, "plan": p}
    if dry_run:
        return {**head, "dry_run": True}
    results = judge_jobs(bench, judge, jobs, cache_dir, templates, log=log)
    rows = []
    for m in models:
        recs = results[m]["records"]
        sc = arena_hard.score(recs, bench)
        flips, _, _ = _reliability_items("arena_hard", recs)
        rows.append({"model": m, "current": sc["score"], "current_low": sc["ci_low"], "current_high": sc["ci_high"],
                     "complete": sc["complete"] and not limit, "n_judged": sc["n_judged"], "n_expected": sc["n_expected"],
                     "flip_rate": (sum(flips) / len(flips)) if flips else None, "n_flip_items": len(flips),
                     "published": published[m]})
    points = {r["model"]: (r["current"], r["published"]["score"]) for r in rows}
    loo = model_map.leave_one_out("slope", [model_map.Point(m, c, p) for m, (c, p) in points.items()])
    fitted = fit_map(points)
    for r in rows:
        r["bridged"] = bridge_score(fitted, r["current"], r["current_low"], r["current_high"]) if fitted else None
    return {**head, "models": rows, "slope": float(fitted.beta[0]) if fitted else None,
            "map": fitted.describe() if fitted else None, "loo": loo, "loo_rmse": rmse([x["error"] for x in loo]),
            "stats": {m: results[m]["stats"] for m in models}, "_map": fitted}


def table_cells(table, judge: str, fitted: model_map.MapFit) -> dict:
    """The Arena-Hard cells of a Table 1 csv (``AH`` with ``AH_ci_low``/``AH_ci_high``) mapped to the retired
    scale; an incomplete cell (``AH_complete`` false) gets its reason, never a number."""
    from reproduce.bridge.equivalents import _num, read_table

    cells = []
    for row in read_table(table):
        cur = _num(row.get("AH"))
        cell = {"setting": row["setting"], "method": row["method"], "current": cur, "paper": _num(row.get("AH_paper"))}
        if row.get("judge") not in (None, "", judge):
            cell["note"] = f"the table's judge is {row['judge']}, not {judge}"
        elif cur is None:
            cell["note"] = "no Arena-Hard score in the table"
        elif str(row.get("AH_complete", "")).lower() in ("false", "0"):
            cell["note"] = "incomplete: scored from fewer games than the benchmark asks for; no bridged number"
        else:
            cell["bridged"] = bridge_score(fitted, cur, _num(row.get("AH_ci_low")), _num(row.get("AH_ci_high")))
            if cell["bridged"].get("extrapolated"):
                cell["note"] = "outside the panel: " + "; ".join(cell["bridged"]["extrapolated"])
        cells.append(cell)
    return {"table": str(table), "judge": judge, "column": "AH", "cells": cells}


def render_arena(rep: dict) -> str:
    """Markdown of an Arena-Hard bridge report."""
    from reproduce.bridge.intervals import MIN_MODELS, no_interval
    from reproduce.bridge.report import _f, _interval, bridged_header, how_to_read, loo_cells, render_table1

    bridged = [r["bridged"] for r in rep["models"]]
    lines = [f"# Bridge: {rep['current_judge']} → retired {rep['retired_judge'].get('model')}, {rep['benchmark']} "
             "(model level)", "", how_to_read(bridged), ""]
    if rep.get("limit"):
        lines += [f"**Subset:** only the {rep['limit']} shortest prompts were judged; not full-benchmark numbers.", ""]
    p = rep["plan"]
    lines += [f"Plan (printed before sending): {p['requests']} requests, {p['not_cached']} not cached, at most "
              f"${p['cost_usd_max']:.2f} at list prices.", "",
              f"| model | current score [95% CI] | position flips | published (retired) [95% CI] | {bridged_header(bridged)} | "
              "LOO prediction | LOO error | inside its interval |", "|---|---|---|---|---|---|---|---|"]
    for r in rep["models"]:
        loo = next((x for x in rep["loo"] if x["model"] == r["model"]), None)
        pub = r["published"]
        flips = "—" if r["flip_rate"] is None else f"{100 * r['flip_rate']:.1f}% of {r['n_flip_items']}"
        lines.append(f"| {r['model']}{'' if r['complete'] else '*'} | {r['current']:.1f} [{r['current_low']:.1f}, "
                     f"{r['current_high']:.1f}] | {flips} | {pub['score']:.1f} [{pub['low']:.1f}, {pub['high']:.1f}] | "
                     f"{_interval(r['bridged'])} | {loo_cells(loo)} |")
    m = rep.get("map") or {}
    lines += ["", f"Map: logit(retired) = {_f(rep['slope'], 3)} × logit(current), through the baseline's 50% (one free "
              f"parameter). Leave-one-model-out RMSE {_f(rep['loo_rmse'], 2)} points over {len(rep['loo'])} models."
              " The retired judge's per-game verdicts are not archived here: no per-item agreement."]
    if m and m.get("n_models", 0) < MIN_MODELS:
        lines += ["", f"**No interval:** {no_interval(m['n_models'])}. The figures above are point predictions; "
                  "the LOO errors show how far such predictions have been off. Add published models to "
                  "evals/archives/arena_hard_v0.1.yaml to get intervals."]
    if m.get("panel_range"):
        lo, hi = m["panel_range"]["retired"]
        lines += ["", f"Panel range of the retired score: {lo:.1f}-{hi:.1f}; a cell outside it is marked."]
    if rep.get("table1"):
        lines += ["", render_table1(rep["table1"])]
    return "\n".join(lines) + "\n"
