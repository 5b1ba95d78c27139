"""Arena-Hard v0.1 protocol: golden numbers from the official show_result, verdict parsing, requests, files."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from conftest import official_file
from reproduce.benchmarks import arena_hard as ah
from reproduce.io import DataError
from reproduce.judges.base import JudgeReply
from reproduce.official import benchmark_files

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SYNTHETIC = DATA / "arena_hard_synthetic_judgments.jsonl"
JUDGE_CONFIG = benchmark_files("arena_hard")["judge_config"]  # the pinned official v0.1 judge config
BENCH = {"protocol": "arena_hard", "questions": {"files": {"judge_config": JUDGE_CONFIG}},
         "reference": {"kind": "model", "name": "gpt-4-0314"}, "judging": {"temperature": 0, "max_tokens": 4096}}

# Golden numbers. tests/data/arena_hard_synthetic_judgments.jsonl is synthetic (80 prompts, model
# "synthetic-model", judge "synthetic-judge"; labels drawn with random.Random(20240731), 5% of games
# without a verdict). It was copied to data/arena-hard-v0.1/model_judgment/synthetic-judge/synthetic-model.jsonl
# beside the OFFICIAL files of lmarena/arena-hard-auto at commit 0489bf3 (show_result.py, utils_math.py,
# utils.py; Python 3.11, numpy 1.26.4, pandas 2.2.2, scikit-learn 1.5.1) and run as
#     python show_result.py --judge-name synthetic-judge --baseline gpt-4-0314 --output [--first-game-only]
# which printed / wrote to leaderboard/*.csv (rounded to 2 decimals by the official get_win_rate_column):
#     all games:        score 53.39, rating_q025 47.44, rating_q975 58.69
#     --first-game-only: score 48.8,  rating_q025 41.56, rating_q975 57.01
# The unrounded values come from running the same official functions in the same order
# (get_battles_from_judgment -> compute_mle_elo -> get_bootstrap_result(..., 100, "gpt-4-0314") ->
# np.percentile 2.5 / 97.5 -> predict_win_rate against gpt-4-0314), which consumes numpy's global generator
# seeded with 42 exactly as the CLI does.
GOLDEN = {
    False: {"rounded": (53.39, 47.44, 58.69), "n_battles": 236,
            "exact": (53.38983041787348, 47.43625758708233, 58.68644067793164)},
    True: {"rounded": (48.8, 41.56, 57.01), "n_battles": 125,
           "exact": (48.80000000075946, 41.55778877833099, 57.010114007465695)},
}


@pytest.mark.slow
@pytest.mark.parametrize("first_game_only", [False, True])
def test_score_matches_official_v01_show_result(first_game_only):
    records = ah.read_judgments(SYNTHETIC, fmt="arena_hard")
    s = ah.score(records, first_game_only=first_game_only)
    golden = GOLDEN[first_game_only]
    got = (s["score"], s["ci_low"], s["ci_high"])
    assert tuple(round(x, 2) for x in got) == golden["rounded"]
    assert got == pytest.approx(golden["exact"], abs=1e-6)
    assert s["n_battles"] == golden["n_battles"]
    assert s["n"] == 80 and s["ci_method"] == "battle bootstrap (v0.1)" and s["baseline"] == "gpt-4-0314"


def test_failed_games_are_counted_not_scored():
    records = ah.read_judgments(SYNTHETIC, fmt="arena_hard")
    missing = sum(g["score"] is None for r in records for g in r["games"])
    s = ah.score(records, rounds=5)
    assert s["n_failed_games"] == s["n_failed"] == missing > 0
    assert (s["n_expected"], s["n_judged"], s["complete"]) == (160, 160 - missing, False)
    assert s["n_failed_prompts"] == sum(any(g["score"] is None for g in r["games"]) for r in records)


@pytest.mark.slow
def test_paper_config_bootstraps_with_the_official_seed():
    """evals/benchmarks/arena_hard.yaml carries show_result.py's seed 42: its CI is the golden one."""
    from reproduce.config import load_config

    bench = load_config({"preset": "paper"})["benchmarks"]["arena_hard"]
    assert bench["judging"]["seed"] == 42 and bench["judging"]["bootstrap_rounds"] == 100
    s = ah.score(ah.read_judgments(SYNTHETIC, fmt="arena_hard"), bench)
    assert (s["score"], s["ci_low"], s["ci_high"]) == pytest.approx(GOLDEN[False]["exact"], abs=1e-6)


