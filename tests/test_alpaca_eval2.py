"""AlpacaEval 2 protocol: real annotations reproduce the published leaderboard; coin, log-prob parsing, requests."""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import official_file
from reproduce.benchmarks import alpaca_eval2 as ae
from reproduce.io import DataError
from reproduce.judges.base import JudgeReply
from reproduce.official import load_manifest

ROOT = Path(__file__).resolve().parent.parent
LEADERBOARD = (importlib.resources.files("alpaca_eval") / "leaderboards" / "data_AlpacaEval_2"
               / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv")
# the published annotation files pinned in evals/official/alpaca_eval_annotations.yaml
ANNOTATIONS = load_manifest("alpaca_eval_annotations")
FIXTURE_MODELS = sorted(ANNOTATIONS, key=str.lower)


def annotations(model: str) -> Path:
    """The real AlpacaEval 2 annotations of ``model`` (fetched like every official file)."""
    return official_file(ANNOTATIONS[model]["path"])

BENCH = {"protocol": "alpaca_eval2", "questions": {"files": {}}, "judging": {}}


def _q(i=0, instruction="Name a colour.", ref="Blue."):
    return {"question_id": str(i), "category": "helpful_base", "turns": [instruction], "reference": [ref],
            "reference_generator": "gpt4_1106_preview"}


def _ans(text, model="my-model", qid="0"):
    return {"question_id": qid, "model": model, "turns": [text]}


@pytest.mark.slow
@pytest.mark.parametrize("model", FIXTURE_MODELS)
def test_real_annotations_reproduce_published_leaderboard(model, monkeypatch):
    monkeypatch.delenv("REPRODUCE_ALPACA_EVAL_LC_DIR", raising=False)
    monkeypatch.delenv("REPRODUCE_ALPACA_EVAL_HF_REVISION", raising=False)
    board = pd.read_csv(LEADERBOARD, index_col=0)
    assert model in board.index, f"{model} not on the leaderboard shipped with alpaca-eval"
    row = board.loc[model]
    s = ae.score(ae.read_judgments(annotations(model), fmt="alpaca_eval"))
    assert s["win_rate"] == pytest.approx(row["win_rate"], abs=1e-3)
    assert s["standard_error"] == pytest.approx(row["standard_error"], abs=1e-3)
    assert s["discrete_win_rate"] == pytest.approx(row["discrete_win_rate"], abs=1e-3)
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total", "avg_length"):
        assert s[key] == int(row[key]), key
    assert (s["n_expected"], s["n_judged"], s["n_failed"], s["complete"]) == (805, 805, 0, True)
    # df_gamed.csv is not available offline: no LC number is invented, a reason is given instead
    assert s["length_controlled_winrate"] is None and "df_gamed.csv" in s["length_controlled_reason"]
    # without LC the rank is by raw win rate: the model's own place on the shipped board
    others = board.drop(index=model)
    rank = ae.leaderboard_rank(s)
    assert rank["by"] == "win_rate" and rank["of"] == len(board)
    assert rank["rank"] == 1 + int((others["win_rate"] > row["win_rate"]).sum())


@pytest.mark.slow
def test_order_coin_and_logprob_parser_reproduce_every_official_preference():
    """For every judged row: our coin picks the game the official annotator played, and parsing its
    raw top log-probs gives exactly the stored preference."""
    checked = 0
    for model in FIXTURE_MODELS:
        for row in json.loads((annotations(model)).read_text()):
            raw = row.get("raw_completion")
            if not raw or not raw.get("logprobs"):
                continue  # not judged (identical outputs -> 1.5) or no raw completion kept
            top = {t["token"]: t["logprob"] for t in raw["logprobs"]["content"][0]["top_logprobs"]}
            game = "switched" if ae.is_switched(row["instruction"]) else "unswitched"
            got = ae.parse(game, JudgeReply(text=raw.get("text"), top_logprobs=top))
            assert got == pytest.approx(float(row["preference"]), abs=1e-9), (model, row["instruction"][:40])
            checked += 1
    assert checked > 3000


def test_order_coin_is_alpaca_evals_own_switch_processor():
    """The coin of alpaca_eval's own annotator (weighted_alpaca_eval_gpt4_turbo from the wheel, seed 0: its
    RandomSwitchTwoColumnsProcessor) on the first official instructions picks the order we show the judge."""
    import yaml
    from alpaca_eval.annotators.pairwise_evaluator import SinglePairwiseAnnotator

    configs = importlib.resources.files("alpaca_eval") / "evaluators_configs"
    cfg = yaml.safe_load((configs / ae.ALPACA_ANNOTATOR / "configs.yaml").read_text())[ae.ALPACA_ANNOTATOR]
    annotator = SinglePairwiseAnnotator(base_dir=str(configs), seed=0, **cfg)
    [switch] = [p for p in annotator.processors if type(p).__name__ == "RandomSwitchTwoColumnsProcessor"]
    official = official_file("alpaca_eval/gpt4_1106_preview_model_outputs.json")
    instructions = [r["instruction"] for r in json.loads(official.read_text())[:60]]
    frame = pd.DataFrame([{"instruction": i, "output_1": "REFERENCE", "output_2": "MODEL"} for i in instructions])
    shown = switch.preprocess(frame.copy())
    assert 0 < shown["is_switched_outputs"].sum() < len(instructions) or len(instructions) < 10
    templates = ae.load_templates(BENCH)
    for i, instruction in enumerate(instructions):
        [(game, req)] = ae.build_requests(_q(i, instruction, ref="REFERENCE"), _ans("MODEL", qid=str(i)), None,
                                          BENCH, templates)
        assert game == ("switched" if shown["is_switched_outputs"][i] else "unswitched"), instruction[:40]
        assert req.fields["answer_a"] == shown["output_1"][i] and req.fields["answer_b"] == shown["output_2"][i]


def test_logprob_parsing_is_alpaca_evals_logprob_parser():
    """Our preference is alpaca_eval's logprob_parser on the completion the judge returned."""
    from alpaca_eval.completion_parsers import logprob_parser

    for top in ({"m": -0.3, "M": -1.4, "The": -5.0}, {"M": -0.01, "Both": -6.0}, {"m": -2.0, "M": -2.0}):
        completion = {"logprobs": {"content": [{"top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()]}]}}
        (want,) = logprob_parser(completion, numerator_token="m", denominator_tokens=["m", "M"], is_binarize=False)
        assert ae.preference_from_logprobs(top) == want


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
    assert (s["n_expected"], s["n_judged"], s["complete"]) == (5, 4, False)
    assert s["win_rate"] == pytest.approx(100 * (1 + 0 + 0.75 + 0.5) / 4)
    assert (s["n_wins"], s["n_wins_base"], s["n_draws"]) == (2, 1, 1)
    assert s["discrete_win_rate"] == pytest.approx(100 * (2 + 0.5) / 4)
    assert s["standard_error"] == pytest.approx(100 * pd.Series([1, 0, 0.75, 0.5]).sem())
    assert s["avg_length"] == int(np.mean([10, 11, 12, 13, 14]))
    assert s["length_controlled_winrate"] is None and "disabled" in s["length_controlled_reason"]


def _lc_case(tmp_path, n=60):
    """A synthetic df_gamed.csv in ``tmp_path`` (the real one is not available offline) and ``n`` judged records
    of one model, seeded; returns the records in instruction order."""
    rng = np.random.default_rng(0)
    gamed = []
    for model in ("gamed_concise", "gamed_verbose"):
        for i in range(n):
            gamed.append({"model": model, "index": i, "preference": float(rng.uniform(0.05, 0.95)),
                          "std_delta_len": float(rng.normal()), "instruction_difficulty": float(rng.normal()),
                          "not_gamed_baseline": False})
    pd.DataFrame(gamed).to_csv(tmp_path / "df_gamed.csv", index=False)
    records = []
    for i in range(n):
        ref_len, own_len = int(rng.integers(5, 50)), int(rng.integers(5, 50))
        # the judge favours the longer answer, and the model a little overall: the GLM has something to
        # correct, so LC differs from the raw win rate (with uniform noise it is exactly 50)
        p = float(np.clip(1.6 + 0.3 * np.tanh((own_len - ref_len) / 15) + rng.normal(0, 0.1), 1.0, 2.0))
        q = _q(i, instruction=f"instruction {i}", ref="r" * ref_len)
        game = "switched" if ae.is_switched(q["turns"][0]) else "unswitched"
        records.append(ae.make_record(q, _ans("a" * own_len, qid=str(i)), None, BENCH, "j", {game: p}, {}))
    return records


def test_length_controlled_path_runs_alpaca_evals_glm_on_local_files(tmp_path):
    """The LC we report equals, to the last bit, alpaca_eval's own get_length_controlled_winrate on the same
    annotations indexed by instruction position (records given out of order, so a positional index would
    change the number); failed games (no preference) are in the frame as NaN, which the GLM drops itself."""
    records = _lc_case(tmp_path)
    n = len(records)
    for i in (3, 17, 40):
        records[i]["preference"] = None
    order = list(np.random.default_rng(1).permutation(n))
    s = ae.score([records[i] for i in order], lc_dir=tmp_path)
    assert "length_controlled_reason" not in s
    from unittest import mock

    from alpaca_eval.metrics import glm_winrate

    frame = pd.DataFrame(records)
    frame.index = range(n)  # instruction i is row i of the official file, as df_gamed.csv indexes it
    frame["preference"] = frame["preference"].astype(float)
    with mock.patch.object(glm_winrate, "hf_hub_download", lambda *a, filename=None, **k: str(tmp_path / filename)):
        want = glm_winrate.get_length_controlled_winrate(frame, save_weights_dir=None, is_add_glm_preference_inplace=False)
    assert s["length_controlled_winrate"] == want["length_controlled_winrate"]
    assert s["lc_standard_error"] == want["lc_standard_error"]
    assert s["n_failed"] == 3 and not s["complete"]
    assert abs(s["length_controlled_winrate"] - s["win_rate"]) > 1  # the length correction moved the number


@pytest.mark.parametrize("judging, option, computed", [
    ({}, None, True),  # LC is on unless switched off
    ({"length_controlled": True}, None, True),
    ({"length_controlled": False}, None, False),  # the benchmark file switches it off
    ({"length_controlled": False}, True, True),  # an explicit option wins over the benchmark file
    ({"length_controlled": True}, False, False),
    ({}, False, False),
])
def test_length_control_switch_bench_and_option(tmp_path, judging, option, computed):
    """``judging.length_controlled`` (default on) decides whether the GLM runs; the ``length_controlled``
    option overrides it; the LC files are there in every case, so only the switch decides."""
    records = _lc_case(tmp_path, n=30)
    options = {} if option is None else {"length_controlled": option}
    s = ae.score(records, {**BENCH, "judging": judging}, lc_dir=tmp_path, **options)
    if computed:
        assert s["length_controlled_winrate"] is not None and "length_controlled_reason" not in s
    else:
        assert s["length_controlled_winrate"] is None and s["lc_standard_error"] is None
        assert s["length_controlled_reason"] == "length control disabled (judging.length_controlled: false)"


def test_read_judgments_rejects_malformed(tmp_path):
    bad = tmp_path / "annotations.json"
    bad.write_text(json.dumps([{"instruction": "x", "output_1": "a"}]))
    with pytest.raises(DataError, match=r"annotations.json: record 0: lacks"):
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


def test_nan_preferences_are_failed_games_and_the_score_says_so(tmp_path, caplog):
    import logging

    records = []
    for i, p in enumerate([2.0, float("nan"), 1.0, float("nan"), 1.25]):
        q = _q(i, instruction=f"instruction {i}", ref="r" * 10)
        rec = ae.make_record(q, _ans("a" * 12, qid=str(i)), None, BENCH, "j", {}, {})
        records.append({**rec, "preference": p})
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(records))  # json writes NaN, as pandas' to_json of alpaca_eval's frame does
    with caplog.at_level(logging.WARNING, logger="reproduce.benchmarks.alpaca_eval2"):
        rows = ae.read_judgments(path, fmt="alpaca_eval")
    assert f"{path}: 2 record(s) have no preference (NaN" in caplog.text
    s = ae.score(rows, length_controlled=False)
    assert (s["n_expected"], s["n_judged"], s["n_failed"], s["complete"]) == (5, 3, 2, False)
    assert s["win_rate"] == pytest.approx(100 * (1 + 0 + 0.25) / 3)
    line = ae.summary_line(s)
    assert "INCOMPLETE: 3/5 games judged" in line and f"WR {s['win_rate']:6.2f}" in line


@pytest.mark.slow
def test_score_command_prints_the_leaderboard_line(tmp_path):
    import subprocess
    import sys

    model = FIXTURE_MODELS[0]
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "score", "--benchmark", "alpaca_eval2", "--format",
                          "alpaca_eval", "--judgments", str(annotations(model))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    row = pd.read_csv(LEADERBOARD, index_col=0).loc[model]
    line = out.stdout.strip()
    assert line.startswith(model) and f"WR {row['win_rate']:6.2f}" in line and f"n {int(row['n_total'])}" in line
    assert f"avg length {int(row['avg_length'])}" in line and "LC    n/a" in line
    assert re.search(r"rank \d+ of \d+ by WR on the AlpacaEval 2 leaderboard", line)
