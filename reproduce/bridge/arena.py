"""The Arena-Hard v0.1 bridge, model level: archived answers whose retired-judge scores are published.

The current judge judges each panel model's archived answers against the gpt-4-0314 baseline (both games,
official prompts, through the judge cache) and its score is computed by the official v0.1 scoring. The map
from current to retired scores is fitted on the logit scale through the baseline's own point (any judge
gives the baseline 50% against itself): logit(published / 100) = b * logit(current / 100), least squares over
the panel. Its leave-one-model-out error (fit on the other models, predict this one's published score) and
the current score's own interval make each bridged number's 95% prediction interval. The retired judge's
per-game verdicts are not archived here, so there is no per-item agreement; the current judge's own
position-flip rate (its two games of a prompt disagreeing) is reported.
"""

from __future__ import annotations

import csv
import math

from reproduce.bridge.archives import Manifest, arena_answers, fetch_official
from reproduce.bridge.calibration import Z95, rmse
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
    p = min(max(pct / 100.0, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _pct(z: float) -> float:
    return 100.0 / (1.0 + math.exp(-z))


def fit_slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares b of logit(published) = b * logit(current) over (current, published) points."""
    xs = [_logit(c) for c, _ in points]
    ys = [_logit(p) for _, p in points]
    den = sum(x * x for x in xs)
    return sum(x * y for x, y in zip(xs, ys)) / den if den > 0 else None


def bridge_score(b: float, current: float, cur_low: float | None, cur_high: float | None,
                 model_rmse: float | None) -> dict:
    """A current score mapped to the retired judge's scale, with its 95% prediction interval."""
    est = _pct(b * _logit(current))
    spread = 0.0
    if cur_low is not None and cur_high is not None:  # the current score's own interval, carried through the map
        spread = (_pct(b * _logit(cur_high)) - _pct(b * _logit(cur_low))) / (2 * Z95)
    half = Z95 * math.sqrt(spread ** 2 + (model_rmse or 0.0) ** 2)
    return {"estimate": est, "low": max(0.0, est - half), "high": min(100.0, est + half), "model_rmse": model_rmse,
            "interval": "current score's interval and leave-one-model-out error" if model_rmse is not None else
                        "current score's interval only (no leave-one-model-out error: fewer than 2 panel models)"}


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
    loo = []
    for m in points:
        b = fit_slope([v for k, v in points.items() if k != m])
        if b is not None:
            pred = _pct(b * _logit(points[m][0]))
            loo.append({"model": m, "actual": points[m][1], "predicted": pred, "error": pred - points[m][1],
                        "n_train_models": len(points) - 1})
    model_rmse = rmse([r["error"] for r in loo])
    slope = fit_slope(list(points.values()))
    for r in rows:
        r["bridged"] = bridge_score(slope, r["current"], r["current_low"], r["current_high"], model_rmse) if slope else None
    return {**head, "models": rows, "slope": slope, "loo": loo, "loo_rmse": model_rmse,
            "stats": {m: results[m]["stats"] for m in models}}


def table_cells(table, judge: str, slope: float, model_rmse: float | None) -> dict:
    """The Arena-Hard cells of a Table 1 csv (``AH`` with ``AH_ci_low``/``AH_ci_high``) mapped to the retired scale."""
    from reproduce.bridge.equivalents import _num, read_table

    cells = []
    for row in read_table(table):
        cur = _num(row.get("AH"))
        cell = {"setting": row["setting"], "method": row["method"], "current": cur, "paper": _num(row.get("AH_paper"))}
        if row.get("judge") not in (None, "", judge):
            cell["note"] = f"the table's judge is {row['judge']}, not {judge}"
        elif cur is None:
            cell["note"] = "no Arena-Hard score in the table"
        else:
            cell["bridged"] = bridge_score(slope, cur, _num(row.get("AH_ci_low")), _num(row.get("AH_ci_high")), model_rmse)
        cells.append(cell)
    return {"table": str(table), "judge": judge, "column": "AH", "cells": cells}


def render_arena(rep: dict) -> str:
    """Markdown of an Arena-Hard bridge report."""
    from reproduce.bridge.report import HOW_TO_READ, _f, _interval, render_table1

    lines = [f"# Bridge: {rep['current_judge']} → retired {rep['retired_judge'].get('model')}, {rep['benchmark']} "
             "(model level)", "", HOW_TO_READ, ""]
    if rep.get("limit"):
        lines += [f"**Subset:** only the {rep['limit']} shortest prompts were judged; not full-benchmark numbers.", ""]
    p = rep["plan"]
    lines += [f"Plan (printed before sending): {p['requests']} requests, {p['not_cached']} not cached, at most "
              f"${p['cost_usd_max']:.2f} at list prices.", "",
              "| model | current score [95% CI] | position flips | published (retired) [95% CI] | bridged [95% PI] | "
              "LOO error |", "|---|---|---|---|---|---|"]
    for r in rep["models"]:
        loo = next((x for x in rep["loo"] if x["model"] == r["model"]), None)
        pub = r["published"]
        loo_s = "—" if not loo else f"{loo['error']:+.1f}"
        flips = "—" if r["flip_rate"] is None else f"{100 * r['flip_rate']:.1f}% of {r['n_flip_items']}"
        lines.append(f"| {r['model']}{'' if r['complete'] else '*'} | {r['current']:.1f} [{r['current_low']:.1f}, "
                     f"{r['current_high']:.1f}] | {flips} | {pub['score']:.1f} [{pub['low']:.1f}, {pub['high']:.1f}] | "
                     f"{_interval(r['bridged'])} | {loo_s} |")
    lines += ["", f"Map: logit(retired) = {_f(rep['slope'], 3)} × logit(current), through the baseline's 50%. "
              f"Leave-one-model-out RMSE {_f(rep['loo_rmse'], 2)} points over {len(rep['loo'])} models."
              " The retired judge's per-game verdicts are not archived here: no per-item agreement."]
    if rep.get("table1"):
        lines += ["", render_table1(rep["table1"])]
    return "\n".join(lines) + "\n"