def test_summary_line_in_show_result_style():
    s = {"model": "synthetic-model", "score": 53.38983, "ci_low": 47.43626, "ci_high": 58.68644, "avg_tokens": 412.7,
         "complete": True}
    assert ah.summary_line(s) == ("synthetic-model                          | score: 53.4  | 95% CI:  (-6.0, +5.3)  "
                                  "| average #tokens: 412 (model tokenizer)")
    s.update(complete=False, n_judged=159, n_expected=160, avg_tokens=None)
    assert ah.summary_line(s).endswith("average #tokens: n/a | INCOMPLETE: 159/160 games judged")


@pytest.mark.slow
def test_point_estimate_is_the_bt_closed_form():
    """With one model and one baseline the BT MLE win rate is (model wins + half ties) / battles,
    counting strong verdicts three times; a hand-checkable set."""
    recs = [{"question_id": "1", "model": "m", "games": [{"score": "B>>A"}, {"score": "A>B"}]},  # 3 + 1 model wins
            {"question_id": "2", "model": "m", "games": [{"score": "A=B"}, {"score": "B>A"}]}]  # tie, baseline win
    s = ah.score(recs, baseline="base", rounds=20)
    assert s["score"] == pytest.approx(100 * (4 + 0.5) / 6, abs=1e-5)


@pytest.mark.slow
def test_prompt_bootstrap():
    records = ah.read_judgments(SYNTHETIC, fmt="arena_hard")
    a = ah.score(records, prompt_bootstrap=True)
    b = ah.score(records, prompt_bootstrap=True)
    assert a == b  # seeded
    assert a["ci_method"] == "prompt bootstrap"
    assert a["score"] == pytest.approx(GOLDEN[False]["exact"][0], abs=1e-6)
    assert a["ci_low"] < a["score"] < a["ci_high"]


@pytest.mark.parametrize("text, label", [
    ("My final verdict is: [[B>>A]]", "B>>A"),
    ("first [[A>B]] then on reflection [[B>A]]", "B>A"),  # last match
    ("verdict [a=b]", "A=B"),  # single-bracket fallback, upper-cased
    ("[[A>>B]] ... see [B>A]", "A>>B"),  # double brackets win over a later single one
    ("[[A>>>B]]", None),  # not one of the five labels
    ("I cannot decide.", None),
    ("", None),
    (None, None),
])
def test_parse(text, label):
    assert ah.parse("game1", JudgeReply(text)) == label
    assert ah.parse("game2", JudgeReply(text)) == label


def test_parse_unknown_game():
    with pytest.raises(ValueError):
        ah.parse("game3", JudgeReply("[[A>B]]"))


def _qa():
    q = {"question_id": "q1", "category": "arena-hard-v0.1", "turns": ["PROMPT TEXT {not a field}"], "reference": None}
    return q, {"question_id": "q1", "model": "my-model", "turns": ["MODEL ANSWER"]}, \
        {"question_id": "q1", "model": "gpt-4-0314", "turns": ["BASELINE ANSWER"]}


