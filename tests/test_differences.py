"""Paired method comparisons, their p-values, the planning lines and the judge-reliability numbers.

Exact values where they can be worked out by hand (constant differences, identical methods, enumerated
sign flips, seed-only noise); the official scorers cross-check every point estimate. Workflow-level tests
run on synthetic judgments written in the workflow's formats and scored by the real benchmark scorers
(and on the finished tiny CI run in ``.ci-work/tiny/results`` when it is there).
"""

from __future__ import annotations

import copy
import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from reproduce.config import ConfigError, load_config
from reproduce.io import DataError

ROOT = Path(__file__).resolve().parent.parent
CI_RESULTS = ROOT / ".ci-work" / "tiny" / "results"


def tiny_cfg(**overrides) -> dict:
    return load_config({"preset": "tiny", **overrides})


# ------------------------------------------------------------------ hand-made judgment records


def ae_records(prefs, model="m") -> list[dict]:
    """AlpacaEval native records with the given preferences (2 = model wins, None = failed)."""
    return [{"question_id": str(i), "instruction": f"q{i}", "output_1": "ref", "output_2": "x" * (1 + i % 3),
             "generator_1": "ref", "generator_2": model, "preference": p, "annotator": "j"} for i, p in enumerate(prefs)]


def ah_records(games, model="m", baseline="base") -> list[dict]:
    """Arena-Hard native records from (game1 label, game2 label) per prompt."""
    return [{"question_id": str(i), "model": model, "judge": "j", "baseline": baseline,
             "games": [{"score": g1}, {"score": g2}]} for i, (g1, g2) in enumerate(games)]


def mt_records(questions, model="m") -> list[dict]:
    """MT-Bench native records from [(ratings per turn, (g1, g2) winners per turn)] per question."""
    out = []
    for i, (ratings, pairs) in enumerate(questions):
        out.append({"question_id": str(i), "model": model, "judge": "j", "category": "math",
                    "single": [{"turn": t + 1, "score": s} for t, s in enumerate(ratings)],
                    "pairwise": [{"turn": t + 1, "baseline": "base", "g1_winner": g1, "g2_winner": g2}
                                 for t, (g1, g2) in enumerate(pairs)]})
    return out


def stats(records, protocol, metric, source="x"):
    from reproduce.report.differences import prompt_stats

    return prompt_stats(records, protocol, metric, source=source)


# ------------------------------------------------------------------ point estimates = official scoring


def test_point_estimates_equal_the_official_scorers():
    from reproduce.benchmarks import alpaca_eval2, arena_hard, mt_bench

    rng = random.Random(1)
    prefs = [rng.choice([1.0, 2.0, 1.5, 1.2, 1.9, 0, None]) for _ in range(40)]
    assert stats(ae_records(prefs), "alpaca_eval2", "AE-WR").score() == pytest.approx(
        alpaca_eval2.score(ae_records(prefs), length_controlled=False)["win_rate"], abs=1e-9)
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A", None]
    games = [(rng.choice(labels), rng.choice(labels)) for _ in range(60)]
    # the Bradley–Terry win rate of the official logistic-regression fit = the closed form we resample
    official = arena_hard.score(ah_records(games), rounds=3)["score"]
    assert stats(ah_records(games), "arena_hard", "AH").score() == pytest.approx(official, abs=1e-5)
    winners = ["model_1", "model_2", "tie", None]
    qs = [([rng.choice([1.0, 5.0, 8.0, 10.0, None]) for _ in range(2)],
           [(rng.choice(winners), rng.choice(winners)) for _ in range(2)]) for _ in range(30)]
    mt = mt_bench.score(mt_records(qs))
    assert stats(mt_records(qs), "mt_bench", "MT-S").score() == pytest.approx(mt["score"], abs=1e-12)
    assert stats(mt_records(qs), "mt_bench", "MT-WR").score() == pytest.approx(mt["win_rate"], abs=1e-12)


def test_arena_hard_resample_equals_the_official_fit_on_that_resample():
    """Each bootstrap round's Arena-Hard score is the official BT fit of the resampled battles."""
    from reproduce.benchmarks import arena_hard
    from reproduce.report.stats import _scores

    rng = random.Random(2)
    labels = ["A>>B", "A>B", "A=B", "B>A", "B>>A"]
    recs = ah_records([(rng.choice(labels), rng.choice(labels)) for _ in range(12)])
    st = stats(recs, "arena_hard", "AH")
    draws = np.random.default_rng(5).integers(0, 12, size=(4, 12))
    for d in draws:
        weights = np.bincount(d, minlength=12)[None, :].astype(float)
        ours = _scores(weights, st.num[None, :], st.den[None, :], st.scale)[0, 0]
        # weights are over the stats' (sorted) question ids
        resampled = [dict(recs[int(st.question_ids[i])], question_id=f"r{k}") for k, i in enumerate(d)]
        assert ours == pytest.approx(arena_hard.score(resampled, rounds=1)["score"], abs=1e-5)


