"""AlpacaEval 2 protocol: real annotations reproduce the published leaderboard; coin, log-prob parsing, requests."""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reproduce.benchmarks import alpaca_eval2 as ae
from reproduce.io import DataError
from reproduce.judges.base import JudgeReply

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "alpaca_eval_annotations"
MIRROR = ROOT.parent / "shared" / "benchmarks"
LEADERBOARD = (importlib.resources.files("alpaca_eval") / "leaderboards" / "data_AlpacaEval_2"
               / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
FIXTURE_MODELS = sorted(p.parent.name for p in FIXTURES.glob("*/annotations.json")) if FIXTURES.is_dir() else []
needs_fixtures = pytest.mark.skipif(not FIXTURE_MODELS, reason=f"real AlpacaEval annotations not found in {FIXTURES}")

BENCH = {"protocol": "alpaca_eval2", "questions": {"files": {}}, "judging": {}}


def _q(i=0, instruction="Name a colour.", ref="Blue."):
    return {"question_id": str(i), "category": "helpful_base", "turns": [instruction], "reference": [ref],
            "reference_generator": "gpt4_1106_preview"}


def _ans(text, model="my-model", qid="0"):
    return {"question_id": qid, "model": model, "turns": [text]}


@needs_fixtures
@pytest.mark.parametrize("model", FIXTURE_MODELS)
def test_real_annotations_reproduce_published_leaderboard(model, monkeypatch):
    monkeypatch.delenv("REPRODUCE_ALPACA_EVAL_LC_DIR", raising=False)
    monkeypatch.delenv("REPRODUCE_ALPACA_EVAL_HF_REVISION", raising=False)
    board = pd.read_csv(LEADERBOARD, index_col=0)
    assert model in board.index, f"{model} not on the leaderboard shipped with alpaca-eval"
    row = board.loc[model]
    s = ae.score(ae.read_judgments(FIXTURES / model / "annotations.json", fmt="alpaca_eval"))
    assert s["win_rate"] == pytest.approx(row["win_rate"], abs=1e-3)
    assert s["standard_error"] == pytest.approx(row["standard_error"], abs=1e-3)
    assert s["discrete_win_rate"] == pytest.approx(row["discrete_win_rate"], abs=1e-3)
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total", "avg_length"):
        assert s[key] == int(row[key]), key
    assert s["n_failed"] == 0
    # df_gamed.csv is not available offline: no LC number is invented, a reason is given instead
    assert s["length_controlled_winrate"] is None and "df_gamed.csv" in s["length_controlled_reason"]


@needs_fixtures
def test_order_coin_and_logprob_parser_reproduce_every_official_preference():
    """For every judged row: our coin picks the game the official annotator played, and parsing its
    raw top log-probs gives exactly the stored preference."""
    checked = 0
    for model in FIXTURE_MODELS:
        for row in json.loads((FIXTURES / model / "annotations.json").read_text()):
            raw = row.get("raw_completion")
            if not raw or not raw.get("logprobs"):
                continue  # not judged (identical outputs -> 1.5) or no raw completion kept
            top = {t["token"]: t["logprob"] for t in raw["logprobs"]["content"][0]["top_logprobs"]}
            game = "switched" if ae.is_switched(row["instruction"]) else "unswitched"
            got = ae.parse(game, JudgeReply(text=raw.get("text"), top_logprobs=top))
            assert got == pytest.approx(float(row["preference"]), abs=1e-9), (model, row["instruction"][:40])
            checked += 1
    assert checked > 3000


def test_parse_logprob_math_and_swap():
    lp = {"m": math.log(0.8), "M": math.log(0.2), "The": -9.0}
    assert ae.parse("unswitched", JudgeReply("m", lp)) == pytest.approx(1.2)  # reference shown first, m = reference
    assert ae.parse("switched", JudgeReply("m", lp)) == pytest.approx(1.8)  # model shown first, m = model
    # unnormalised log-probs: only the ratio of m and M matters
    assert ae.parse("unswitched", JudgeReply("M", {"m": -3.0, "M": -3.0})) == pytest.approx(1.5)
    # one token missing counts as -inf
    assert ae.parse("unswitched", JudgeReply("M", {"M": -0.01, "Both": -5.0})) == 2.0
    assert ae.parse("switched", JudgeReply("M", {"M": -0.01})) == 1.0
    assert ae.parse("unswitched", JudgeReply("m", {"m": -0.2})) == 1.0
    # both missing, or no log-probs at all: no verdict
    assert ae.parse("unswitched", JudgeReply("The", {"The": -0.1, "Based": -2.0})) is None
    assert ae.parse("unswitched", JudgeReply("m", None)) is None
    with pytest.raises(ValueError):
        ae.parse("game1", JudgeReply("m", lp))


def test_build_requests_uses_wheel_prompt_and_coin():
    templates = ae.load_templates(BENCH)
    assert "m or M" in templates["prompt_template"]
    # find one instruction of each coin side so both orders are exercised
    sides = {}
    for i in range(50):
        sides.setdefault(ae.is_switched(f"instruction {i}"), f"instruction {i}")
    assert set(sides) == {False, True}
    for switched, instruction in sides.items():
        q = _q(instruction=instruction, ref="REFERENCE OUTPUT")
        [(game, req)] = ae.build_requests(q, _ans("MODEL OUTPUT"), None, BENCH, templates)
        assert game == ("switched" if switched else "unswitched")
        assert req.decoding == {"temperature": 1.0, "max_tokens": 1, "logprobs": True, "top_logprobs": 5}
        assert [m["role"] for m in req.messages] == ["system", "user"]
        user = req.messages[1]["content"]
        first, second = ("MODEL OUTPUT", "REFERENCE OUTPUT") if switched else ("REFERENCE OUTPUT", "MODEL OUTPUT")
        assert user.index(first) < user.index(second) and instruction in user
        assert req.fields == {"kind": "preference", "question": instruction, "answer_a": first, "answer_b": second}


def test_identical_outputs_are_a_draw_without_judging():
    q = _q(ref="Same.")
    assert ae.build_requests(q, _ans("Same."), None, BENCH, None) == []
    rec = ae.make_record(q, _ans("Same."), None, BENCH, "verifier", {}, {})
    assert rec["preference"] == 1.5 and rec["raw_completion"] is None


def test_make_record_and_score_with_failures(tmp_path):
    records = []
    prefs = [2.0, 1.0, 1.75, None, 1.5]
    for i, p in enumerate(prefs):
        q = _q(i, instruction=f"instruction {i}", ref="r" * 10)
        game = "switched" if ae.is_switched(q["turns"][0]) else "unswitched"
        verdicts = {} if p is None else {game: p}
        replies = {game: JudgeReply("m", {"m": -1.0})}
        records.append(ae.make_record(q, _ans("a" * (10 + i), qid=str(i)), None, BENCH, "j", verdicts, replies))
    assert records[0]["generator_1"] == "gpt4_1106_preview" and records[0]["output_1"] == "r" * 10
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(records))
    s = ae.score(ae.read_judgments(path), length_controlled=False)
    assert s["n_failed"] == 1 and s["n_total"] == 4
    assert s["win_rate"] == pytest.approx(100 * (1 + 0 + 0.75 + 0.5) / 4)
    assert (s["n_wins"], s["n_wins_base"], s["n_draws"]) == (2, 1, 1)
    assert s["discrete_win_rate"] == pytest.approx(100 * (2 + 0.5) / 4)
    assert s["standard_error"] == pytest.approx(100 * pd.Series([1, 0, 0.75, 0.5]).sem())
    assert s["avg_length"] == int(np.mean([10, 11, 12, 13, 14]))
    assert s["length_controlled_winrate"] is None and "disabled" in s["length_controlled_reason"]


