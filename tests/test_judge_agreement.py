"""Re-judging: the lenient verifier judge differs from the exact one; the agreement report is correct."""

from __future__ import annotations

import asyncio
import copy
import json
import shutil

import pytest

from reproduce.config import ConfigError, validate
from reproduce.io import DataError
from test_report import results, tiny_cfg, write_synthetic_results  # noqa: F401  (fixture reused)


def _avg_ranks(xs: list[float]) -> list[float]:
    """Ranks 1..n of ``xs`` (ascending), ties sharing their average rank."""
    order = sorted(xs)
    return [order.index(x) + 1 + (order.count(x) - 1) / 2 for x in xs]


def _spearman(xs: list[float], ys: list[float]) -> float:
    """Pearson correlation of the average ranks (written out here, independent of scipy)."""
    rx, ry = _avg_ranks(xs), _avg_ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


def _kendall_b(xs: list[float], ys: list[float]) -> float:
    """Kendall tau-b by counting pairs: (concordant - discordant) / sqrt((n0 - ties x) (n0 - ties y))."""
    n = len(xs)
    pairs = [(xs[i] - xs[j], ys[i] - ys[j]) for i in range(n) for j in range(i + 1, n)]
    s = sum((dx * dy > 0) - (dx * dy < 0) for dx, dy in pairs)
    n0 = len(pairs)
    return s / ((n0 - sum(dx == 0 for dx, _ in pairs)) * (n0 - sum(dy == 0 for _, dy in pairs))) ** 0.5


def _judge(mode=None):
    from reproduce.judges.verifier import VerifierJudge

    return VerifierJudge("v", {"kind": "verifier", "task": "addition", **({"mode": mode} if mode else {})})


def _reply(judge, fields):
    from reproduce.judges.base import JudgeRequest

    return asyncio.run(judge.complete(JudgeRequest(messages=None, decoding={}, fields=fields))).text


def test_lenient_mode_gives_different_verdicts():
    exact, lenient = _judge(), _judge("lenient")
    q = "90+94="  # 184
    # a dropped carry (84) vs a digit off (194): exact prefers 194 (error 10 < 100); lenient ties (2 of 3 digits each)
    pair = {"kind": "pair", "question": q, "answer_a": "84", "answer_b": "194"}
    assert _reply(exact, pair) == "My final verdict is: [[B>A]]"
    assert _reply(lenient, pair) == "My final verdict is tie: [[A=B]]"
    assert _reply(lenient, {**pair, "verdicts": "abc"}) == "[[C]]"
    rating = {"kind": "rating", "question": q, "answer": "148"}  # all digits, wrong order
    assert _reply(exact, rating) == "Rating: [[3]]" and _reply(lenient, rating) == "Rating: [[9]]"
    assert _reply(lenient, {**rating, "answer": "184"}) == "Rating: [[10]]"
    assert _reply(lenient, {**rating, "answer": "no idea"}) == "Rating: [[1]]"


def test_identity_keeps_exact_cache_keys_and_separates_modes():
    assert _judge().identity() == {"kind": "verifier", "task": "addition"}  # unchanged: old caches stay valid
    assert _judge("lenient").identity() == {"kind": "verifier", "task": "addition", "mode": "lenient"}


def test_judge_schema_accepts_modes_only():
    validate({"kind": "verifier", "mode": "lenient", "task": "addition"}, "judge", "x.yaml")
    with pytest.raises(ConfigError, match="mode"):
        validate({"kind": "verifier", "mode": "sloppy"}, "judge", "x.yaml")


def test_tiny_preset_has_a_second_real_judge():
    cfg = tiny_cfg()
    assert cfg["table_judge"] == "verifier"
    assert cfg["judges"]["verifier-lenient"]["kind"] == "verifier" and cfg["judges"]["verifier-lenient"]["mode"] == "lenient"


def test_agreement_report_on_results(results, tmp_path):  # noqa: F811
    from reproduce.report.agreement import build_agreement, item_verdicts

    cfg = tiny_cfg()
    (rep,) = build_agreement(cfg, results, tmp_path, log=lambda m: None)
    assert (rep["judge_a"], rep["judge_b"]) == ("verifier", "verifier-lenient")
    metrics = {(m["benchmark"], m["metric"]) for m in rep["metrics"]}
    assert metrics == {("tiny_alpaca_eval2", "AE-WR"), ("tiny_arena_hard", "AH"), ("tiny_mt_bench", "MT-S"),
                       ("tiny_mt_bench", "MT-WR")}  # AE-LC: no value under either judge, so no correlation
    for m in rep["metrics"]:
        assert m["n_methods"] == len(cfg["methods"])
        # recomputed from the score files, with rank correlations written out in this file
        bench, key = {"AE-WR": ("tiny_alpaca_eval2", "win_rate"), "AH": ("tiny_arena_hard", "score"),
                      "MT-S": ("tiny_mt_bench", "score"), "MT-WR": ("tiny_mt_bench", "win_rate")}[m["metric"]]
        xs, ys = ([json.loads((results / "scores" / bench / j / "tiny-add" / f"{meth}.json").read_text())[key]
                   for meth in cfg["methods"]] for j in ("verifier", "verifier-lenient"))
        assert m["mean_abs_change"] == pytest.approx(sum(abs(y - x) for x, y in zip(xs, ys)) / len(xs))
        if len(set(xs)) > 1 and len(set(ys)) > 1:
            assert (m["spearman"], m["kendall"]) == pytest.approx((_spearman(xs, ys), _kendall_b(xs, ys)))
        else:
            assert m["spearman"] is None and m["kendall"] is None  # undefined on a constant side
    assert len(rep["movement"]) == len(rep["metrics"]) * len(cfg["methods"])
    for mv in rep["movement"]:
        assert mv["change"] == pytest.approx(mv["verifier-lenient"] - mv["verifier"], abs=1e-2)
    # per-item agreement recomputed by hand for one benchmark
    a_all, b_all = {}, {}
    for m in cfg["methods"]:
        a = item_verdicts(results / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / f"{m}.jsonl", "arena_hard")
        b = item_verdicts(results / "judgments" / "tiny_arena_hard" / "verifier-lenient" / "tiny-add" / f"{m}.jsonl", "arena_hard")
        a_all.update({(m, k): v for k, v in a["label"].items()})
        b_all.update({(m, k): v for k, v in b["label"].items()})
    same = sum(a_all[k] == b_all[k] for k in a_all) / len(a_all)
    row = next(i for i in rep["items"] if i["benchmark"] == "tiny_arena_hard" and i["verdict"] == "five-level verdict")
    assert row["agreement"] == pytest.approx(same) and row["n_items"] == len(a_all)
    assert same < 1.0  # the second judge really disagrees somewhere
    md = (tmp_path / "judge_agreement.md").read_text()
    assert "Spearman" in md and "Kendall" in md and "verifier-lenient vs verifier" in md
    assert json.loads((tmp_path / "judge_agreement.json").read_text())["reports"][0]["judge_b"] == "verifier-lenient"