# ------------------------------------------------------------------ exact values


def test_identical_methods_give_zero_difference_and_p_one():
    from reproduce.report.stats import compare

    a = [stats(ae_records([2.0, 1.0, 1.5, 1.7, 2.0, 1.0]), "alpaca_eval2", "AE-WR")]
    r = compare(a, copy.deepcopy(a), rounds=500)
    assert (r["diff"], r["ci_low"], r["ci_high"]) == (0.0, 0.0, 0.0)
    assert r["p_value"] == 1.0 and r["p_bootstrap"] == 1.0
    assert r["p_method"] == "sign-flip permutation, exact (64 flips)"


def test_constant_difference_has_a_degenerate_interval_and_exact_flip_p():
    from reproduce.report.stats import compare

    # A wins every prompt, B loses every prompt: every resample differs by exactly 100 points
    a = [stats(ae_records([2.0] * 5), "alpaca_eval2", "AE-WR")]
    b = [stats(ae_records([1.0] * 5), "alpaca_eval2", "AE-WR")]
    r = compare(a, b, rounds=1000)
    assert (r["diff"], r["ci_low"], r["ci_high"]) == (100.0, 100.0, 100.0)
    # of the 2^5 = 32 flips only "none" and "all" reach |diff| = 100: p = 2/32 exactly
    assert r["p_value"] == 2 / 32 and r["p_method"].startswith("sign-flip permutation, exact (32")
    # bootstrap p: no round at or below 0 -> 2 (1 + 0) / (1 + 1000)
    assert r["p_bootstrap"] == pytest.approx(2 / 1001)


def test_sign_flip_enumeration_by_hand():
    from reproduce.report.stats import sign_flip_test

    # per-prompt differences +1, +1, +1, -1 (win rate points / 100): sums over the 16 sign vectors take
    # |sum| = 4 twice, 2 eight times, 0 six times; observed |sum| = 2 -> p = 10/16
    a = [stats(ae_records([2.0, 2.0, 2.0, 1.0]), "alpaca_eval2", "AE-WR")]
    b = [stats(ae_records([1.0, 1.0, 1.0, 2.0]), "alpaca_eval2", "AE-WR")]
    r = sign_flip_test(a, b, rounds=16)
    assert r["exact"] and r["n_flips"] == 16 and r["p_value"] == 10 / 16 and r["observed"] == 50.0
    # more prompts than 2^n <= rounds allows: Monte Carlo with (1 + hits) / (1 + rounds)
    r = sign_flip_test(a, b, rounds=15, seed=3)
    assert not r["exact"] and r["n_flips"] == 15
    assert r["p_value"] * 16 == pytest.approx(round(r["p_value"] * 16))


def test_two_prompt_bootstrap_interval_by_hand():
    from reproduce.report.stats import paired_bootstrap

    # per-prompt differences 100 and 0: a resample has mean 0, 50 or 100 with probabilities 1/4, 1/2, 1/4
    a = [stats(ae_records([2.0, 2.0]), "alpaca_eval2", "AE-WR")]
    b = [stats(ae_records([1.0, 2.0]), "alpaca_eval2", "AE-WR")]
    r = paired_bootstrap(a, b, rounds=4000, seed=0)
    assert r["diff"] == 50.0 and (r["ci_low"], r["ci_high"]) == (0.0, 100.0)
    # n * variance of the resampled mean = the per-prompt variance of the differences (2500) up to MC error
    assert r["var_prompt"] == pytest.approx(2500, rel=0.05)


def test_pairing_removes_shared_prompt_difficulty():
    """Two methods that differ on one prompt in 200: the paired interval is far narrower than either score's."""
    from reproduce.report.stats import paired_bootstrap

    rng = random.Random(4)
    base = [rng.choice([1.0, 2.0]) for _ in range(200)]
    better = list(base)
    better[base.index(1.0)] = 2.0
    a, b = [stats(ae_records(better), "alpaca_eval2", "AE-WR")], [stats(ae_records(base), "alpaca_eval2", "AE-WR")]
    r = paired_bootstrap(a, b, rounds=1000)
    assert r["diff"] == pytest.approx(0.5)
    assert 0 <= r["ci_low"] <= r["ci_high"] <= 1.5  # a single score's 95% CI is about +-7 points wide here


