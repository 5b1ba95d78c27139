"""The AlpacaEval 2 bridge: the archived panel under a current judge against the retired AE2 judge.

Steps: load the panel's archived pairs (manifest), get the current judge's verdicts (replayed from an
archived annotator config, or asked through the judge machinery after the cost plan is printed), compare
per model (agreement, kappa, both win rates with the paired bootstrap interval of their difference) and
across the panel (rank correlation), fit the per-item calibration on every model with per-item retired
verdicts, measure it leave-one-model-out, and give every panel model a retired-judge equivalent with its
prediction interval (for answers-only models beside their published AE2 win rate).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np

from reproduce.bridge import calibration as calib
from reproduce.bridge.agreement import compare_model, pooled_agreement, rank_correlation
from reproduce.bridge.archives import Item, Manifest, alpaca_items, reference_outputs
from reproduce.bridge.leaderboards import board_points, read_board, reference_length
from reproduce.bridge.methods import Cell, choose_default, model_level, per_item
from reproduce.bridge.model_map import Point
from reproduce.bridge.rejudge import alpaca_job, judge_jobs, plan, plan_line, replay
from reproduce.config import ConfigError
from reproduce.io import DataError


def published_alpaca(model: str) -> dict | None:
    """The model's row of the AlpacaEval 2 leaderboard shipped in the alpaca-eval wheel (retired judge), or None."""
    import pandas as pd

    from reproduce.benchmarks.alpaca_lc import LEADERBOARD

    try:
        board = pd.read_csv(str(importlib.resources.files("alpaca_eval").joinpath(*LEADERBOARD)), index_col=0)
    except OSError:
        return None
    if model not in board.index:
        return None
    row = board.loc[model]
    return {"win_rate": float(row["win_rate"]), "standard_error": float(row["standard_error"]),
            "length_controlled_winrate": float(row["length_controlled_winrate"]), "source": "/".join(LEADERBOARD)}


def shortest(items: list[Item], limit: int | None) -> list[Item]:
    """The ``limit`` shortest pairs (instruction plus both outputs), in their original order: a cheap subset
    for smoke runs (the report marks it a subset)."""
    if not limit or limit >= len(items):
        return items
    keep = set(sorted(range(len(items)), key=lambda i: (len(items[i].instruction) + len(items[i].output_1)
                                                         + len(items[i].output_2), i))[:limit])
    return [it for i, it in enumerate(items) if i in keep]


def load_panel(manifest: Manifest, bench: dict, panel: list[str], annotator: str | None,
               limit: int | None, skipped: list[str] | None = None) -> dict[str, list[Item]]:
    """model -> archived items (with the replayed annotator's verdicts attached when given). With ``skipped``
    (a list), a model whose files cannot be had (an optional file no mirror holds, an unhashed one) is left
    out and the reason appended there; without it, that is an error."""
    unknown = [m for m in panel if m not in manifest.models]
    if unknown:
        raise ConfigError(f"--panel: {unknown[0]!r} is not in {manifest.path.name} (models: {', '.join(manifest.models)})")
    if annotator:
        panel = [m for m in panel if annotator in manifest.models[m]]
        if not panel:
            raise ConfigError(f"--replay {annotator}: no panel model of {manifest.path.name} has that annotator's archive")
    retired = manifest.retired_judge["annotator"]
    need_ref = [m for m in panel if not manifest.has(m, retired)]
    reference = reference_outputs(bench) if need_ref else None
    out = {}
    for m in panel:
        try:
            out[m] = shortest(alpaca_items(manifest, m, reference, (annotator,) if annotator else ()), limit)
        except DataError as e:
            if skipped is None:
                raise
            why = ("not in a mirror or the cache, and not downloadable" if "not in the mirror" in str(e) else
                   "not hashed" if "sha256 is null" in str(e) else str(e).split(";")[0])
            skipped.append(f"{m} ({why})")
    if not out:
        raise DataError(f"{manifest.path.name}: no panel model's files could be had (skipped: {'; '.join(skipped or [])})")
    return out