def test_rank_correlations_known_values(tmp_path):
    from reproduce.report.agreement import judge_agreement

    cfg = tiny_cfg()
    res = write_synthetic_results(tmp_path, cfg)  # under both judges: AE-WR 40..55, AH 30..60, MT-S 6..7.5, MT-WR 20..35

    def second_judge(bench: str, key: str, values: list[float]) -> None:
        for m, v in zip(cfg["methods"], values):
            p = res / "scores" / bench / "verifier-lenient" / "tiny-add" / f"{m}.json"
            p.write_text(json.dumps({**json.loads(p.read_text()), key: v}))

    second_judge("tiny_arena_hard", "score", [35, 60, 45, 70])  # one swapped pair (dpo, simpo) of 6
    second_judge("tiny_mt_bench", "score", [5, 5, 6, 7])  # sft and dpo tied
    second_judge("tiny_mt_bench", "win_rate", [50, 40, 30, 20])  # reversed
    rep = judge_agreement(cfg, res, "verifier", "verifier-lenient")
    by = {m["metric"]: m for m in rep["metrics"]}
    # rho = 1 - 6 * sum d^2 / (n (n^2 - 1)) = 1 - 6 * 2 / 60; tau = (5 concordant - 1 discordant) / 6
    assert by["AH"]["spearman"] == pytest.approx(0.8, abs=1e-12)
    assert by["AH"]["kendall"] == pytest.approx(2 / 3, abs=1e-12)
    assert by["AH"]["mean_abs_change"] == pytest.approx((5 + 20 + 5 + 10) / 4)
    # y ranks 1.5, 1.5, 3, 4: rho = 4.5 / sqrt(5 * 4.5) = sqrt(0.9); tau-b = 5 / sqrt(6 * 5)
    assert by["MT-S"]["spearman"] == pytest.approx(0.9 ** 0.5, abs=1e-12)
    assert by["MT-S"]["kendall"] == pytest.approx(5 / 30 ** 0.5, abs=1e-12)
    assert by["MT-WR"]["spearman"] == pytest.approx(-1, abs=1e-12) and by["MT-WR"]["kendall"] == pytest.approx(-1, abs=1e-12)
    assert by["AE-WR"]["spearman"] == pytest.approx(1, abs=1e-12) and by["AE-WR"]["mean_abs_change"] == 0
    moved = [mv for mv in rep["movement"] if mv["metric"] == "AH"]
    assert [mv["rank_verifier"] for mv in moved] == [4, 3, 2, 1] and [mv["rank_verifier-lenient"] for mv in moved] == [4, 2, 3, 1]
    assert [mv["change"] for mv in moved] == [5, 20, -5, 10]
    moved = [mv for mv in rep["movement"] if mv["metric"] == "MT-S"]
    assert [mv["rank_verifier-lenient"] for mv in moved] == [3.5, 3.5, 2, 1]  # 1 = best, ties share the average
    items = {i["verdict"]: i for i in rep["items"] if i["benchmark"] == "tiny_alpaca_eval2"}
    assert items["pairwise outcome (win/tie/loss)"]["agreement"] == 1.0  # no offsets: identical verdicts


def test_agreement_refuses_bad_input(results, tmp_path):  # noqa: F811
    from reproduce.report.agreement import build_agreement

    cfg = tiny_cfg()
    one = copy.deepcopy(cfg)
    one["judges"].pop("verifier-lenient")
    with pytest.raises(ConfigError, match="at least two judges"):
        build_agreement(one, results, tmp_path, log=lambda m: None)
    with pytest.raises(ConfigError, match="not judges"):
        build_agreement(cfg, results, tmp_path, judges=["verifier", "gpt-4o"], log=lambda m: None)
    res = tmp_path / "results"
    shutil.copytree(results / "scores", res / "scores")
    shutil.copytree(results / "judgments", res / "judgments", ignore=shutil.ignore_patterns("_cache.jsonl"))
    (res / "scores" / "tiny_mt_bench" / "verifier-lenient" / "tiny-add" / "simpo.json").unlink()
    with pytest.raises(DataError, match="no score file"):
        build_agreement(cfg, res, tmp_path, log=lambda m: None)