def test_mt_bench_resamples_questions_with_both_turns():
    from reproduce.report.stats import paired_bootstrap

    # question 0: a rates 10/10 and b 1/1 on its two turns; question 1: equal. If turns were resampled
    # separately the difference could be 4.5 on half a question; clustered it is 0, 4.5 or 9 only
    a = [stats(mt_records([([10.0, 10.0], []), ([5.0, 5.0], [])]), "mt_bench", "MT-S")]
    b = [stats(mt_records([([1.0, 1.0], []), ([5.0, 5.0], [])]), "mt_bench", "MT-S")]
    r = paired_bootstrap(a, b, rounds=500)
    assert r["diff"] == 4.5 and (r["ci_low"], r["ci_high"]) == (0.0, 9.0)


# ------------------------------------------------------------------ seeds


def test_seed_only_noise_by_hand():
    """Per-prompt verdicts constant within a seed: only the seed draw matters. A's seeds score 60 and 80, B's
    50: a round's difference is 10, 20 or 30 with probabilities 1/4, 1/2, 1/4."""
    from reproduce.report.stats import compare

    a = [stats(ae_records([1.6] * 10), "alpaca_eval2", "AE-WR"), stats(ae_records([1.8] * 10), "alpaca_eval2", "AE-WR")]
    b = [stats(ae_records([1.5] * 10), "alpaca_eval2", "AE-WR")] * 2
    r = compare(a, b, rounds=2000)
    assert r["diff"] == pytest.approx(20.0)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(10.0), pytest.approx(30.0))
    assert r["seed_var_a"] == pytest.approx(200.0) and r["seed_var_b"] == 0.0
    assert r["p_method"] == "paired bootstrap over seeds and prompts (two-sided)" and r["p_value"] == r["p_bootstrap"]
    assert r["var_prompt"] == pytest.approx(0.0)
    assert "seeds and prompts" in r["ci_method"]


def test_identical_seeds_change_nothing_and_real_seeds_widen_the_interval():
    from reproduce.report.stats import paired_bootstrap

    rng = np.random.default_rng(7)
    n = 80

    def seed_set(p_win):
        return stats(ae_records(list(np.where(rng.random(n) < p_win, 2.0, 1.0))), "alpaca_eval2", "AE-WR")

    a1, b1 = seed_set(0.6), seed_set(0.5)
    one = paired_bootstrap([a1], [b1], rounds=800)
    copies = paired_bootstrap([a1, a1, a1], [b1, b1, b1], rounds=800)
    assert (copies["diff"], copies["ci_low"], copies["ci_high"]) == (one["diff"], one["ci_low"], one["ci_high"])
    assert copies["seed_var_a"] == 0.0
    # seeds of very different skill: the interval covers that seed noise, so it is much wider than the
    # prompt-only interval of the same judgments (seeds fixed, var_prompt)
    spread = paired_bootstrap([a1, seed_set(0.95), seed_set(0.25)], [b1, seed_set(0.5), seed_set(0.55)], rounds=800)
    prompt_only_width = 2 * 1.96 * (spread["var_prompt"] / n) ** 0.5
    assert spread["ci_high"] - spread["ci_low"] > 1.5 * prompt_only_width
    assert spread["n_seeds_a"] == 3 and spread["seed_var_a"] > 10 * spread["seed_var_b"]


# ------------------------------------------------------------------ bad input


def test_bad_input_is_refused_with_the_files_named():
    from reproduce.report.stats import compare, paired_bootstrap

    a = [stats(ae_records([2.0, 1.0, 2.0]), "alpaca_eval2", "AE-WR", source="res/a.jsonl")]
    b = [stats(ae_records([2.0, 1.0]), "alpaca_eval2", "AE-WR", source="res/b.jsonl")]
    with pytest.raises(DataError, match=r"res/a.jsonl and res/b.jsonl are judgments on different prompt sets.*'2'"):
        compare(a, b)
    one = [stats(ae_records([2.0]), "alpaca_eval2", "AE-WR", source="res/one.jsonl")]
    with pytest.raises(DataError, match="at least 2 prompts; res/one.jsonl, res/one.jsonl hold 1"):
        paired_bootstrap(one, one)
    with pytest.raises(DataError, match="more than once"):
        stats(ae_records([2.0, 1.0]) * 2, "alpaca_eval2", "AE-WR")
    other = [stats(ah_records([("A>B", "B>A")] * 3, baseline="gpt-4-0314"), "arena_hard", "AH", source="o.jsonl")]
    mine = [stats(ah_records([("A>B", "B>A")] * 3), "arena_hard", "AH", source="m.jsonl")]
    with pytest.raises(DataError, match="baseline"):
        compare(other, mine)