def test_build_requests_with_official_template():
    official_file(JUDGE_CONFIG["path"])  # present (mirror or cache) or the test fails saying why
    templates = ah.load_templates(BENCH)
    q, a, ref = _qa()
    games = dict(ah.build_requests(q, a, ref, BENCH, templates))
    assert list(games) == ["game1", "game2"]
    for game, (first, second) in {"game1": ("BASELINE", "MODEL"), "game2": ("MODEL", "BASELINE")}.items():
        req = games[game]
        assert req.messages[0]["role"] == "system" and "[[A>>B]]" in req.messages[0]["content"]
        user = req.messages[1]["content"]
        assert "PROMPT TEXT {not a field}" in user
        assert user.index(f"{first} ANSWER") < user.index("<|The Start of Assistant B's Answer|>") < user.index(
            f"{second} ANSWER")
        assert req.fields["answer_a"] == f"{first} ANSWER" and req.fields["verdicts"] == "five_level"
        assert req.decoding == {"temperature": 0, "max_tokens": 4096}


def test_record_roundtrip_and_malformed_files(tmp_path):
    q, a, ref = _qa()
    rec = ah.make_record(q, a, ref, BENCH, "judge-x", {"game1": "B>A"},
                         {"game1": JudgeReply("[[B>A]]"), "game2": JudgeReply("no idea")})
    assert rec["games"] == [{"score": "B>A", "judgment": "[[B>A]]"}, {"score": None, "judgment": "no idea"}]
    path = tmp_path / "j.jsonl"
    path.write_text(json.dumps(rec) + "\n")
    assert [{k: v for k, v in r.items() if k != "_where"} for r in ah.read_judgments(path)] == [rec]
    assert ah.read_judgments(path)[0]["_where"] == f"{path}:1"  # each record's place, for messages
    path.write_text(json.dumps({"question_id": "q1", "model": "m", "games": [{"score": "A>B"}]}) + "\n")
    with pytest.raises(DataError, match=r"j.jsonl:1: 'games' must be a list of two"):
        ah.read_judgments(path, fmt="arena_hard")
    path.write_text("{not json\n")
    with pytest.raises(DataError, match=r"j.jsonl:1"):
        ah.read_judgments(path, fmt="arena_hard")


def test_tiny_bench_without_templates_uses_verifier():
    from reproduce.judges.verifier import VerifierJudge

    tiny = {"protocol": "arena_hard", "questions": {"task": "addition", "files": {}}, "judging": {}}
    assert ah.load_templates(tiny) is None
    judge = VerifierJudge("verifier", {"kind": "verifier", "task": "addition"})
    q = {"question_id": "t0", "category": "math", "turns": ["12+34="], "reference": ["46"]}
    a = {"question_id": "t0", "model": "m", "turns": ["46"]}
    ref = {"question_id": "t0", "model": "demonstrator", "turns": ["36"]}
    verdicts = {}
    for game, req in ah.build_requests(q, a, ref, tiny, None):
        assert req.messages is None
        verdicts[game] = ah.parse(game, asyncio.run(judge.complete(req)))
    assert verdicts == {"game1": "B>>A", "game2": "A>>B"}  # the model is right in both positions
    rec = ah.make_record(q, a, ref, tiny, "verifier", verdicts, {})
    # one side won every battle: the official fit would fail; we report the limit
    s = ah.score([rec], tiny, rounds=10)
    assert (s["score"], s["ci_low"], s["ci_high"]) == (100.0, 100.0, 100.0) and s["baseline"] == "demonstrator"


def test_win_rate_from_elo_by_hand():
    """Bradley-Terry: p = 1 / (1 + 10^((base - model) / 400)); equal ratings are 50%, infinities the limits."""
    inf = float("inf")
    assert ah._win_rate(1000.0, 1000.0) == 50.0
    assert ah._win_rate(1400.0, 1000.0) == pytest.approx(100 / 1.1)
    assert ah._win_rate(1000.0, 1400.0) == pytest.approx(100 / 11)
    assert ah._win_rate(1000.0 + 400 * 2, 1000.0) == pytest.approx(100 / 1.01)
    # 400 x 400 Elo behind (a near-degenerate resample): 10^400 overflows a float; the limit is 0%
    assert ah._win_rate(1000.0, 1000.0 + 400 * 400) == 0.0
    assert (ah._win_rate(inf, 1000.0), ah._win_rate(-inf, 1000.0), ah._win_rate(inf, inf)) == (100.0, 0.0, 50.0)


