"""Judging runs against a fault-injecting OpenAI-compatible stand-in, through the real protocols.

``reproduce.judges.run.judge_model`` with the official AlpacaEval 2, Arena-Hard and MT-Bench protocols
and ``OpenAIJudge``: whatever the server does (429 + Retry-After, 5xx, hangs past the timeout, dropped
connections, truncated JSON, empty content, missing log-probs, prose instead of a verdict, a different
verdict on every call, an unknown model), every game ends judged or explicitly listed as failed, no
failure is ever stored or scored as a verdict, a score with failed games says so, and a rerun asks
exactly the failed games again. The seeded tests fix in advance which games fail (tests/fault_schedule.py).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import random
from pathlib import Path

import pytest

from reproduce.benchmarks.questions import load_questions
from reproduce.benchmarks.reference import reference_answers
from reproduce.config import load_config
from reproduce.io import DataError, read_jsonl
from reproduce.judges import run as judge_run
from reproduce.judges.base import JudgeFatalError, JudgeReply
from reproduce.judges.cache import JudgmentCache
from reproduce.judges.openai_judge import OpenAIJudge
from reproduce.benchmarks.protocol import get_protocol
from reproduce.judges.run import judge_model

from conftest import official_file
from fault_schedule import ScheduledStandin, doomed, doomed_schedule, request_digest
from support.standin_server import Fault, StandinServer
from support.verdicts import flaky_verdict_for, logprobs_for, verdict_for

KEY_ENV = "FAULTS_JUDGE_KEY"
N_QUESTIONS = 16

# FastChat-format judge prompts (the names and format fields of judge_prompts.jsonl; the official file is
# not in the offline mirror, and the protocol code only needs the names and placeholders)
MT_TEMPLATES = {
    name: {"name": name, "system_prompt": "You are a helpful judge.", "prompt_template": tmpl}
    for name, tmpl in {
        "single-v1": "[Question]\n{question}\n[Answer]\n{answer}\nRate it: \"[[rating]]\", e.g. \"Rating: [[5]]\".",
        "single-math-v1": "[Question]\n{question}\n[Reference]\n{ref_answer_1}\n[Answer]\n{answer}\n"
                          "Rate it: \"[[rating]]\", e.g. \"Rating: [[5]]\".",
        "pair-v2": "[Question]\n{question}\n[A]\n{answer_a}\n[B]\n{answer_b}\nSay \"[[A]]\", \"[[B]]\" or \"[[C]]\".",
        "pair-math-v1": "[Question]\n{question}\n[Reference]\n{ref_answer_1}\n[A]\n{answer_a}\n[B]\n{answer_b}\n"
                        "Say \"[[A]]\", \"[[B]]\" or \"[[C]]\".",
    }.items()
}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-faults-test")
    monkeypatch.setattr(judge_run, "ROUND_WAIT_S", (0.05, 0.2))  # re-ask rounds in tenths of a second


def _setup(protocol: str):
    """(bench, questions, answers, reference, templates) for a tiny benchmark of ``protocol``."""
    cfg = load_config({"preset": "tiny"})
    bench = dict(cfg["benchmarks"][f"tiny_{protocol}"])
    bench["questions"] = dict(bench["questions"], n=N_QUESTIONS)
    bench["judging"] = dict(bench["judging"], max_attempts=2, retry_budget_s=1.0)
    if protocol == "arena_hard":
        bench["judging"]["bootstrap_rounds"] = 10  # the CI is not under test here; 100 fits per score are slow
    questions = load_questions(bench)
    reference = {r["question_id"]: r for r in reference_answers(bench, questions)}
    rng = random.Random(7)
    answers = {q["question_id"]: {"question_id": q["question_id"], "model": "m",
                                  "turns": [str(int(q["reference"][0]) + rng.choice([0, 0, 1, 10]))]}
               for q in questions}
    for qid, a in answers.items():  # identical outputs are never sent to an AlpacaEval judge: avoid them
        if a["turns"] == reference[qid]["turns"]:
            a["turns"] = [a["turns"][0] + " (checked)"]
    if protocol == "alpaca_eval2":
        templates = get_protocol(protocol).load_templates(bench)
    elif protocol == "arena_hard":
        spec = load_config({"preset": "paper"})["benchmarks"]["arena_hard"]["questions"]["files"]["judge_config"]
        from reproduce.benchmarks.templates import arena_hard_config

        templates = arena_hard_config(official_file(spec["path"]))  # the official v0.1 prompt
    else:
        templates = MT_TEMPLATES
    return bench, questions, answers, reference, templates


def _judge(base_url: str, **overrides) -> OpenAIJudge:
    cfg = {"kind": "openai", "model": "standin-judge", "base_url": base_url, "api_key_env": KEY_ENV,
           "concurrency": 4, "timeout_s": 0.4, "max_retries": 2}
    cfg.update(overrides)
    return OpenAIJudge("standin", cfg, backoff_base_s=0.01, max_wait_s=0.3)


def _run(protocol, srv, cache_path, setup, **judge_overrides):
    bench, questions, answers, reference, templates = setup
    cache = JudgmentCache(cache_path)
    return asyncio.run(judge_model(bench, _judge(srv.base_url, **judge_overrides), cache, questions, answers,
                                   reference, templates, log=lambda m: None))


def _games(protocol: str, record: dict) -> dict:
    """{game: verdict} as the record stores it (None = no verdict)."""
    if protocol == "alpaca_eval2":
        game = "switched" if record["is_switched_outputs"] else "unswitched"
        return {game: record["preference"]}
    if protocol == "arena_hard":
        return {g: game["score"] for g, game in zip(("game1", "game2"), record["games"])}
    out = {f"single-t{s['turn']}": s["score"] for s in record["single"]}
    inv = {"model_1": "A", "model_2": "B", "tie": "tie"}
    for p in record["pairwise"]:
        out[f"pair-t{p['turn']}-g1"] = inv.get(p["g1_winner"])
        out[f"pair-t{p['turn']}-g2"] = {"model_1": "B", "model_2": "A", "tie": "tie"}.get(p["g2_winner"])
    return out


def check_accounting(protocol, setup, records, failures, cache_path) -> tuple[int, int]:
    """Every game is judged xor listed as failed; no failure anywhere looks like a verdict.

    Returns (judged games, failed games)."""
    bench, questions, answers, reference, templates = setup
    proto = get_protocol(protocol)
    assert [r["question_id"] for r in records] == [q["question_id"] for q in questions], "a question was lost"
    failed = {(f["question_id"], f["game"]) for f in failures}
    assert len(failed) == len(failures), "a failure is listed twice"
    for f in failures:
        assert f["reason"], f
    judged = 0
    for q, rec in zip(questions, records):
        expected = [g for g, _ in proto.build_requests(q, answers[q["question_id"]], reference[q["question_id"]],
                                                       bench, templates)]
        games = _games(protocol, rec)
        for g in expected:
            v = games[g]
            if (q["question_id"], g) in failed:
                assert v is None, f"failed game {q['question_id']}/{g} carries verdict {v!r}"
            else:
                assert v is not None and not (isinstance(v, float) and math.isnan(v)), \
                    f"game {q['question_id']}/{g} has no verdict and is not listed as failed"
                judged += 1
    # the cache holds only verdicts that its own stored reply parses to
    if cache_path.exists():
        lines = cache_path.read_text().splitlines()
        keys = [json.loads(line)["key"] for line in lines]
        assert len(keys) == len(set(keys)), "duplicate cache entries"
        for line in lines:
            entry = json.loads(line)
            v = entry["verdict"]
            assert v is not None and not (isinstance(v, float) and math.isnan(v)), entry
            reply = JudgeReply(**entry["reply"])
            reparsed = {proto.parse(g, reply) for g in _game_names(protocol)} - {None}
            assert reparsed, f"cached reply does not parse to any verdict: {entry['reply']['text']!r}"
    # scoring counts failures as failures, never as a draw or a rating, and says the score is incomplete
    if judged:
        result = proto.score(records, bench, length_controlled=False)
        expected = sum(len(proto.build_requests(q, answers[q["question_id"]], reference[q["question_id"]], bench,
                                                templates)) for q in questions)
        assert (result["n_expected"], result["n_judged"], result["n_failed"]) == (expected, judged, len(failures))
        assert result["complete"] is (not failures)
        if protocol == "alpaca_eval2":
            assert result["n_total"] == len(records) - len(failures)
        elif protocol == "arena_hard":
            assert result["n_failed_games"] == len(failures)
            assert result["n_failed_prompts"] == len({f["question_id"] for f in failures})
        else:
            assert result["n_failed_ratings"] == sum(f["game"].startswith("single") for f in failures)
    return judged, len(failures)


def _game_names(protocol):
    return {"alpaca_eval2": ("unswitched", "switched"), "arena_hard": ("game1", "game2"),
            "mt_bench": ("single-t1", "pair-t1-g1")}[protocol]


ALL_FAULTS = [
    Fault.rate_limit("0.05"), Fault.status(500), Fault.hang(2.0), Fault.drop(), Fault.truncated(),
    Fault.empty(), Fault.no_logprobs(), Fault.reply("Both answers look reasonable to me."),
    Fault.rate_limit(None, retry_after_ms="30"), Fault.status(503), Fault.reply("[[maybe]] Rating: [[11]]"),
    Fault.truncated(), Fault.drop(), Fault.status(502), Fault.empty(),
]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["alpaca_eval2", "arena_hard", "mt_bench"])
def test_every_fault_ends_judged_or_listed(protocol, tmp_path):
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    # transport faults twice in a row for the first requests, then every content fault: some games
    # recover on retry, some fail for good (max_attempts 2 with content faults back to back)
    script = ALL_FAULTS + [Fault.reply("no verdict here")] * 6
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, script=script) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
        judged, failed = check_accounting(protocol, setup, records, failures, cache_path)
        assert judged > 0
        assert stats["failed_games"] == failed
        assert not srv.script, "not every scripted fault was served"
        # rerun on a healthy server: exactly the failed games are asked again, and now all are judged
        before = srv.count
        records2, failures2, stats2 = _run(protocol, srv, cache_path, setup)
        assert stats2["new_requests"] == len({(f["question_id"], f["game"]) for f in failures})
        assert srv.count - before == stats2["new_requests"]
        assert failures2 == []
        check_accounting(protocol, setup, records2, failures2, cache_path)
        # what was judged the first time stands unchanged
        for r1, r2 in zip(records, records2):
            g1, g2 = _games(protocol, r1), _games(protocol, r2)
            assert all(g2[g] == v for g, v in g1.items() if v is not None)


# which fault the doomed games get on every ask of the first run: transient kinds for AlpacaEval 2 and
# Arena-Hard (re-asked in rounds until the retry budget is spent), prose for MT-Bench (no verdict parses)
DOOMED_KINDS = {"alpaca_eval2": ["429", "500", "truncated", "empty", "503"], "arena_hard": ["503", "truncated", "429"]}
SURVIVABLE = ["429", "500", "503", "drop", "truncated", "empty"]


def _doomed_games(protocol, setup, seed, rate) -> set:
    """(question id, game) of every game the seeded schedule fails on every ask."""
    bench, questions, answers, reference, templates = setup
    proto = get_protocol(protocol)
    return {(q["question_id"], g) for q in questions
            for g, r in proto.build_requests(q, answers[q["question_id"]], reference[q["question_id"]], bench, templates)
            if doomed(seed, r.messages, rate)}


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["alpaca_eval2", "arena_hard", "mt_bench"])
def test_seeded_faults_fail_known_games_and_the_rerun_asks_exactly_those(protocol, tmp_path):
    setup = _setup(protocol)
    seed, rate = 20261122, 0.2
    expected_failed = _doomed_games(protocol, setup, seed, rate)
    n_games = sum(len(get_protocol(protocol).build_requests(q, setup[2][q["question_id"]], setup[3][q["question_id"]],
                                                                setup[0], setup[4])) for q in setup[1])
    assert 0 < len(expected_failed) < n_games  # the seed dooms some games, not all
    prose = (lambda: Fault.reply("I cannot decide.")) if protocol == "mt_bench" else None
    schedule = doomed_schedule(seed, rate, DOOMED_KINDS.get(protocol, ["500"]), transient_faults=2, doomed_fault=prose)
    cache_path = tmp_path / "_cache.jsonl"
    with ScheduledStandin(schedule, verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
        assert {(f["question_id"], f["game"]) for f in failures} == expected_failed
        judged, failed = check_accounting(protocol, setup, records, failures, cache_path)
        assert failed == len(expected_failed) and judged == n_games - failed
        score = get_protocol(protocol).score(records, setup[0], length_controlled=False)
        assert score["complete"] is False and score["n_failed"] == failed and score["n_expected"] == n_games
        # the rerun asks exactly the failed games (the server now answers them) and nothing else
        srv.healthy = True
        before, asked_before = srv.count, dict(srv.asked)
        records2, failures2, stats2 = _run(protocol, srv, cache_path, setup)
        rerun_asked = {d for d, n in srv.asked.items() if n > asked_before.get(d, 0)}
        assert stats2["new_requests"] == srv.count - before == len(expected_failed)
        proto = get_protocol(protocol)
        doomed_digests = {request_digest(r.messages) for q in setup[1]
                          for g, r in proto.build_requests(q, setup[2][q["question_id"]], setup[3][q["question_id"]],
                                                           setup[0], setup[4]) if (q["question_id"], g) in expected_failed}
        assert rerun_asked == doomed_digests
        assert failures2 == []
    check_accounting(protocol, setup, records2, failures2, cache_path)
    # after the rerun the score is complete and equals a fault-free run's
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for) as clean:
        records3, failures3, _ = _run(protocol, clean, tmp_path / "clean.jsonl", setup)
    assert failures3 == []
    final = proto.score(records2, setup[0], length_controlled=False)
    assert final["complete"] is True and final == proto.score(records3, setup[0], length_controlled=False)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["alpaca_eval2", "arena_hard"])
def test_survivable_faults_on_every_game_cost_nothing(protocol, tmp_path):
    """Every game meets up to two faults of every transient kind, none doomed: all are judged in the job."""
    setup = _setup(protocol)
    schedule = doomed_schedule(7, 0.0, SURVIVABLE, transient_faults=2)
    with ScheduledStandin(schedule, verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        records, failures, stats = _run(protocol, srv, tmp_path / "_cache.jsonl", setup)
        assert srv.count > stats["new_requests"]  # faults were served and retried
    assert failures == []
    judged, _ = check_accounting(protocol, setup, records, failures, tmp_path / "_cache.jsonl")
    assert judged == stats["requests"]


@pytest.mark.parametrize("protocol", ["alpaca_eval2", "arena_hard", "mt_bench"])
def test_prose_only_judge_fails_everything_and_caches_nothing(protocol, tmp_path):
    """Every game of every protocol failed: nothing cached, and the score says so (no number, or none at all)."""
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    with StandinServer(verdict="I would rather not say.", top_logprobs={"x": -0.1}) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
    judged, failed = check_accounting(protocol, setup, records, failures, cache_path)
    assert judged == 0 and failed == stats["requests"] > 0
    assert not cache_path.exists() or cache_path.read_text() == ""
    # the failure's message (naming question, game and the prose) is checked once, in test_bad_input.py
    proto = get_protocol(protocol)
    if protocol == "mt_bench":
        result = proto.score(records, setup[0])
        assert result["score"] is None and result["n_failed"] == stats["requests"] and result["win_rate"] is None
        assert result["complete"] is False and result["n_judged"] == 0
    else:
        with pytest.raises(DataError, match="nothing to score"):
            proto.score(records, setup[0], length_controlled=False)


def test_missing_logprobs_is_a_failure_not_a_draw(tmp_path):
    setup = _setup("alpaca_eval2")
    with StandinServer(verdict="m", script=[Fault.no_logprobs()] * 100) as srv:
        records, failures, _ = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup)
    assert failures and all(r["preference"] in (None, 1.5) for r in records)
    # 1.5 only where the official rule says so (identical outputs, never sent to the judge)
    sent = {f["question_id"] for f in failures}
    assert all(r["preference"] is None for r in records if r["question_id"] in sent)


def test_final_http_errors_are_failures_with_the_status(tmp_path):
    setup = _setup("arena_hard")
    with StandinServer(verdict=verdict_for, script=[Fault.status(401)] * 200) as srv:
        records, failures, _ = _run("arena_hard", srv, tmp_path / "c.jsonl", setup)
    assert len(failures) == 2 * N_QUESTIONS
    assert all("HTTP 401" in f["reason"] for f in failures)
    assert all(g["score"] is None for r in records for g in r["games"])


@pytest.mark.slow
def test_endpoint_that_always_fails_lists_every_game_and_loses_nothing(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="reproduce.judges.run")
    protocol = "arena_hard"
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    always = lambda body, k: Fault("status", code=503, headers={"retry-after-ms": "20"})  # noqa: E731
    with ScheduledStandin(always, verdict=verdict_for) as srv:
        srv.healthy = True  # judge half the questions first (same endpoint, so the same cache keys)
        half = (setup[0], setup[1][: N_QUESTIONS // 2], *setup[2:])
        _, failures, stats = _run(protocol, srv, cache_path, half)
        assert failures == [] and len(read_jsonl(cache_path)) == stats["requests"]
        kept = cache_path.read_bytes()
        srv.healthy, before = False, srv.count
        records, failures, stats2 = _run(protocol, srv, cache_path, setup)
        assert srv.count - before >= 2 * stats2["new_requests"]  # asked again in rounds, not given up at once
    assert stats2["new_requests"] == stats2["requests"] - stats["requests"] == len(failures)
    assert all(srv.base_url in f["reason"] and "HTTP 503" in f["reason"] and "retry budget" in f["reason"]
               for f in failures)
    assert "asking them again" in caplog.text
    assert cache_path.read_bytes() == kept  # nothing judged before is lost, nothing failed is stored
    check_accounting(protocol, setup, records, failures, cache_path)


def test_unknown_model_stops_the_job_at_the_first_reply(tmp_path):
    protocol = "mt_bench"
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    gone = lambda body, k: Fault.status(404)  # noqa: E731
    with ScheduledStandin(gone, verdict=verdict_for) as srv:
        srv.healthy = True
        half = (setup[0], setup[1][: N_QUESTIONS // 2], *setup[2:])
        _, _, stats = _run(protocol, srv, cache_path, half, model="gpt-4-1106-preview")
        kept = cache_path.read_bytes()
        assert len(read_jsonl(cache_path)) == stats["requests"] > 0
        srv.healthy, before = False, srv.count
        with pytest.raises(JudgeFatalError) as err:
            _run(protocol, srv, cache_path, setup, model="gpt-4-1106-preview")
        assert srv.count - before <= 4  # what was in flight at the first 404 (concurrency 4), never retried
    msg = str(err.value)
    assert "evals/judges/standin.yaml" in msg and "'gpt-4-1106-preview'" in msg and "evals/judges/gpt-4o.yaml" in msg
    assert cache_path.read_bytes() == kept


def test_a_fault_in_code_stops_the_job_at_its_first_occurrence(tmp_path, monkeypatch):
    """The 2026-12-06 failure: building the client raised TypeError (a transport type the client no longer
    took) in every game. The job stops at the first one with JudgeCodeError naming the type, the message
    and the game; nothing reaches the endpoint and nothing is cached."""
    from reproduce.judges.base import JudgeCodeError

    setup = _setup("mt_bench")
    cache_path = tmp_path / "_cache.jsonl"
    calls = []

    def broken_session(self):
        calls.append(1)
        raise TypeError("Invalid timeout: expected a number, got <class 'Timeout'>")

    monkeypatch.setattr(OpenAIJudge, "_session", broken_session)
    with StandinServer(verdict=verdict_for) as srv:
        with pytest.raises(JudgeCodeError) as err:
            _run("mt_bench", srv, cache_path, setup)
        assert srv.count == 0
    assert len(calls) == 1  # the first game, not every game once
    msg = str(err.value)
    assert "TypeError: Invalid timeout" in msg and "(game " in msg and "\n" not in msg
    assert err.value.game.split("/")[0] in {str(q["question_id"]) for q in setup[1]}
    assert isinstance(err.value.error, TypeError)
    assert not cache_path.exists() or cache_path.read_text() == ""


def test_the_clients_own_error_fails_the_game_not_the_job(tmp_path, monkeypatch):
    """An ``openai.APIError`` the judge lets through is the endpoint's answer (listed as a failed game with
    its reason), not a fault in code: the job goes on and judges the other games."""
    import openai

    setup = _setup("mt_bench")
    real = OpenAIJudge.complete
    seen = []

    async def sometimes_unparseable(self, request):
        seen.append(1)
        if len(seen) % 3 == 0:
            raise openai.APIResponseValidationError(response=_FakeResponse(), body=None,
                                                    message="reply does not match the schema")
        return await real(self, request)

    monkeypatch.setattr(OpenAIJudge, "complete", sometimes_unparseable)
    with StandinServer(verdict=verdict_for) as srv:
        records, failures, stats = _run("mt_bench", srv, tmp_path / "_cache.jsonl", setup)
    assert failures and stats["n_judged"] > 0
    assert all("APIResponseValidationError" in f["reason"] for f in failures)


class _FakeResponse:
    """What ``openai.APIResponseValidationError`` reads from a response: its request and status."""

    request = None
    status_code = 200
    headers: dict = {}


@pytest.mark.parametrize("protocol", ["arena_hard", "mt_bench", "alpaca_eval2"])
def test_a_different_verdict_each_call_is_judged_once(protocol, tmp_path):
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    flaky_lp = lambda body, n: logprobs_for({"messages": [n]})  # noqa: E731
    with StandinServer(verdict=flaky_verdict_for, top_logprobs=flaky_lp) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
        asked = srv.count
        assert failures == [] and asked == stats["new_requests"] > 0
        records2, _, stats2 = _run(protocol, srv, cache_path, setup)
        assert srv.count == asked and stats2["new_requests"] == 0, "a cached judgment was asked again"
    assert [_games(protocol, r) for r in records] == [_games(protocol, r) for r in records2]
    assert len(read_jsonl(cache_path)) == stats["new_requests"]  # appended once, never duplicated


@pytest.mark.slow
@pytest.mark.parametrize("bad", [None, float("nan")])
def test_a_cached_failure_from_elsewhere_is_asked_again(bad, tmp_path):
    """A cache line with a None/NaN verdict (another tool's, or an old run's) is never reused as a result."""
    protocol = "arena_hard"
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    with StandinServer(verdict=verdict_for) as srv:
        _run(protocol, srv, cache_path, setup)
        lines = cache_path.read_text().splitlines()
        first = json.loads(lines[0])
        first["verdict"] = bad
        cache_path.write_text(json.dumps(first) + "\n" + "\n".join(lines[1:]) + "\n")
        before = srv.count
        records, failures, stats = _run(protocol, srv, cache_path, setup)
        assert stats["new_requests"] == 1 and srv.count == before + 1
    assert failures == []
    assert all(g["score"] is not None for r in records for g in r["games"])


def test_torn_cache_tail_is_repaired_and_reasked(tmp_path):
    protocol = "mt_bench"
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    with StandinServer(verdict=verdict_for) as srv:
        _, _, stats = _run(protocol, srv, cache_path, setup)
        data = cache_path.read_bytes()
        cache_path.write_bytes(data[: len(data) - 25])  # a kill mid-append: last line torn
        before = srv.count
        records, failures, stats2 = _run(protocol, srv, cache_path, setup)
        assert stats2["new_requests"] == 1 and srv.count == before + 1
    assert failures == []
    entries = read_jsonl(cache_path)  # strict: no torn line left
    assert len(entries) == stats["new_requests"] == len({e["key"] for e in entries})


def test_failed_games_mark_the_score_and_table1_which_refuses_them_by_default(tmp_path):
    """A job with failed games writes its judgments (failed games without a verdict) and the failures;
    the score says incomplete; Table 1 shows ``value* (judged/expected)``, says so in the legend, and the
    table build exits with the cell named unless ``accept_incomplete`` is set."""
    from reproduce import cli
    from reproduce.io import atomic_write_jsonl
    from reproduce.report.table1 import build_table1

    protocol = "alpaca_eval2"
    setup = _setup(protocol)
    cfg = load_config({"preset": "tiny"})
    results = tmp_path / "results"
    judgments = results / "judgments" / "tiny_alpaca_eval2" / "verifier" / "tiny-add" / "dpo.jsonl"
    seed, rate = 5, 0.15
    expected_failed = _doomed_games(protocol, setup, seed, rate)
    assert 0 < len(expected_failed) < N_QUESTIONS
    with ScheduledStandin(doomed_schedule(seed, rate, DOOMED_KINDS[protocol]), verdict=verdict_for,
                          top_logprobs=logprobs_for) as srv:
        records, failures, _ = _run(protocol, srv, tmp_path / "_cache.jsonl", setup)
    assert {(f["question_id"], f["game"]) for f in failures} == expected_failed
    records = [dict(r, annotator="verifier") for r in records]  # filed under the table judge's cell
    atomic_write_jsonl(judgments, records)
    score_file = results / "scores" / "tiny_alpaca_eval2" / "verifier" / "tiny-add" / "dpo.json"
    assert cli.main(["score", "--benchmark", "tiny_alpaca_eval2", "--judgments", str(judgments),
                     "--out", str(score_file)]) == 0
    score = json.loads(score_file.read_text())
    # the score covers the benchmark's questions: the ones these 16 judgments leave out count as failed too
    from reproduce.benchmarks.questions import load_questions

    n = len(load_questions(cfg["benchmarks"]["tiny_alpaca_eval2"]))
    judged = N_QUESTIONS - len(failures)
    assert (score["n_expected"], score["n_judged"], score["complete"]) == (n, judged, False)
    assert score["n_questions_missing"] == n - N_QUESTIONS
    with pytest.raises(DataError) as err:
        build_table1(cfg, "verifier", results, tmp_path / "tables", log=lambda m: None)
    cell = f"tiny-add/dpo/AE-WR {judged}/{n}"
    assert cell in str(err.value) and "accept_incomplete" in str(err.value) and "--forcerun judge" in str(err.value)
    md = (tmp_path / "tables" / "table1_verifier.md").read_text()
    assert f"{score['win_rate']:.1f}* ({judged}/{n})" in md and "INCOMPLETE: 1 value(s)" in md
    tex = (tmp_path / "tables" / "table1_verifier.tex").read_text()
    assert f"{score['win_rate']:.1f}* ({judged}/{n})" in tex
    row = next(r for r in csv.DictReader((tmp_path / "tables" / "table1_verifier.csv").open()) if r["method_key"] == "dpo")
    assert row["AE-WR_complete"] == "False" and row["AE-WR_reason"].startswith(f"incomplete: computed from {judged}")
    rows = build_table1({**cfg, "accept_incomplete": True}, "verifier", results, tmp_path / "tables", log=lambda m: None)
    assert next(r for r in rows if r["method_key"] == "dpo")["AE-WR_complete"] is False
