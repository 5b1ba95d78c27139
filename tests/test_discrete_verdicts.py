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


# gpt-5-nano's answers are read as alpaca_eval's weighted_alpaca_eval_gpt5_nano config reads them: its
# regex_parser with outputs_to_match {1: "m", 2: "M"} (the judge file's verdict_regex), one match or no verdict
NANO_PATTERNS = {"1": "m", "2": "M"}


@pytest.mark.parametrize("text, verdict", [
    ("m", 1.0), ("M", 2.0), (" M\n", 2.0),
    ("Output (m) is better.", 1.0), ("I pick M.", 2.0),  # one letter inside prose: found anywhere
    ("mM", None), ("m or M", None),  # both letters: two matches, no verdict
    ("My choice: M", None),  # the 'M' of 'My' is a second match
    ("I prefer the second output.", None),  # neither letter
    ("", None), (None, None),
])
def test_verdict_regex_reads_the_answer_as_alpaca_evals_regex_parser(text, verdict):
    assert ae.regex_preference(text, NANO_PATTERNS) == verdict
    # the same through parse: a switched game (model shown first) flips it; no match stays no verdict
    assert ae.parse("unswitched:discrete", JudgeReply(text), verdict_regex=NANO_PATTERNS) == verdict
    assert ae.parse("switched:discrete", JudgeReply(text), verdict_regex=NANO_PATTERNS) == (
        None if verdict is None else 3 - verdict)


def test_without_verdict_regex_the_whole_answer_must_be_the_letter():
    # the default reading (judges without the key) refuses prose a regex would accept
    assert ae.parse("unswitched:discrete", JudgeReply("I pick M.")) is None
    assert ae.parser({"judging": {}}) is ae.parse
    bench = ae.without_logprobs({"judging": {"logprobs": True}}, {"verdict_regex": NANO_PATTERNS})
    assert ae.parser(bench)("unswitched:discrete", JudgeReply("I pick M.")) == 2.0


def test_gpt5_nano_file_reads_the_archived_answers_as_the_annotator_did():
    """Every archived gpt-5-nano answer (alpaca-7b, gpt-3.5-turbo-0301), read with the judge file's
    verdict_regex in the order shown, gives the preference the annotator recorded."""
    from reproduce.bridge.archives import load_manifest
    from reproduce.config import ROOT, _load_named

    from test_bridge_gpt5_nano import NANO, _fetch_or_skip

    judge = _load_named("judge", ROOT / "evals" / "judges", "gpt-5-nano", "judge", "test")
    assert judge["verdict_regex"] == NANO_PATTERNS
    man = load_manifest("alpaca_eval")
    checked = unanswered = 0
    for model in ("alpaca-7b", "gpt-3.5-turbo-0301"):
        for rec in json.loads(_fetch_or_skip(lambda m=model: man.fetch(m, NANO)).read_text()):
            text = rec["preference_raw_completion"]
            if text is None:  # identical outputs, never sent (1.5), or a call that gave no answer (no verdict)
                identical = rec["output_1"] == rec["output_2"]
                assert (float(rec["preference"]) == 1.5) if identical else rec["preference"] is None
                unanswered += not identical
                continue
            game = ("switched" if ae.is_switched(rec["instruction"]) else "unswitched") + ":discrete"
            assert ae.parse(game, JudgeReply(text), verdict_regex=judge["verdict_regex"]) == float(rec["preference"])
            checked += 1
    assert checked > 1500 and unanswered == 1


def _nano_like(body: dict, n: int) -> str:
    """A reasoning judge's answers with prose around the letter; the last question's answer never parses."""
    prompt = json.dumps(body["messages"])
    if "Q_LAST" in prompt:
        return "Both outputs (m and M) are fine." if n % 2 else "Neither is better."
    return "The better output is: m"


def test_a_judge_file_with_verdict_regex_is_read_by_it_and_an_unparsed_answer_fails_its_game(tmp_path):
    setup = _setup("alpaca_eval2")
    bench, questions, answers, reference, templates = setup
    last = questions[-1]["question_id"]
    answers = {**answers, last: {**answers[last], "turns": [answers[last]["turns"][0] + " Q_LAST"]}}
    setup = (bench, questions, answers, reference, templates)
    with StandinServer(verdict=_nano_like) as srv:
        records, failures, stats = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup, logprobs=False,
                                        verdict_regex=NANO_PATTERNS)
        asked_last = [r for r in srv.requests if "Q_LAST" in json.dumps(r["body"]["messages"])]
    by_id = {r["question_id"]: r for r in records}
    # "m" = the first shown output, found in the prose
    assert all(r["preference"] == (2.0 if r["is_switched_outputs"] else 1.0)
               for q, r in by_id.items() if q != last and r["raw_completion"] is not None)
    # the unparsed answer: asked max_attempts times, then a failed game with no verdict and its reason
    assert len(asked_last) == bench["judging"]["max_attempts"]
    assert by_id[last]["preference"] is None
    assert [f["question_id"] for f in failures] == [last] and "no verdict parsed" in failures[0]["reason"]
    assert stats["n_failed"] == 1


def test_a_bad_verdict_regex_is_refused_naming_its_key(tmp_path):
    from reproduce.config import ROOT, ConfigError, load_yaml, validate

    data = load_yaml(ROOT / "evals" / "judges" / "gpt-5-nano.yaml")
    src = tmp_path / "nano.yaml"
    assert validate(data, "judge", src)["verdict_regex"] == NANO_PATTERNS  # YAML's integer keys read as "1", "2"
    with pytest.raises(ConfigError, match=r"nano.yaml: key 'verdict_regex.2': not a regular expression"):
        validate({**data, "verdict_regex": {1: "m", 2: "M("}}, "judge", src)
    with pytest.raises(ConfigError, match=r"key 'verdict_regex'.*'2' is a required property"):
        validate({**data, "verdict_regex": {1: "m"}}, "judge", src)
    with pytest.raises(ConfigError, match=r"key 'logprobs': False was expected"):  # log-probs are read instead
        validate({**data, "logprobs": True}, "judge", src)


def test_the_bridge_plan_finds_a_judge_without_logprobs_verdicts_in_its_cache(tmp_path):
    """The bridge's plan renders a judge's requests as the judge job does: after a judged run, a judge without
    log-probs (discrete requests, its verdict_regex in the key) has nothing left to ask."""
    from reproduce.bridge.rejudge import Job, render

    from test_faults import _judge

    setup = _setup("alpaca_eval2")
    bench, questions, answers, reference, templates = setup
    with StandinServer(verdict="m") as srv:
        records, failures, stats = _run("alpaca_eval2", srv, tmp_path / "cache" / "run.jsonl", setup,
                                        logprobs=False, verdict_regex=NANO_PATTERNS)
        judge = _judge(srv.base_url, logprobs=False, verdict_regex=NANO_PATTERNS)
    assert not failures and stats["new_requests"] > 0
    n, todo = render(bench, judge, [Job("m", questions, answers, reference)], tmp_path / "cache", templates)
    assert (n, len(todo)) == (stats["requests"], 0)
    # another reading of the answers is another judgment: all of them would be asked again
    other = _judge(srv.base_url, logprobs=False, verdict_regex={"1": "^m$", "2": "^M$"})
    assert len(render(bench, other, [Job("m", questions, answers, reference)], tmp_path / "cache", templates)[1]) == n