@pytest.mark.parametrize("values, q, want", [
    ([1, 2, 3, 4, float("inf")], 2.5, 1.1),  # h = 4 * 0.025 = 0.1: 1 + (2 - 1) * 0.1
    ([1, 2, 3, 4, float("inf")], 50, 3.0),  # h = 2, exactly on a value
    ([1, 2, 3, 4, float("inf")], 60, 3.4),  # h = 2.4: 3 + (4 - 3) * 0.4
    ([1, 2, 3, 4, float("inf")], 97.5, float("inf")),  # between 4 and +inf: the limit
    ([20, float("-inf"), 30, 0, 10], 2.5, float("-inf")),  # unsorted; between -inf and 0
    ([20, float("-inf"), 30, 0, 10], 60, 14.0),  # sorted -inf, 0, 10, 20, 30; h = 2.4: 10 + 10 * 0.4
    ([20, float("-inf"), 30, 0, 10], 97.5, 29.0),  # h = 3.9: 20 + 10 * 0.9
    ([float("inf")] * 3, 2.5, float("inf")),
])
def test_percentile_with_infinite_elos_by_hand(values, q, want):
    """Linear interpolation between the two order statistics around h = (n - 1) q / 100, an infinite
    neighbour giving its infinity (np.percentile would give NaN)."""
    assert ah._percentile(values, q) == pytest.approx(want)


def _hand_records(**extra):
    return [{"question_id": "1", "model": "m", "games": [{"score": "B>>A"}, {"score": "A>B"}], **extra},
            {"question_id": "2", "model": "m", "games": [{"score": "A=B"}, {"score": "B>A"}], **extra}]


@pytest.mark.slow
def test_baseline_option_then_records_then_bench_reference_then_default():
    bench = {"judging": {}, "reference": {"kind": "model", "name": "bench-ref"}}
    assert ah.score(_hand_records(), bench, baseline="opt-base", rounds=2)["baseline"] == "opt-base"
    with pytest.raises(DataError, match=r"baseline 'opt-base' is not the one these records were judged against \(rec-base\)"):
        ah.score(_hand_records(baseline="rec-base"), bench, baseline="opt-base", rounds=2)  # never a relabel
    assert ah.score(_hand_records(baseline="rec-base"), bench, rounds=2)["baseline"] == "rec-base"
    assert ah.score(_hand_records(), bench, rounds=2)["baseline"] == "bench-ref"
    assert ah.score(_hand_records(), {"judging": {}}, rounds=2)["baseline"] == "gpt-4-0314"
    assert ah.score(_hand_records(), None, rounds=2)["baseline"] == "gpt-4-0314"


def test_elo_of_the_hand_set():
    """4.5 of 6 weighted battles won: the BT Elo gap is 400 log10(0.75 / 0.25) = 400 log10(3) above 1000."""
    s = ah.score(_hand_records(), rounds=2)
    assert s["elo"] == pytest.approx(1000 + 400 * math.log10(3), abs=1e-3)
    assert s["n_battles"] == 6  # B>>A three times, A>B, A=B, B>A
    # weight 1: a strong verdict counts once, 2.5 of 4 battles won
    s = ah.score(_hand_records(), rounds=2, weight=1)
    assert s["n_battles"] == 4 and s["score"] == pytest.approx(100 * 2.5 / 4, abs=1e-5)


def test_records_against_two_baselines_are_refused():
    recs = _hand_records(baseline="base-1") + _hand_records(baseline="base-2")
    with pytest.raises(DataError, match=r"several baselines \['base-1', 'base-2'\]"):
        ah.score(recs, rounds=2)