def test_pairs_are_checked_against_the_preset():
    from reproduce.report.differences import resolve_pairs

    cfg = tiny_cfg()
    assert resolve_pairs(cfg) == [("tgdpo", "dpo"), ("tgdpo", "simpo"), ("dpo", "sft")]
    assert resolve_pairs(tiny_cfg(methods=["sft", "dpo", "tgdpo", "chosen_nll"]))[-1] == ("tgdpo", "chosen_nll")
    assert resolve_pairs(cfg, ["simpo-dpo"]) == [("simpo", "dpo")]
    with pytest.raises(ConfigError, match=r"--pairs: 'tgdpo-orpo' names method 'orpo', which is not in the preset"):
        resolve_pairs(cfg, ["tgdpo-orpo"])
    with pytest.raises(ConfigError, match="key 'comparisons'.*'kto'"):
        resolve_pairs({**cfg, "comparisons": ["kto-dpo"]})
    with pytest.raises(ConfigError, match="not a pair"):
        resolve_pairs(cfg, ["tgdpo"])
    with pytest.raises(ConfigError, match="itself"):
        resolve_pairs(cfg, ["dpo-dpo"])


def test_verdicts():
    from reproduce.report.stats import verdict

    assert verdict(3.0, 1.0, 5.0, 4.3) == ("supported", "a ahead")
    assert verdict(-3.0, -5.0, -1.0, -2.0) == ("supported", "b ahead")
    assert verdict(1.0, -1.0, 3.0, 4.3) == ("not resolved", "no difference resolved")
    assert verdict(-3.0, -5.0, -1.0, 4.3) == ("contradicted", "b ahead")
    assert verdict(3.0, 1.0, 5.0, None) == ("no paper claim", "a ahead")
    assert verdict(3.0, 1.0, 5.0, 0.0) == ("no paper claim", "a ahead")


# ------------------------------------------------------------------ planning


def test_power_formulas():
    from reproduce.report.stats import Z, prompts_needed, seeds_needed, target_variance

    assert Z == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    # gap = Z * 1 -> target variance 1; per-prompt variance 400 and no seed noise -> 400 prompts
    assert target_variance(Z) == pytest.approx(1.0)
    assert prompts_needed(Z, 400.0, 0.0, 1) == 400
    assert prompts_needed(Z, 400.0, 0.5, 1) == 800  # half the budget goes to seed noise
    assert prompts_needed(Z, 400.0, 0.5, 5) == 445  # 400 / 0.9 = 444.4
    assert prompts_needed(Z, 400.0, 1.0, 1) is None
    assert seeds_needed(Z, 400.0, 2.0, 800) == 4  # 2 / (1 - 0.5)
    assert seeds_needed(Z, 400.0, 2.0, 400) is None


def test_power_plans_from_the_verdict_floor_when_measured_variance_is_smaller():
    """Two near-identical methods (the null) measure a per-prompt variance near 0; a true 2-point win-rate gap
    needs at least 2 * (25 - 2) = 46 of it (verdicts move a prompt by 25 points at least), so the plan uses 46,
    not the measured 0.25, and says so. MT-S has no such floor."""
    from reproduce.report.power import Z, plan, variance_floor

    assert variance_floor(2.0, "AH") == 46.0 and variance_floor(-2.0, "AE-WR") == 46.0
    assert variance_floor(2.0, "MT-S") == 0.0 and variance_floor(30.0, "AH") == 0.0
    cfg = tiny_cfg()
    base = {"setting": "tiny-add", "judge": cfg["table_judge"], "method_a": "tgdpo", "method_b": "dpo",
            "n_prompts": 400, "n_seeds": 5, "seed_var_a": 0.0, "seed_var_b": 0.0}
    rows = [{**base, "benchmark": "tiny_arena_hard", "metric": "AH", "paper_diff": 2.0, "var_prompt": 0.25},
            {**base, "benchmark": "tiny_mt_bench", "metric": "MT-S", "paper_diff": 0.5, "var_prompt": 0.25}]
    ah, mt = plan(cfg, rows)
    assert ah["var_prompt_used"] == 46.0 and "floor is used" in ah["note"]
    assert ah["prompts_needed_1_seed"] == int(np.ceil(46.0 / (2.0 / Z) ** 2 - 1e-12))  # 46 * 7.849 / 4 -> 91
    assert mt["var_prompt_used"] == 0.25 and mt["prompts_needed_1_seed"] == int(np.ceil(0.25 / (0.5 / Z) ** 2 - 1e-12))


# ------------------------------------------------------------------ the workflow's result files


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


SKILL = {"sft": 0.3, "dpo": 0.6, "simpo": 0.58, "tgdpo": 0.72, "chosen_nll": 0.6}