def current_verdicts(items_by_model: dict[str, list[Item]], *, annotator: str | None, bench: dict, judge,
                     cache_dir: Path | None, manifest: Manifest, dry_run: bool, log) -> tuple[dict, dict | None]:
    """(model -> current preferences aligned with its items, the plan / judging stats or None for a replay).
    With ``dry_run`` the first element is None: the plan was printed and nothing was sent."""
    if annotator:
        return {m: replay(items, annotator) for m, items in items_by_model.items()}, None
    from reproduce.benchmarks.alpaca_eval2 import load_templates

    templates = load_templates(bench)
    jobs = [alpaca_job(m, items, manifest.reference_model) for m, items in items_by_model.items()]
    p = plan(bench, judge, jobs, cache_dir, templates)
    log(plan_line(p))
    if dry_run:
        return None, {"plan": p}
    results = judge_jobs(bench, judge, jobs, cache_dir, templates, log=log)
    current = {}
    for m, items in items_by_model.items():
        by_id = {r["question_id"]: r["preference"] for r in results[m]["records"]}
        current[m] = [by_id.get(it.question_id) for it in items]
    return current, {"plan": p, "stats": {m: r["stats"] for m, r in results.items()}}


def _xy(items: list[Item], current: list[float | None], need_retired: bool):
    idx = [i for i, c in enumerate(current) if c is not None and (items[i].retired is not None or not need_retired)]
    X = calib.features(np.array([current[i] for i in idx]), np.array([items[i].length_diff for i in idx]))
    y = np.array([items[i].retired - 1 for i in idx]) if need_retired else None
    return X, y


def bridge_alpaca(manifest: Manifest, bench: dict, *, panel: list[str] | None = None, annotator: str | None = None,
                  judge=None, cache_dir: Path | None = None, dry_run: bool = False, limit: int | None = None,
                  rounds: int = 2000, seed: int = 0, replay_as: str | None = None, log=print) -> dict:
    """Everything the AlpacaEval bridge reports (see the module docstring); with ``dry_run`` only the plan.
    ``replay_as``: the current judge's name when ``annotator`` holds that judge's own archived verdicts (its
    panel then costs nothing: the verdicts are replayed, not asked; models whose files cannot be had are
    skipped and named)."""
    if (annotator is None) == (judge is None):
        raise ConfigError("the bridge needs exactly one current judge: --judge NAME or --replay ANNOTATOR")
    if replay_as and dry_run:
        return replay_plan(manifest, list(panel or manifest.panel), annotator, replay_as, log)
    skipped: list[str] | None = [] if replay_as else None
    items_by_model = load_panel(manifest, bench, list(panel or manifest.panel), annotator, limit, skipped)
    notes = []
    if replay_as:
        p = {"judge": replay_as, "requests": 0, "not_cached": 0, "prompt_tokens": 0, "output_tokens_max": 0,
             "cost_usd_max": 0.0, "why": f"{len(items_by_model)} panel models' verdicts by {replay_as}'s own "
             f"configuration are archived ({manifest.name}, annotator {annotator}) and replayed; nothing is sent"}
        log(f"bridge plan: judge {replay_as}: 0 requests, $0.00 - {p['why']}"
            + (f"; skipped {len(skipped)}: {', '.join(skipped)}" if skipped else ""))
        notes.append(f"**Current judge's verdicts replayed:** {p['why']}.")
        if skipped:
            notes.append(f"**Skipped panel models** (per item; the model-level map still uses their published "
                         f"leaderboard rows): {', '.join(skipped)}.")
    current, judging = current_verdicts(items_by_model, annotator=annotator, bench=bench, judge=judge,
                                        cache_dir=cache_dir, manifest=manifest, dry_run=dry_run, log=log)
    current_name = (f"judge {replay_as} (its archived verdicts, {annotator})" if replay_as else
                    f"archived annotator {annotator}" if annotator else f"judge {judge.name}")
    head = {"benchmark": manifest.benchmark, "manifest": manifest.name, "retired_judge": manifest.retired_judge,
            "current_judge": current_name, "panel": list(items_by_model), "limit": limit, "notes": notes,
            "skipped": skipped or [], **(judging or {})}
    if current is None:
        return {**head, "dry_run": True}
    rows = [compare_model(m, items, current[m], rounds, seed) for m, items in items_by_model.items()]
    all_items = [it for items in items_by_model.values() for it in items]
    all_current = [c for m in items_by_model for c in current[m]]
    data = {}
    for m, items in items_by_model.items():
        if any(it.retired is not None for it in items):
            X, y = _xy(items, current[m], True)
            if len(y):
                data[m] = (X, y)
    cells = {m: panel_cell(items_by_model[m], current[m]) for m in items_by_model}
    methods = ([per_item(data, {m: cells[m].length for m in data})] if data else [])
    methods += model_level(*model_points(manifest, rows, cells, annotator))
    if not methods:
        raise DataError(f"{manifest.path.name}: no panel model has both judges' verdicts (per item or published); "
                        "nothing to calibrate on")
    default = choose_default(methods)
    for row in rows:
        m = row["model"]
        row["bridged_by"] = {meth.name: meth.predict(cells[m]) for meth in methods}
        row["bridged"] = row["bridged_by"][default.name]
        row["published"] = published_alpaca(m)
        row["loo_by"] = {meth.name: next((r for r in meth.loo if r["model"] == m), None) for meth in methods}
        row["loo"] = row["loo_by"][default.name]
        row["complete"] = row["current_failed"] == 0 and not (limit and row["n_items"] < 805)
        if row.get("retired_win_rate") is None and row["published"] and row["bridged"]:
            # an answers-only model never entered the per-item fit: its published number is an out-of-sample check
            row["published_error"] = row["bridged"]["estimate"] - row["published"]["win_rate"]
    item_method = next((meth for meth in methods if meth.name == "per item"), None)
    return {**head, "models": rows, "pooled": pooled_agreement(all_items, all_current),
            "rank_correlation": rank_correlation(rows), "methods": [meth.to_dict() for meth in methods],
            "default_method": default.name,
            "calibration": item_method.extra["calibration"] if item_method else None,
            "loo": default.loo, "loo_rmse": default.loo_rmse,
            "flip_note": "AlpacaEval judges each pair once, in the order of alpaca_eval's "
            "coin; the archives hold one order per pair, so no position-flip rate exists for either judge",
            "_methods": methods, "_default": default}