def test_bootstrap_rounds_and_seed_from_the_bench_file_unless_given():
    records = ah.read_judgments(SYNTHETIC, fmt="arena_hard")
    bench = {"judging": {"bootstrap_rounds": 7, "seed": 3}}
    s = ah.score(records, bench)
    assert (s["bootstrap_rounds"], s["seed"]) == (7, 3)
    assert (s["ci_low"], s["ci_high"]) == (ah.score(records, rounds=7, seed=3)["ci_low"],
                                           ah.score(records, rounds=7, seed=3)["ci_high"])
    s = ah.score(records, bench, rounds=4, seed=5)
    assert (s["bootstrap_rounds"], s["seed"]) == (4, 5)


def test_failed_games_count_only_the_games_played():
    """With first_game_only the second games are not played: their missing verdicts are no failures."""
    recs = [{"question_id": "1", "model": "m", "games": [{"score": None}, {"score": "A>B"}]},
            {"question_id": "2", "model": "m", "games": [{"score": "B>A"}, {"score": None}]},
            {"question_id": "3", "model": "m", "games": [{"score": "A=B"}, {"score": "B>>A"}]},
            {"question_id": "4", "model": "m", "games": [{"score": None}, {"score": None}]},
            {"question_id": "5", "model": "m", "games": [{"score": "A>B"}, {"score": "B>A"}]}]
    s = ah.score(recs, baseline="base", rounds=2)
    assert (s["n_failed_games"], s["n_failed_prompts"], s["n_expected"], s["n_judged"]) == (4, 3, 10, 6)
    assert s["n_battles"] == 1 + 1 + 1 + 3 + 2  # A>B, B>A, A=B, B>>A x3, A>B, B>A
    s = ah.score(recs, baseline="base", rounds=2, first_game_only=True)
    assert (s["n_failed_games"], s["n_failed_prompts"], s["n_expected"], s["n_judged"]) == (2, 2, 5, 3)
    assert s["n_battles"] == 3 and not s["complete"]


def test_average_answer_tokens_only_when_every_record_has_them():
    recs = _hand_records()
    for rec, n in zip(recs, (10, 41)):
        rec["answer_tokens"] = n
    assert ah.score(recs, rounds=2)["avg_tokens"] == 25.5
    recs[1]["answer_tokens"] = None
    assert ah.score(recs, rounds=2)["avg_tokens"] is None


@pytest.mark.slow
def test_prompt_bootstrap_is_the_closed_form_on_resampled_prompts():
    """Prompt bootstrap, recomputed independently: each round resamples the 80 prompts with replacement
    (numpy RandomState(42).choice, as the battle bootstrap draws), the Elo of a resample is the BT closed form
    1000 + 400 log10(p / (1 - p)) with p its weighted share of model wins (ties half), the bounds are the
    2.5 / 97.5 percentiles of those Elos against the baseline's fixed 1000."""
    import numpy as np

    records = ah.read_judgments(SYNTHETIC, fmt="arena_hard")
    model_won = {"game1": {"B>A": 1, "B>>A": 3, "A=B": 0.5}, "game2": {"A>B": 1, "A>>B": 3, "A=B": 0.5}}

    def elo_of(recs):
        won = total = 0.0
        for rec in recs:
            for game, g in zip(("game1", "game2"), rec["games"]):
                if g["score"] is None:
                    continue
                total += 3 if ">>" in g["score"] else 1
                won += model_won[game].get(g["score"], 0)
        p = won / total
        return 1000 + 400 * math.log10(p / (1 - p))

    rng = np.random.RandomState(42)
    elos = [elo_of([records[i] for i in rng.choice(80, size=80, replace=True)]) for _ in range(100)]
    want = [100 / (1 + 10 ** ((1000 - np.percentile(elos, q)) / 400)) for q in (2.5, 97.5)]
    s = ah.score(records, prompt_bootstrap=True)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(want, abs=1e-4)