def write_results(root: Path, cfg: dict, n: int = 30, seed: int = 0, missing: dict | None = None) -> Path:
    """Judgment files of every (benchmark, judge, setting, method) in the workflow's native formats, with
    per-prompt verdicts drawn from each method's skill (the lenient judge ties more often), and their
    score files computed by the real benchmark scorers. ``missing[(bench, method)]`` drops that many prompts."""
    from reproduce.benchmarks import alpaca_eval2, arena_hard, mt_bench

    rng = random.Random(seed)
    res = root / "results"
    missing = missing or {}
    for s in cfg["settings"]:
        for m in cfg["methods"]:
            p = SKILL[m]
            for b, bc in cfg["benchmarks"].items():
                keep = n - missing.get((b, m), 0)
                for j in cfg["judges"]:
                    tie = 0.1 if j == "verifier" else 0.3
                    draw = lambda: "win" if rng.random() < p else ("tie" if rng.random() < tie else "loss")  # noqa: E731
                    proto = bc["protocol"]
                    if proto == "alpaca_eval2":
                        recs = [{"question_id": str(i), "instruction": f"{i}+1=", "output_1": "1" * (1 + i % 2),
                                 "generator_1": "demonstrator", "output_2": "2" * (1 + (i + len(m)) % 3), "generator_2": m,
                                 "annotator": j, "preference": {"win": 2.0, "tie": 1.5, "loss": 1.0}[draw()]}
                                for i in range(keep)]
                        sc = alpaca_eval2.score(recs, length_controlled=False)
                    elif proto == "arena_hard":
                        lab = {"win": ("B>A", "A>B"), "tie": ("A=B", "A=B"), "loss": ("A>>B", "B>A")}
                        recs = []
                        for i in range(keep):
                            g1, g2 = lab[draw()][0], lab[draw()][1]
                            recs.append({"question_id": str(i), "model": m, "judge": j, "baseline": "demonstrator",
                                         "games": [{"score": g1, "judgment": g1}, {"score": g2, "judgment": g2}]})
                        sc = arena_hard.score(recs, rounds=5)
                    else:
                        win = {"win": ("model_1", "model_1"), "tie": ("tie", "model_1"), "loss": ("model_2", "model_2")}
                        recs = [{"question_id": str(i), "model": m, "judge": j, "category": "math",
                                 "single": [{"turn": 1, "score": 10.0 if draw() == "win" else 3.0}],
                                 "pairwise": [{"turn": 1, "baseline": "demonstrator", "g1_winner": win[draw()][0],
                                               "g2_winner": win[draw()][1]}]} for i in range(keep)]
                        sc = mt_bench.score(recs)
                    jpath = res / "judgments" / b / j / s / f"{m}.jsonl"
                    _write_jsonl(jpath, recs)
                    jpath.with_name(f"{m}.config.json").write_text(json.dumps(
                        {"judge": j, "benchmark": b, "benchmark_config": {"version": bc.get("version")},
                         "config_hash": "h"}))
                    spath = res / "scores" / b / j / s / f"{m}.json"
                    spath.parent.mkdir(parents=True, exist_ok=True)
                    spath.write_text(json.dumps({"benchmark": b, "protocol": proto,
                                                 "judgments": str(jpath.relative_to(root)), **sc}, default=str))
                ans = res / "answers" / b / s / f"{m}.jsonl"
                _write_jsonl(ans, [{"question_id": str(i), "model": m, "turns": ["2" * (1 + (i + len(m)) % 3)]}
                                   for i in range(keep)])
        for b in cfg["benchmarks"]:
            _write_jsonl(res / "answers" / b / "_reference.jsonl",
                         [{"question_id": str(i), "model": "demonstrator", "turns": ["1" * (1 + i % 2)]} for i in range(n)])
    return res


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("diff"), tiny_cfg())


