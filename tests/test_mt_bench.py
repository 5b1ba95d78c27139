"""MT-Bench protocol: FastChat single and pairwise scoring on hand-checkable records and against FastChat
0.2.36's own show_result.py, parsing, requests, files."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import official_file
from reproduce.benchmarks import mt_bench as mt
from reproduce.io import DataError
from reproduce.judges.base import JudgeReply
from reproduce.official import benchmark_files

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = benchmark_files("mt_bench")["judge_prompts"]  # the pinned official FastChat judge prompts


def _bench(modes=("single",)):
    return {"protocol": "mt_bench", "questions": {"files": {"judge_prompts": PROMPTS}},
            "judging": {"modes": list(modes)}}


def _rec(qid, singles=(), pairs=(), model="m"):
    return {"question_id": qid, "model": model, "judge": "j", "category": "writing",
            "single": [{"turn": t, "score": s} for t, s in singles],
            "pairwise": [{"turn": t, "baseline": "gpt-3.5-turbo", "g1_winner": a, "g2_winner": b} for t, a, b in pairs]}


def test_single_scores_pool_valid_ratings():
    recs = [_rec("81", [(1, 8.0), (2, 6.0)]), _rec("82", [(1, 10.0), (2, None)]), _rec("83", [(1, 3.0), (2, 5.0)])]
    s = mt.score(recs)
    assert s["score_turn1"] == pytest.approx((8 + 10 + 3) / 3)
    assert s["score_turn2"] == pytest.approx((6 + 5) / 2)
    assert s["score"] == pytest.approx((8 + 6 + 10 + 3 + 5) / 5)  # FastChat pools both turns, not the two means
    assert s["n_failed_ratings"] == 1 and s["n_ratings"] == 5
    assert (s["n_expected"], s["n_judged"], s["n_failed"], s["complete"]) == (6, 5, 1, False)
    assert "win_rate" not in s


def test_single_turn_only_has_no_turn2_score():
    s = mt.score([_rec("1", [(1, 7.0)]), _rec("2", [(1, 9.0)])])
    assert s["score"] == 8.0 and s["score_turn1"] == 8.0 and s["score_turn2"] is None


def test_pairwise_wins_only_when_both_orders_agree():
    recs = [_rec("81", pairs=[(1, "model_1", "model_1"), (2, "model_1", "model_2")]),  # win, disagree -> tie
            _rec("82", pairs=[(1, "model_2", "model_2"), (2, "tie", "tie")]),  # loss, tie
            _rec("83", pairs=[(1, "tie", "model_1"), (2, None, "model_1")]),  # tie, failed game -> dropped
            _rec("84", pairs=[(1, "model_1", "model_1"), (2, "model_1", "model_1")])]  # win, win
    s = mt.score(recs)
    assert (s["wins"], s["losses"], s["ties"], s["n_pairs"], s["n_failed_pairwise"]) == (3, 1, 3, 7, 1)
    assert s["win_rate"] == pytest.approx(100 * 3 / 7)
    assert s["win_rate_adjusted"] == pytest.approx(100 * (3 + 1.5) / 7)
    assert s["score"] is None and s["baseline"] == "gpt-3.5-turbo"
    # games: 8 rows x 2; one game failed. The win rate counts rows: 7 of 8 usable
    assert (s["n_expected"], s["n_failed"]) == (16, 1)
    assert s["coverage"]["win_rate"] == {"n_expected": 8, "n_judged": 7, "n_failed": 1, "complete": False}


def test_score_rejects_mixed_models():
    with pytest.raises(DataError, match="several models"):
        mt.score([_rec("1", [(1, 7.0)]), _rec("1", [(1, 7.0)], model="other")])
    assert mt.score([_rec("1", [(1, 7.0)]), _rec("1", [(1, 3.0)], model="other")], model="other")["score"] == 3.0


@pytest.mark.parametrize("text, rating", [
    ("The answer is fine. Rating: [[8]]", 8.0),
    ("Rating: [[7.5]] ... later [[3]]", 7.5),  # FastChat takes the first match
    ("Rating: [9]", 9.0),  # single-bracket fallback
    ("Rating: [[10]]", 10.0),
    ("Rating: [[0]]", 0.0),  # outside 1..10, kept as FastChat keeps it
    ("Rating: [[11]]", 11.0),
    ("Rating: 8/10", None),
    (None, None),
])
def test_parse_rating(text, rating):
    assert mt.parse("single-t1", JudgeReply(text)) == rating
    assert mt.parse("single-t2", JudgeReply(text)) == rating


@pytest.mark.parametrize("text, verdict", [
    ("[[A]]", "A"), ("final: [[B]]", "B"), ("[[C]]", "tie"),
    ("[[B]] but [[A]]", "A"),  # FastChat checks A, then B, then C
    ("[A]", None), ("", None),
])
def test_parse_pair(text, verdict):
    assert mt.parse("pair-t1-g1", JudgeReply(text)) == verdict


def test_make_record_maps_game_orders():
    q = {"question_id": "81", "category": "writing", "turns": ["Q1", "Q2"], "reference": None}
    a = {"question_id": "81", "model": "m", "turns": ["A1", "A2"]}
    b = {"question_id": "81", "model": "gpt-3.5-turbo", "turns": ["B1", "B2"]}
    verdicts = {"single-t1": 8.0, "pair-t1-g1": "A", "pair-t1-g2": "B", "pair-t2-g1": "B", "pair-t2-g2": "tie"}
    rec = mt.make_record(q, a, b, _bench(("single", "pairwise")), "gpt-4", verdicts, {"single-t1": JudgeReply("[[8]]")})
    assert rec["single"] == [{"turn": 1, "prompt": "single-v1", "score": 8.0, "judgment": "[[8]]"},
                             {"turn": 2, "prompt": "single-v1-multi-turn", "score": None, "judgment": None}]
    p1, p2 = rec["pairwise"]
    # game 1: A = model; game 2: A = baseline
    assert (p1["g1_winner"], p1["g2_winner"]) == ("model_1", "model_1")
    assert (p2["g1_winner"], p2["g2_winner"]) == ("model_2", "tie")
    s = mt.score([rec])
    assert (s["score"], s["n_failed"], s["wins"], s["ties"]) == (8.0, 1, 1, 1)


def test_build_requests_with_official_prompts():
    bench = _bench(("single", "pairwise"))
    official_file(PROMPTS["path"])  # present (mirror or cache) or the test fails saying why
    templates = mt.load_templates(bench)
    q = {"question_id": "111", "category": "math", "turns": ["MATH Q1", "MATH Q2"], "reference": ["REF1", "REF2"]}
    a = {"question_id": "111", "model": "m", "turns": ["MODEL1", "MODEL2"]}
    b = {"question_id": "111", "model": "gpt-3.5-turbo", "turns": ["BASE1", "BASE2"]}
    games = dict(mt.build_requests(q, a, b, bench, templates))
    assert list(games) == ["single-t1", "pair-t1-g1", "pair-t1-g2", "single-t2", "pair-t2-g1", "pair-t2-g2"]
    s1 = games["single-t1"]
    assert s1.messages[0] == {"role": "system", "content": templates["single-math-v1"]["system_prompt"]}
    user = s1.messages[1]["content"]
    assert "MATH Q1" in user and "REF1" in user and "MODEL1" in user and "MATH Q2" not in user
    assert s1.fields == {"kind": "rating", "question": "MATH Q1", "answer": "MODEL1", "turn": 1, "reference": "REF1"}
    assert s1.decoding == {"temperature": 0.0, "max_tokens": 2048}
    s2 = games["single-t2"].messages[1]["content"]
    assert all(x in s2 for x in ("MATH Q1", "MATH Q2", "MODEL1", "MODEL2", "REF1", "REF2"))
    g1, g2 = games["pair-t2-g1"].messages[1]["content"], games["pair-t2-g2"].messages[1]["content"]
    assert g1.index("MODEL2") < g1.index("BASE2") and g2.index("BASE2") < g2.index("MODEL2")
    assert games["pair-t1-g2"].fields["answer_a"] == "BASE1" and games["pair-t1-g2"].fields["verdicts"] == "abc"
    # a writing question uses the general prompts and no reference
    w = {"question_id": "81", "category": "writing", "turns": ["W1", "W2"], "reference": None}
    single = dict(mt.build_requests(w, a, None, _bench(), templates))
    assert list(single) == ["single-t1", "single-t2"]
    assert single["single-t1"].messages[1]["content"] == templates["single-v1"]["prompt_template"].format(
        question="W1", answer="MODEL1")


def test_read_fastchat_judgments(tmp_path):
    rows = [
        {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "user_prompt": "u", "judgment": "[[9]]",
         "score": 9, "turn": 1, "tstamp": 1.0},
        {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1-multi-turn"], "user_prompt": "u",
         "judgment": "none", "score": -1, "turn": 2, "tstamp": 1.0},
        {"question_id": 82, "model": "m", "judge": ["gpt-4", "single-v1"], "user_prompt": "u", "judgment": "[[6.5]]",
         "score": 6.5, "turn": 1, "tstamp": 1.0},
        {"question_id": 82, "model": "m", "judge": ["gpt-4", "single-v1-multi-turn"], "user_prompt": "u",
         "judgment": "[[4]]", "score": 4, "turn": 2, "tstamp": 1.0},
        {"question_id": 81, "model": "other", "judge": ["gpt-4", "single-v1"], "user_prompt": "u", "judgment": "[[2]]",
         "score": 2, "turn": 1, "tstamp": 1.0},
        {"question_id": 81, "model_1": "m", "model_2": "gpt-3.5-turbo", "g1_winner": "model_1", "g2_winner": "model_1",
         "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "u", "g1_judgment": "[[A]]", "g2_user_prompt": "u",
         "g2_judgment": "[[B]]", "turn": 1, "tstamp": 1.0},
        {"question_id": 82, "model_1": "m", "model_2": "gpt-3.5-turbo", "g1_winner": "error", "g2_winner": "tie",
         "judge": ["gpt-4", "pair-v2"], "g1_user_prompt": "u", "g1_judgment": "?", "g2_user_prompt": "u",
         "g2_judgment": "[[C]]", "turn": 1, "tstamp": 1.0},
    ]
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs = mt.read_judgments(path, fmt="fastchat")
    # a pairwise row counts for both its models (the baseline's copy sees the winners swapped)
    assert [(r["model"], r["question_id"]) for r in recs] == [("m", "81"), ("m", "82"), ("other", "81"),
                                                              ("gpt-3.5-turbo", "81"), ("gpt-3.5-turbo", "82")]
    assert recs[0]["judge"] == "gpt-4" and recs[0]["single"][1]["score"] is None
    assert recs[1]["pairwise"][0]["g1_winner"] is None and recs[1]["pairwise"][0]["g2_winner"] == "tie"
    assert recs[3]["pairwise"][0] | {"g1_judgment": None} == {
        "turn": 1, "prompt": "pair-v2", "baseline": "m", "g1_winner": "model_2", "g2_winner": "model_2",
        "g1_judgment": None, "g2_judgment": "[[B]]"}
    s = mt.score(recs, model="m")
    assert s["score"] == pytest.approx((9 + 6.5 + 4) / 3)
    assert (s["score_turn1"], s["score_turn2"], s["n_failed_ratings"], s["n_failed"]) == (pytest.approx(7.75), 4.0, 1, 2)
    assert (s["wins"], s["losses"], s["ties"], s["n_failed_pairwise"], s["win_rate"]) == (1, 0, 0, 1, 100.0)
    assert mt.score(recs, model="gpt-3.5-turbo")["losses"] == 1
    # native round trip
    native = tmp_path / "native.json"
    native.write_text(json.dumps(recs))
    def bare(rs):
        return [{k: v for k, v in r.items() if k != "_where"} for r in rs]

    assert bare(mt.read_judgments(native)) == bare(recs)


@pytest.mark.parametrize("row, match", [
    ({"question_id": 1, "something": 2}, "neither a FastChat single"),
])
def test_read_fastchat_rejects_malformed(tmp_path, row, match):
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps({"question_id": 0, "model": "m", "score": 5, "turn": 1}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=rf"j.jsonl:2: {match}"):
        mt.read_judgments(path, fmt="fastchat")


def test_tiny_bench_with_verifier_judge():
    from reproduce.judges.verifier import VerifierJudge

    tiny = {"protocol": "mt_bench", "questions": {"task": "addition", "files": {}},
            "judging": {"modes": ["single", "pairwise"]}}
    assert mt.load_templates(tiny) is None
    judge = VerifierJudge("verifier", {"kind": "verifier", "task": "addition"})
    q = {"question_id": "t0", "category": "math", "turns": ["12+34="], "reference": ["46"]}
    a = {"question_id": "t0", "model": "m", "turns": ["46"]}
    b = {"question_id": "t0", "model": "demonstrator", "turns": ["36"]}
    verdicts, replies = {}, {}
    for game, req in mt.build_requests(q, a, b, tiny, None):
        replies[game] = asyncio.run(judge.complete(req))
        verdicts[game] = mt.parse(game, replies[game])
    assert set(verdicts) == {"single-t1", "pair-t1-g1", "pair-t1-g2"}
    assert verdicts["pair-t1-g1"] == "A" and verdicts["pair-t1-g2"] == "B"  # the model wins in both orders
    rec = mt.make_record(q, a, b, tiny, "verifier", verdicts, replies)
    s = mt.score([rec])
    assert s["wins"] == 1 and s["score"] == verdicts["single-t1"] and 1 <= s["score"] <= 10


def test_fastchat_file_with_two_judges_is_refused(tmp_path):
    rows = [{"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 9, "turn": 1},
            {"question_id": 82, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 8, "turn": 1},
            {"question_id": 81, "model": "m", "judge": ["gpt-4o", "single-v1"], "score": 5, "turn": 1}]
    path = tmp_path / "gpt-4_single.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"gpt-4_single.jsonl: judgments by more than one judge model: 'gpt-4' "
                                        r"\(first on line 1\), 'gpt-4o' \(first on line 3\)"):
        mt.read_judgments(path, fmt="fastchat")


# ----- FastChat 0.2.36's show_result.py on the same multi-model files -----

MODELS = ("alpha-7b", "beta-13b", "gamma-70b")
BASELINE = "gpt-3.5-turbo"


def _fastchat_files(tmp_path) -> tuple[Path, Path]:
    """Seeded FastChat single and pairwise judgment files of three models (plus the baseline's own
    ratings), with failed judgments (-1, "error"), ties, disagreeing orders, ratings outside 1..10 and
    rows with the baseline as model_1."""
    rng = random.Random(36)
    single, pair = [], []
    for qid in range(81, 101):
        for model in MODELS + (BASELINE,):
            for turn in (1, 2):
                score = rng.choice([-1, 0, 11] + [rng.randint(1, 10)] * 8 + [rng.randint(1, 10) + 0.5])
                single.append({"question_id": qid, "model": model, "judge": ["gpt-4", "single-v1" + ("-multi-turn" if turn == 2 else "")],
                               "user_prompt": "u", "judgment": f"Rating: [[{score}]]", "score": score, "turn": turn,
                               "tstamp": 1.0})
        for model in MODELS:
            for turn in (1, 2):
                g1, g2 = (rng.choice(["model_1", "model_2", "tie", "error"] + ["model_1", "model_2"] * 2) for _ in "xy")
                m1, m2 = (model, BASELINE) if rng.random() < 0.8 else (BASELINE, model)
                pair.append({"question_id": qid, "model_1": m1, "model_2": m2, "g1_winner": g1, "g2_winner": g2,
                             "judge": ["gpt-4", "pair-v2" + ("-multi-turn" if turn == 2 else "")], "g1_user_prompt": "u",
                             "g1_judgment": "j", "g2_user_prompt": "u", "g2_judgment": "j", "turn": turn, "tstamp": 1.0})
    paths = tmp_path / "gpt-4_single.jsonl", tmp_path / "gpt-4_pair.jsonl"
    for path, rows in zip(paths, (single, pair)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def _show_result(*args: str) -> str:
    """FastChat 0.2.36's own show_result.py, run from the installed fschat package."""
    import fastchat  # the pinned reference (requirements/test.txt); its absence is a broken test environment

    assert fastchat.__version__ == "0.2.36", fastchat.__version__
    out = subprocess.run([sys.executable, "-m", "fastchat.llm_judge.show_result", *args], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _our_score(path: Path, model: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "score", "--benchmark", "mt_bench", "--format",
                          "fastchat", "--judgments", str(path), "--model", model, "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _sections(text: str) -> dict[str, list[list[str]]]:
    """show_result's printed tables, split by their '##### name #####' headers, as rows of fields."""
    parts = re.split(r"#+ (.+?) #+", text)
    return {name: [line.split() for line in body.strip().splitlines()[2:] if line.strip()]
            for name, body in zip(parts[1::2], parts[2::2])}


def test_single_scores_equal_fastchat_show_result(tmp_path):
    single, _ = _fastchat_files(tmp_path)
    tables = _sections(_show_result("--mode", "single", "--input-file", str(single)))
    theirs = {"score_turn1": {r[0]: float(r[2]) for r in tables["First turn"]},
              "score_turn2": {r[0]: float(r[2]) for r in tables["Second turn"]},
              "score": {r[0]: float(r[1]) for r in tables["Average"]}}
    assert set(theirs["score"]) == set(MODELS) | {BASELINE}
    for model in MODELS + (BASELINE,):
        ours = _our_score(single, model)
        for key, by_model in theirs.items():
            assert ours[key] == pytest.approx(by_model[model], abs=5e-7), (model, key)  # show_result prints 6 decimals
        assert ours["n_out_of_range"] > 0  # the 0s and 11s were kept as ratings, as FastChat keeps them


def test_pairwise_win_rates_equal_fastchat_show_result(tmp_path):
    _, pair = _fastchat_files(tmp_path)
    out = _show_result("--mode", "pairwise-baseline", "--input-file", str(pair), "--baseline-model", BASELINE)
    header = next(line.split() for line in out.splitlines() if "win_rate_adjusted" in line)
    rows = {line.split()[0]: dict(zip(header, map(float, line.split()[1:]))) for line in out.splitlines()
            if line.split() and line.split()[0] in MODELS}
    assert set(rows) == set(MODELS)
    for model in MODELS:
        ours = _our_score(pair, model)
        assert (ours["wins"], ours["losses"], ours["ties"]) == (rows[model]["win"], rows[model]["loss"], rows[model]["tie"])
        assert ours["win_rate"] == pytest.approx(100 * rows[model]["win_rate"], abs=5e-5)
        assert ours["win_rate_adjusted"] == pytest.approx(100 * rows[model]["win_rate_adjusted"], abs=5e-5)
        assert ours["complete"] is False and ours["n_failed_pairwise"] > 0  # the "error" rows, dropped by both


def test_score_names_the_file_and_the_models_when_the_model_is_not_there(tmp_path):
    single, _ = _fastchat_files(tmp_path)
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "score", "--benchmark", "mt_bench", "--format",
                          "fastchat", "--judgments", str(single), "--model", "delta-1b", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: {single}: no judgments for model 'delta-1b' (models in the file: "
                                  f"{', '.join(MODELS + (BASELINE,))})")


def test_score_prints_one_line_per_model_of_a_fastchat_file(tmp_path):
    single, _ = _fastchat_files(tmp_path)
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "score", "--benchmark", "mt_bench", "--format",
                          "fastchat", "--judgments", str(single)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(MODELS + (BASELINE,))
    ours = _our_score(single, MODELS[0])
    assert f"score {ours['score']:.4f}" in lines[0] and "INCOMPLETE" in lines[0]  # its -1 ratings failed


def _mixed_records():
    """Three questions: ratings on and beyond the 1..10 edges plus one failed; pairwise games against two
    baselines b1, b2 with a win, a loss, a tie, a disagreement and failed games."""
    def pair(turn, baseline, g1, g2):
        return {"turn": turn, "baseline": baseline, "g1_winner": g1, "g2_winner": g2}

    def rec(qid, singles, pairs):
        return {"question_id": qid, "model": "m", "judge": "j", "category": "writing",
                "single": [{"turn": t, "score": s} for t, s in singles], "pairwise": pairs}

    return [rec("81", [(1, 1.0), (2, 10.0)], [pair(1, "b1", "model_1", "model_1"), pair(2, "b2", "model_2", "model_2")]),
            rec("82", [(1, 0.9), (2, None)], [pair(1, "b1", "tie", "model_1"), pair(2, "b2", None, None)]),
            rec("83", [(1, 10.5), (2, 5.0)], [pair(1, "b1", "model_1", None), pair(2, "b2", "model_1", "model_1")])]


def test_single_ratings_by_hand_with_range_edges():
    """1 and 10 are in FastChat's range, 0.9 and 10.5 are not (counted, still averaged as show_result does)."""
    s = mt.score(_mixed_records(), baseline="b1")
    assert s["score"] == pytest.approx((1 + 10 + 0.9 + 10.5 + 5) / 5)
    assert s["score_turn1"] == pytest.approx((1 + 0.9 + 10.5) / 3) and s["score_turn2"] == pytest.approx(7.5)
    assert (s["n_ratings"], s["n_failed_ratings"], s["n_out_of_range"]) == (5, 1, 2)
    assert s["coverage"]["score"] == {"n_expected": 6, "n_judged": 5, "n_failed": 1, "complete": False}


@pytest.mark.parametrize("options, want", [
    # b1: win; tie then model_1 (orders disagree: a tie); model_1 then failed (dropped, one failed game)
    ({"baseline": "b1"}, {"baseline": "b1", "wins": 1, "losses": 0, "ties": 1, "n_pairs": 2, "n_failed_pairwise": 1,
                          "win_rate": 50.0, "win_rate_adjusted": 75.0, "n_expected": 12, "n_failed": 1 + 1}),
    # b2: loss; both games failed; win
    ({"baseline": "b2"}, {"baseline": "b2", "wins": 1, "losses": 1, "ties": 0, "n_pairs": 2, "n_failed_pairwise": 1,
                          "win_rate": 50.0, "win_rate_adjusted": 50.0, "n_expected": 12, "n_failed": 1 + 2}),
    ({"all_opponents": True}, {"baseline": "all of b1, b2", "wins": 2, "losses": 1, "ties": 1, "n_pairs": 4,
                               "n_failed_pairwise": 2, "win_rate": 50.0, "win_rate_adjusted": 62.5,
                               "n_expected": 18, "n_failed": 1 + 3}),
])
def test_pairwise_by_hand_per_baseline_and_all_opponents(options, want):
    s = mt.score(_mixed_records(), **options)
    assert {k: s[k] for k in want} == want
    n_rows = 6 if options.get("all_opponents") else 3
    rows_used = {"n_expected": n_rows, "n_judged": want["n_pairs"], "n_failed": n_rows - want["n_pairs"],
                 "complete": False}
    assert s["coverage"]["win_rate"] == s["coverage"]["win_rate_adjusted"] == rows_used


def test_pairwise_against_two_baselines_needs_a_choice():
    with pytest.raises(DataError, match=r"several baselines \['b1', 'b2'\]; pass baseline="):
        mt.score(_mixed_records())
