"""AlpacaEval 2 with a judge that gives no log-probs (``logprobs: false`` in its file): the protocol asks for
the discrete verdict (``m``/``M``, as alpaca_eval's non-weighted annotators read 1 or 2), records and the
score say ``discrete``, and Table 1 says so in its title and csv. A judge with log-probs keeps the weighted
preference and says ``weighted``. Over HTTP to the scripted stand-in, through the real protocol."""

from __future__ import annotations

import csv
import json
import math

import pytest

from reproduce.benchmarks import alpaca_eval2 as ae
from reproduce.judges import run as judge_run
from reproduce.judges.base import JudgeReply

from support.standin_server import Fault, StandinServer
from test_faults import KEY_ENV, _run, _setup


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-discrete-test")
    monkeypatch.setattr(judge_run, "ROUND_WAIT_S", (0.05, 0.2))


def test_discrete_preference_reads_the_one_token_answer():
    assert [ae.discrete_preference(t) for t in ("m", "M", " M\n", "maybe", "", None)] == [1.0, 2.0, 2.0, None, None, None]
    # only a discrete game reads the text; a weighted game without log-probs has no verdict (never a silent switch)
    assert ae.parse("unswitched:discrete", JudgeReply("m")) == 1.0 and ae.parse("switched:discrete", JudgeReply("m")) == 2.0
    assert ae.parse("unswitched", JudgeReply("m")) is None
    assert ae.parse("switched:discrete", JudgeReply("m", {"m": -0.1, "M": -3.0})) == 2.0  # text, not the log-probs
    with pytest.raises(ValueError):
        ae.parse("switched:weighted", JudgeReply("m"))


def _first_shown_wins(body: dict, n: int) -> str:
    return "m"  # the judge always prefers the output shown first


def test_judge_without_logprobs_gives_discrete_verdicts(tmp_path):
    setup = _setup("alpaca_eval2")
    with StandinServer(verdict=_first_shown_wins) as srv:
        records, failures, _ = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup, logprobs=False)
        bodies = [r["body"] for r in srv.requests]
    assert not failures and bodies
    assert all(not b.get("logprobs") and "top_logprobs" not in b and b["temperature"] == 0 and b["max_tokens"] == 1
               for b in bodies)
    judged = [r for r in records if r["raw_completion"] is not None]
    assert judged and all(r["preference_kind"] == "discrete" for r in records)
    # "m" = the first shown output: the reference unless the coin switched the pair
    assert all(r["preference"] == (2.0 if r["is_switched_outputs"] else 1.0) for r in judged)
    score = ae.score(records, setup[0], length_controlled=False)
    assert score["preference"] == "discrete"
    n_model_wins = sum(r["preference"] == 2.0 for r in records)
    n_draws = sum(r["preference"] == 1.5 for r in records)
    assert math.isclose(score["win_rate"], 100 * (n_model_wins + n_draws / 2) / len(records))
    assert "discrete verdicts (no log-probs)" in ae.summary_line(score)


def test_judge_with_logprobs_keeps_the_weighted_preference(tmp_path):
    setup = _setup("alpaca_eval2")
    with StandinServer(verdict="m", top_logprobs={"m": math.log(0.7), "M": math.log(0.3)}) as srv:
        records, failures, _ = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup, logprobs=True)
    assert not failures and all(r["preference_kind"] == "weighted" for r in records)
    judged = [r for r in records if r["raw_completion"] is not None]
    assert all(math.isclose(r["preference"], 1.7 if r["is_switched_outputs"] else 1.3) for r in judged)
    score = ae.score(records, setup[0], length_controlled=False)
    assert score["preference"] == "weighted" and "verdicts (no log-probs)" not in ae.summary_line(score)


def test_a_server_that_drops_logprobs_still_fails_the_weighted_game(tmp_path):
    setup = _setup("alpaca_eval2")
    with StandinServer(verdict="m", script=[Fault.no_logprobs()] * 100) as srv:
        records, failures, _ = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup)
    assert failures and all(r["preference"] in (None, 1.5) for r in records)


def test_official_annotations_are_read_as_their_annotator_reads_them():
    rec = {"generator_2": "m", "output_2": "x", "preference": 2.0}
    assert ae.score([{**rec, "annotator": "weighted_alpaca_eval_gpt4_turbo"}], None,
                    length_controlled=False)["preference"] == "weighted"
    assert ae.score([{**rec, "annotator": "alpaca_eval_gpt4"}], None, length_controlled=False)["preference"] == "discrete"


def test_table1_says_when_alpacaeval_cells_come_from_discrete_verdicts(tmp_path):
    from reproduce.config import load_config
    from reproduce.report.table1 import build_table1

    from test_report import write_synthetic_results

    cfg = load_config({"preset": "tiny"})
    res = write_synthetic_results(tmp_path, cfg)
    out = tmp_path / "tables"
    build_table1(cfg, "verifier", res, out, log=lambda m: None, stem="weighted")
    assert "discrete" not in (out / "weighted.md").read_text().splitlines()[0]
    for score in (res / "scores" / "tiny_alpaca_eval2" / "verifier").rglob("*.json"):
        score.write_text(json.dumps({**json.loads(score.read_text()), "preference": "discrete"}))
    build_table1(cfg, "verifier", res, out, log=lambda m: None, stem="discrete")
    title = (out / "discrete.md").read_text().splitlines()[0]
    assert title.startswith("# Table 1 — judge: verifier") and "AlpacaEval 2: discrete verdicts" in title
    assert "discrete verdicts" in (out / "discrete.tex").read_text()
    rows = list(csv.DictReader((out / "discrete.csv").open()))
    assert {r["AE-WR_preference"] for r in rows} == {r["AE-LC_preference"] for r in rows} == {"discrete"}