@pytest.mark.slow
def test_method_differences_table(synthetic, tmp_path):
    from reproduce.benchmarks import arena_hard
    from reproduce.report.differences import FIELDS, build_differences, read_records
    from reproduce.report.stats import paired_bootstrap

    cfg = tiny_cfg()
    rows = build_differences(cfg, synthetic, tmp_path, rounds=300, log=lambda m: None)
    with open(tmp_path / "method_differences.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == FIELDS and len(table) == len(rows)
    # 3 pairs x 2 judges x (AE-WR, AH, MT-S, MT-WR)
    assert len(rows) == 3 * 2 * 4
    assert {(r["method_a"], r["method_b"]) for r in rows} == {("tgdpo", "dpo"), ("tgdpo", "simpo"), ("dpo", "sft")}
    for r in rows:
        assert r["ci_low"] <= r["diff"] <= r["ci_high"] and 0 < r["p_value"] <= 1
        assert r["n_prompts"] == 30 and r["n_seeds"] == 1 and r["paper_diff"] is None
        assert r["verdict"] == "no paper claim" and r["p_method"].startswith("sign-flip permutation, Monte Carlo")
    # one row recomputed from the files: the Arena-Hard difference is the difference of the score files
    r = next(r for r in rows if r["metric"] == "AH" and r["judge"] == "verifier" and r["method_b"] == "sft")
    s = {m: json.loads((synthetic / "scores" / "tiny_arena_hard" / "verifier" / "tiny-add" / f"{m}.json").read_text())
         for m in ("dpo", "sft")}
    assert r["diff"] == pytest.approx(s["dpo"]["score"] - s["sft"]["score"], abs=1e-5)
    recs = {m: read_records(synthetic / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / f"{m}.jsonl",
                            "arena_hard") for m in ("dpo", "sft")}
    assert arena_hard.score(recs["dpo"], rounds=2)["score"] == pytest.approx(s["dpo"]["score"])
    again = paired_bootstrap([stats(recs["dpo"], "arena_hard", "AH")], [stats(recs["sft"], "arena_hard", "AH")], 300)
    assert (again["ci_low"], again["ci_high"]) == (r["ci_low"], r["ci_high"])
    md = (tmp_path / "method_differences.md").read_text()
    assert "| Tiny addition (CPU) | tiny_arena_hard | AH | verifier | DPO − SFT |" in md
    assert "seed-to-seed noise is NOT in these intervals" in md and "sign-flip permutation" in md
    power = (tmp_path / "power.md").read_text()
    lines = [x for x in power.splitlines() if x.startswith("- ")]
    assert len(lines) == 4  # one per benchmark metric (AE-WR, AH, MT-S, MT-WR) of the one setting
    ah = next(x for x in lines if x.startswith("- tiny_arena_hard AH (TGDPO − DPO, judge verifier"))
    # not a paper setting: the paper's smallest and largest TGDPO−DPO Arena-Hard gaps (+2.2 Llama3.2-3B; +4.3 Llama3-8B ArmoRM and Gemma2)
    assert "smallest and largest over the paper's settings" in ah and "lower bound" in ah
    assert [g.split(" needs")[0] for g in ah.split(") ", 2)[-1].split("; ")] == ["+2.2", "+4.3"]
    assert "MT-S" in "".join(lines)


def test_paper_gaps_and_verdicts_in_the_table(synthetic, tmp_path):
    from reproduce.report.differences import collect_differences

    cfg = tiny_cfg()
    cfg["settings"]["tiny-add"] = {**cfg["settings"]["tiny-add"], "paper_setting": "Llama3-8B PairRM"}
    rows = collect_differences(cfg, synthetic, rounds=200)
    r = next(r for r in rows if r["metric"] == "AH" and r["method_b"] == "dpo")
    assert r["paper_diff"] == pytest.approx(34.3 - 30.4)
    want = ("not resolved" if r["ci_low"] <= 0 <= r["ci_high"] else "supported" if r["ci_low"] > 0 else "contradicted")
    assert r["verdict"] == want
    mt = next(r for r in rows if r["metric"] == "MT-S" and r["method_b"] == "dpo")
    assert mt["paper_diff"] == 0.0 and mt["verdict"] == "no paper claim"
    from reproduce.report.power import Z, build_power

    plan_rows, md = build_power(cfg, rows)
    ah = next(p for p in plan_rows if p["metric"] == "AH")
    assert ah["gap"] == r["paper_diff"] and ah["gap_source"] == "paper, this setting"
    # the planning arithmetic on the measured variance: n = var_prompt / (gap / Z)^2, rounded up
    used = max(r["var_prompt"], abs(r["paper_diff"]) * (25 - abs(r["paper_diff"])))  # measured, or the verdict floor
    assert ah["var_prompt_used"] == pytest.approx(used)
    assert ah["prompts_needed_1_seed"] == int(np.ceil(used / (r["paper_diff"] / Z) ** 2 - 1e-12))
    assert "- tiny_mt_bench MT-S (TGDPO − DPO" in md and "no claimed gap to plan for (paper shows no gap" in md


@pytest.mark.slow
def test_table_refuses_bad_results_and_writes_nothing(tmp_path):
    from reproduce.report.differences import build_differences

    cfg = tiny_cfg()
    res = write_results(tmp_path / "a", cfg, n=6, missing={("tiny_mt_bench", "simpo"): 1})
    out = tmp_path / "tables"
    with pytest.raises(DataError, match=r"tiny-add/tgdpo.jsonl and .*tiny-add/simpo.jsonl are judgments on different"):
        build_differences(cfg, res, out, rounds=50, log=lambda m: None)
    assert not out.exists()
    with pytest.raises(ConfigError, match="'orpo'"):
        build_differences(cfg, res, out, pairs=["tgdpo-orpo"], rounds=50, log=lambda m: None)
    res1 = write_results(tmp_path / "b", cfg, n=1)
    with pytest.raises(DataError, match="at least 2 prompts"):
        build_differences(cfg, res1, out, rounds=50, log=lambda m: None)
    # a score file that no longer matches its judgments
    res2 = write_results(tmp_path / "c", cfg, n=6)
    sp = res2 / "scores" / "tiny_alpaca_eval2" / "verifier" / "tiny-add" / "dpo.json"
    sp.write_text(json.dumps({**json.loads(sp.read_text()), "win_rate": 12.5}))
    with pytest.raises(DataError, match="stale"):
        build_differences(cfg, res2, out, rounds=50, log=lambda m: None)
    sp.unlink()
    with pytest.raises(DataError, match="no score file.*dpo"):
        build_differences(cfg, res2, out, rounds=50, log=lambda m: None)
    assert not out.exists()


@pytest.mark.slow
def test_cli_forest_plot_and_report(synthetic, tmp_path):
    from reproduce.cli import main
    from reproduce.report.agreement import build_agreement
    from reproduce.report.figures import default_figures, draw_figure
    from reproduce.report.report import build_report
    from reproduce.report.table1 import build_table1
    from reproduce.workflow import Paths

    cfg = tiny_cfg()
    assert "method_differences" in default_figures(cfg)
    assert Paths(cfg).figure_inputs("method_differences") == ["results/tables/method_differences.json"]
    assert "figures/method_differences.png" not in Paths(cfg).figures()  # not part of reproduce_table1
    inputs = Paths(cfg).differences_inputs()
    assert "results/judgments/tiny_arena_hard/verifier-lenient/tiny-add/simpo.jsonl" in inputs
    with pytest.raises(DataError, match="missing .*method_differences.json"):
        draw_figure("method_differences", cfg, tmp_path / "nothing", tmp_path)
    tables = synthetic / "tables"
    assert main(["differences", "--preset", "tiny", "--results", str(synthetic), "--out-dir", str(tables),
                 "--rounds", "100", "--pairs", "tgdpo-dpo", "dpo-sft"]) == 0
    with open(tables / "method_differences.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["method_a"], r["method_b"]) for r in rows} == {("tgdpo", "dpo"), ("dpo", "sft")}
    assert {r["rounds"] for r in rows} == {"100"}
    assert main(["differences", "--preset", "tiny", "--results", str(synthetic), "--out-dir", str(tmp_path / "x"),
                 "--pairs", "tgdpo-orpo"]) == 2 and not (tmp_path / "x").exists()
    png, pdf = draw_figure("method_differences", cfg, synthetic, tmp_path / "figures")
    assert png.stat().st_size > 10_000 and pdf.read_bytes()[:4] == b"%PDF"
    build_table1(cfg, "verifier", synthetic, tables, log=lambda m: None, stem="table1")
    build_table1(cfg, "verifier-lenient", synthetic, tables, log=lambda m: None)
    build_agreement(cfg, synthetic, tables, log=lambda m: None)
    out = tmp_path / "report.md"
    text = build_report(cfg, synthetic, tables, tmp_path / "figures", out, figures=["method_differences"],
                        log=lambda m: None, differences=True)
    assert "## Method differences" in text and "| tiny_arena_hard | AH | verifier | DPO − SFT |" in text
    planning = text.split("## Planning", 1)[1].split("\n## ", 1)[0]
    assert [x.split(" (")[0] for x in planning.splitlines() if x.startswith("- ")] == [
        "- tiny_alpaca_eval2 AE-WR", "- tiny_arena_hard AH", "- tiny_mt_bench MT-S", "- tiny_mt_bench MT-WR"]
    assert "## Judge reliability" in text and "](figures/method_differences.png)" in text
    (tables / "power.md").unlink()
    with pytest.raises(DataError, match="missing .*power.md"):
        build_report(cfg, synthetic, tables, tmp_path / "figures", out, figures=[], log=lambda m: None, differences=True)


def test_on_the_tiny_ci_run_when_present(tmp_path):
    cfg = tiny_cfg()
    if not (CI_RESULTS / "scores").exists():
        pytest.skip("no finished tiny run in .ci-work/tiny/results (CI runs perf/tiny_e2e.py first)")
    from reproduce.report.differences import build_differences

    rows = build_differences(cfg, CI_RESULTS, tmp_path, rounds=200, log=lambda m: None)
    assert rows and all(r["n_prompts"] >= 2 and r["ci_low"] <= r["diff"] <= r["ci_high"] for r in rows)
    for r in rows:
        sa = json.loads((CI_RESULTS / "scores" / r["benchmark"] / r["judge"] / "tiny-add" / f"{r['method_a']}.json").read_text())
        sb = json.loads((CI_RESULTS / "scores" / r["benchmark"] / r["judge"] / "tiny-add" / f"{r['method_b']}.json").read_text())
        key = {"AE-WR": "win_rate", "AH": "score", "MT-S": "score", "MT-WR": "win_rate"}[r["metric"]]
        assert r["diff"] == pytest.approx(sa[key] - sb[key], abs=1e-4)


# ------------------------------------------------------------------ judge reliability (judge-agreement report)


def test_reliability_items_by_hand():
    from reproduce.report.agreement import _reliability_items, length_bias

    # Arena-Hard: prompt 0 consistent win (B>A then A>B), prompt 1 flips (model wins game 1, loses game 2),
    # prompt 2 tie then win (a flip: tie != win), prompt 3 one failed game (no flip counted)
    recs = ah_records([("B>A", "A>B"), ("B>>A", "B>A"), ("A=B", "A>>B"), ("A=B", None)])
    flips, ties, res = _reliability_items("arena_hard", recs)
    assert flips == [False, True, True] and sum(ties) == 2 and len(ties) == 7
    assert res == {"0": 1.0, "1": 0.5, "2": 0.75, "3": 0.5}
    # MT-Bench pairwise: turn rows (model_1, model_1) win, (model_1, tie) flip, (model_2, model_2) loss
    mt = mt_records([([8.0], [("model_1", "model_1")]), ([8.0], [("model_1", "tie")]), ([2.0], [("model_2", "model_2")])])
    flips, ties, res = _reliability_items("mt_bench", mt)
    assert flips == [False, True, False] and ties.count(True) == 1 and res == {"0": 1.0, "1": 0.5, "2": 0.0}
    # AlpacaEval: one game per instruction, a 1.5 is a tie, identical outputs (set by rule) are not counted
    ae = ae_records([2.0, 1.5, 1.0])
    ae.append({**ae_records([1.5])[0], "question_id": "9", "output_2": "ref", "raw_completion": None})
    flips, ties, res = _reliability_items("alpaca_eval2", ae)
    assert flips == [] and ties == [False, True, False] and res == {"0": 1.0, "1": 0.5, "2": 0.0}
    # length bias: result = length difference / 10 exactly -> r = 1, slope = 10 points per char = 1000 / 100 chars
    r, slope = length_bias([(0, 0.0), (5, 0.5), (10, 1.0), (2, 0.2)])
    assert r == pytest.approx(1.0) and slope == pytest.approx(1000.0)
    assert length_bias([(1, 0.0), (1, 1.0), (1, 0.5)]) == (None, None)  # no length variation: undefined


def test_reliability_in_the_agreement_report(synthetic, tmp_path):
    from reproduce.report.agreement import _answer_lengths, build_agreement, judge_reliability

    cfg = tiny_cfg()
    rows = judge_reliability(cfg, synthetic, "verifier")
    assert [r["benchmark"] for r in rows] == list(cfg["benchmarks"])
    ah = next(r for r in rows if r["protocol"] == "arena_hard")
    # recount from the files: a flip is a prompt whose two games give the model different results
    flips = total = 0
    for m in cfg["methods"]:
        for line in (synthetic / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / f"{m}.jsonl").read_text().splitlines():
            g1, g2 = (g["score"] for g in json.loads(line)["games"])
            res1 = {"B>A": 1, "A=B": 0.5, "A>>B": 0}[g1]
            res2 = {"A>B": 1, "A=B": 0.5, "B>A": 0}[g2]
            flips += res1 != res2
            total += 1
    assert ah["flip_rate"] == pytest.approx(flips / total) and ah["n_flip_items"] == total
    assert 0 < ah["tie_share"] < 1 and ah["length_r"] is not None and ah["n_length"] == total
    ae = next(r for r in rows if r["protocol"] == "alpaca_eval2")
    assert ae["flip_rate"] is None and "no position flips" in ae["note"]
    # the lenient judge of the synthetic files ties more often
    lenient = {r["benchmark"]: r for r in judge_reliability(cfg, synthetic, "verifier-lenient")}
    assert lenient["tiny_arena_hard"]["tie_share"] > ah["tie_share"]
    assert _answer_lengths(synthetic / "answers" / "tiny_arena_hard" / "_reference.jsonl")["1"] == 2
    build_agreement(cfg, synthetic, tmp_path, log=lambda m: None)
    md = (tmp_path / "judge_agreement.md").read_text()
    assert "## Judge reliability" in md and "| verifier-lenient | tiny_arena_hard |" in md
    saved = json.loads((tmp_path / "judge_agreement.json").read_text())["reliability"]
    assert len(saved) == 2 * len(cfg["benchmarks"])
    with open(tmp_path / "judge_agreement.csv") as f:
        rel = [r for r in csv.DictReader(f) if r["kind"] == "reliability"]
    assert {r["metric_or_verdict"] for r in rel} == {"position-flip rate", "tie share", "length r", "length slope per 100 chars"}