def replay_plan(manifest: Manifest, panel: list[str], annotator: str, judge_name: str, log) -> dict:
    """The dry run of a judge whose panel verdicts are archived: $0, and which files are here already (nothing
    is downloaded for a plan; a run fetches the others by their pinned URL or skips them, and says so)."""
    from reproduce.official import find_local

    listed = [m for m in panel if manifest.has(m, annotator)]
    here = [m for m in listed if find_local(manifest.models[m][annotator]) is not None]
    why = (f"{len(listed)} panel models' verdicts by {judge_name}'s own configuration are archived ({manifest.name}, "
           f"annotator {annotator}) and replayed, not asked; {len(here)} of those files are here, the run fetches "
           f"the other {len(listed) - len(here)} by their pinned URL or skips them")
    p = {"judge": judge_name, "requests": 0, "not_cached": 0, "prompt_tokens": 0, "output_tokens_max": 0,
         "cost_usd_max": 0.0, "why": why}
    log(f"bridge plan: judge {judge_name}: 0 requests, $0.00 - {why}")
    return {"benchmark": manifest.benchmark, "manifest": manifest.name, "current_judge": f"judge {judge_name}",
            "panel": listed, "here": here, "plan": p, "dry_run": True}


def panel_cell(items: list[Item], current: list[float | None]) -> Cell:
    """A panel model as a cell: its current win rate, average output length and items' features."""
    done = [i for i, c in enumerate(current) if c is not None]
    X, _ = _xy(items, current, False)
    return Cell(100.0 * float(np.mean([current[i] - 1 for i in done])) if done else float("nan"),
                float(np.mean([len(items[i].output_2) for i in done])) if done else None, len(done), X)


def model_points(manifest: Manifest, rows: list[dict], cells: dict[str, Cell], annotator: str | None):
    """(points, reference length, where they come from) of the model-level maps: the published leaderboards of
    the current annotator and the retired judge when the manifest lists both, else the panel's own win rates
    (current from its verdicts, retired from its archived verdicts or the retired judge's leaderboard)."""
    retired_name = manifest.retired_judge["annotator"]
    retired_board = read_board(manifest.leaderboard(retired_name)) if retired_name in manifest.leaderboards else {}
    if annotator and annotator in manifest.leaderboards and retired_board:
        board = read_board(manifest.leaderboard(annotator))
        return (board_points(board, retired_board, manifest.reference_model),
                reference_length([board, retired_board], manifest.reference_model),
                f"published leaderboards {annotator} and {retired_name}")
    pts = []
    for r in rows:
        retired = r.get("retired_win_rate")
        if retired is None and r["model"] in retired_board:
            retired = retired_board[r["model"]]["win_rate"]
        c = cells[r["model"]]
        if retired is not None and c.n_items:
            pts.append(Point(r["model"], c.current, retired, c.length, c.n_items))
    return pts, reference_length([retired_board], manifest.reference_model), "the panel judged by the current judge"