def test_length_controlled_path_runs_alpaca_evals_glm_on_local_files(tmp_path):
    """Plumbing only (the real df_gamed.csv is not available offline): a local df_gamed.csv in lc_dir is
    fed to alpaca_eval's GLM instead of its hub download, and its output is returned."""
    rng = np.random.default_rng(0)
    n = 60
    gamed = []
    for model in ("gamed_concise", "gamed_verbose"):
        for i in range(n):
            gamed.append({"model": model, "index": i, "preference": float(rng.uniform(0.05, 0.95)),
                          "std_delta_len": float(rng.normal()), "instruction_difficulty": float(rng.normal()),
                          "not_gamed_baseline": False})
    pd.DataFrame(gamed).to_csv(tmp_path / "df_gamed.csv", index=False)
    records = []
    for i in range(n):
        q = _q(i, instruction=f"instruction {i}", ref="r" * int(rng.integers(5, 50)))
        p = float(rng.uniform(1.05, 1.95))
        game = "switched" if ae.is_switched(q["turns"][0]) else "unswitched"
        records.append(ae.make_record(q, _ans("a" * int(rng.integers(5, 50)), qid=str(i)), None, BENCH, "j",
                                      {game: p}, {}))
    s = ae.score(records, lc_dir=tmp_path)
    assert "length_controlled_reason" not in s
    assert 0 < s["length_controlled_winrate"] < 100


def test_read_judgments_rejects_malformed(tmp_path):
    bad = tmp_path / "annotations.json"
    bad.write_text(json.dumps([{"instruction": "x", "output_1": "a"}]))
    with pytest.raises(DataError, match=r"annotations.json: record 0 lacks"):
        ae.read_judgments(bad, fmt="alpaca_eval")
    bad.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError, match="JSON list"):
        ae.read_judgments(bad, fmt="alpaca_eval")
    with pytest.raises(DataError, match="unknown judgment format"):
        ae.read_judgments(bad, fmt="arena_hard")


def test_tiny_bench_with_verifier_judge():
    from reproduce.judges.verifier import VerifierJudge

    judge = VerifierJudge("verifier", {"kind": "verifier", "task": "addition"})
    q = {"question_id": "addition-0000", "category": "math", "turns": ["12+34="], "reference": ["40"]}
    ref = {"question_id": "addition-0000", "model": "demonstrator", "turns": ["40"]}
    [(game, req)] = ae.build_requests(q, _ans("46"), ref, BENCH, None)
    assert req.messages is None
    reply = asyncio.run(judge.complete(req))
    pref = ae.parse(game, reply)
    assert pref == 2.0  # the model's correct answer beats the wrong reference, whichever order was shown
    rec = ae.make_record(q, _ans("46"), ref, BENCH, "verifier", {game: pref}, {game: reply})
    assert rec["generator_1"] == "demonstrator" and rec["preference"] == 2.0
