"""gpt-5-nano, a judge that answers today, on the bridge: its archived verdicts replayed, its request shape.

Replay (no network): the shipped per-item files of gpt-5-nano (alpaca-7b, gpt-3.5-turbo-0301) and the two
published leaderboards come through the manifests and $REPRODUCE_BENCHMARK_MIRROR; the figures the report
gives are recomputed here from the raw files with nothing but json and csv.
"""

from __future__ import annotations

import csv
import json
import logging
import math

import pytest

from reproduce.io import DataError

NANO = "weighted_alpaca_eval_gpt5_nano"
RETIRED = "weighted_alpaca_eval_gpt4_turbo"


def _fetch_or_skip(fetch):
    from conftest import OFFLINE_PREFIX, offline_tests

    try:
        return fetch()
    except DataError as e:
        if offline_tests():
            pytest.skip(f"{OFFLINE_PREFIX} {e}")
        pytest.fail(str(e), pytrace=False)


def _board(path) -> dict[str, float]:
    with open(path, newline="") as fh:
        return {r[""]: float(r["win_rate"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def nano_report(tmp_path_factory):
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.run import run_bridge

    man = load_manifest("alpaca_eval")
    raw = {m: (json.loads(_fetch_or_skip(lambda m=m: man.fetch(m, NANO)).read_text()),
               json.loads(_fetch_or_skip(lambda m=m: man.fetch(m, RETIRED)).read_text()))
           for m in ("alpaca-7b", "gpt-3.5-turbo-0301")}
    boards = {a: _board(_fetch_or_skip(lambda a=a: man.leaderboard(a))) for a in (NANO, RETIRED)}
    out = tmp_path_factory.mktemp("nano")
    lines: list[str] = []
    rep = run_bridge(benchmark="alpaca_eval2", annotator=NANO, preset="paper", out_dir=out, rounds=200,
                     results=out / "results", log=lines.append)
    return rep, raw, boards, "\n".join(lines)


def test_replay_gives_the_files_win_rates_and_the_leaderboards_map(nano_report):
    rep, raw, boards, printed = nano_report
    rows = {r["model"]: r for r in rep["models"]}
    for model, (nano, retired) in raw.items():
        prefs = [float(r["preference"]) for r in nano if r["preference"] is not None]
        assert rows[model]["current_win_rate"] == pytest.approx(100 * sum(p - 1 for p in prefs) / len(prefs), abs=1e-9)
        assert rows[model]["n_current"] == len(prefs)
        assert rows[model]["complete"] == (len(prefs) == 805)
    # the files' figures: one failed verdict in gpt-3.5-turbo-0301's file, none in alpaca-7b's
    assert (round(rows["alpaca-7b"]["current_win_rate"], 2), rows["alpaca-7b"]["n_current"]) == (7.14, 805)
    assert (round(rows["gpt-3.5-turbo-0301"]["current_win_rate"], 2), rows["gpt-3.5-turbo-0301"]["n_current"]) == (15.36, 804)
    # model level (slope): least squares through the reference's point over the 12 shared models, leave-one-out
    lg = lambda pct: math.log(pct / (100 - pct))  # noqa: E731
    pts = {m: (lg(w), lg(boards[RETIRED][m])) for m, w in boards[NANO].items() if m != "gpt4_1106_preview"}
    errs = {}
    for m, (x0, y0) in pts.items():
        b = sum(x * y for k, (x, y) in pts.items() if k != m) / sum(x * x for k, (x, _) in pts.items() if k != m)
        errs[m] = 100 / (1 + math.exp(-b * x0)) - 100 / (1 + math.exp(-y0))
    slope = next(m for m in rep["methods"] if m["name"] == "model level (slope)")
    assert slope["n_models"] == 12 and slope["map"]["free_parameters"] == 1 and slope["map"]["residual_df"] == 11
    assert {r["model"]: r["error"] for r in slope["loo"]} == pytest.approx(errs)
    assert round(slope["loo_rmse"], 2) == 3.22 == round(math.sqrt(sum(e * e for e in errs.values()) / 12), 2)
    # validated intervals: every left-out model but gemini-pro (error +8.5) inside its own 95% interval
    assert [r["model"] for r in slope["loo"] if not r["inside"]] == ["gemini-pro"]
    assert rep["default_method"] == "model level (slope)"
    for r in rep["models"]:
        assert r["bridged"]["low"] <= r["bridged"]["estimate"] <= r["bridged"]["high"]
    # per item: two models with both judges' verdicts - LOO errors, but no interval, and the report says so
    item = next(m for m in rep["methods"] if m["name"] == "per item")
    assert item["n_models"] == 2 and not item["has_interval"] and "no interval" in printed
    assert "panel retired WR" in printed and "2.6-29.7" in printed


def test_judge_gpt5_nano_dry_run_plans_nothing_for_its_archived_panel(tmp_path, capsys):
    from reproduce import cli

    cli.main(["bridge", "--judge", "gpt-5-nano", "--dry-run", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert "bridge plan: judge gpt-5-nano: 0 requests, $0.00" in err and "archived" in err and "replayed" in err
    assert not (tmp_path / "bridge").exists()


def test_gpt5_nano_requests_carry_its_reasoning_settings_and_never_a_temperature(caplog):
    """The judge file's request: max_completion_tokens (not max_tokens), reasoning_effort, no log-probs, and no
    temperature even when the benchmark asks 0 (the API rejects it): a warning says so, once."""
    from reproduce.benchmarks.protocol import JudgeRequest
    from reproduce.config import ROOT, load_yaml, validate
    from reproduce.judges.openai_judge import OpenAIJudge

    path = ROOT / "evals" / "judges" / "gpt-5-nano.yaml"
    cfg = validate(load_yaml(path), "judge", path)
    judge = OpenAIJudge("gpt-5-nano", cfg, require_key=False)
    req = JudgeRequest(messages=({"role": "user", "content": "x"},),
                       decoding={"temperature": 0.0, "max_tokens": 1, "logprobs": False}, fields={})
    with caplog.at_level(logging.WARNING):
        params = judge._params(req)
        judge._params(req)
    assert params == {"model": "gpt-5-nano", "messages": [{"role": "user", "content": "x"}],
                      "max_completion_tokens": 1000, "reasoning_effort": "low"}
    warned = [r for r in caplog.records if "default temperature" in r.getMessage()]
    assert len(warned) == 1 and "asks 0.0" in warned[0].getMessage()
    assert judge.identity()["overrides"]["temperature"] == "api default"
    assert judge.estimate_tokens([req])[1] == 1000  # the output bound is the completion cap, reasoning included


def test_optional_archive_files_are_not_required_by_the_preflight():
    from reproduce.bridge.archives import archive_specs, load_manifest

    man = load_manifest("alpaca_eval_gpt5_nano")
    optional = {s["path"] for files in man.models.values() for s in files.values() if s.get("optional")}
    assert len(optional) == 11 and not optional & set(archive_specs())
    assert {"alpaca_eval/alpaca-7b/weighted_alpaca_eval_gpt5_nano/annotations.json",
            "alpaca_eval/leaderboards/weighted_alpaca_eval_gpt5_nano_leaderboard.csv"} <= set(archive_specs())
