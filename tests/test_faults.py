"""Judging runs against a fault-injecting OpenAI-compatible stand-in, through the real protocols.

``reproduce.judges.run.judge_model`` with the official AlpacaEval 2, Arena-Hard and MT-Bench protocols
and ``OpenAIJudge``: whatever the server does (429 + Retry-After, 5xx, hangs past the timeout, dropped
connections, truncated JSON, empty content, missing log-probs, prose instead of a verdict, a different
verdict on every call), every game ends judged or explicitly listed as failed, no failure is ever
stored or scored as a verdict, and a rerun asks exactly the failed games again.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from pathlib import Path

import pytest

from reproduce.benchmarks.questions import default_mirror, fetch_file, load_questions
from reproduce.benchmarks.reference import reference_answers
from reproduce.config import load_config
from reproduce.io import DataError, read_jsonl
from reproduce.judges.base import JudgeReply
from reproduce.judges.cache import JudgmentCache
from reproduce.judges.openai_judge import OpenAIJudge
from reproduce.judges.run import judge_model, protocol_module

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
SYNTHETIC_ARENA = {"system_prompt": "Judge A and B. Labels: [[A>>B]] [[A>B]] [[A=B]] [[B>A]] [[B>>A]].",
                   "prompt_template": ["<|User Prompt|>\n{question_1}\n<|A|>\n{answer_1}\n<|B|>\n{answer_2}"]}


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-faults-test")


def _setup(protocol: str):
    """(bench, questions, answers, reference, templates) for a tiny benchmark of ``protocol``."""
    cfg = load_config({"preset": "tiny"})
    bench = dict(cfg["benchmarks"][f"tiny_{protocol}"])
    bench["questions"] = dict(bench["questions"], n=N_QUESTIONS)
    bench["judging"] = dict(bench["judging"], max_attempts=2)
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
        templates = protocol_module(protocol).load_templates(bench)
    elif protocol == "arena_hard":
        spec = load_config({"preset": "paper"})["benchmarks"]["arena_hard"]["questions"]["files"]["judge_config"]
        mirror = default_mirror()
        if mirror is not None and (mirror / spec["path"]).exists():
            from reproduce.benchmarks.templates import arena_hard_config

            templates = arena_hard_config(fetch_file(spec, mirror))  # the official v0.1 prompt
        else:
            templates = SYNTHETIC_ARENA
    else:
        templates = MT_TEMPLATES
    return bench, questions, answers, reference, templates


def _judge(base_url: str, **overrides) -> OpenAIJudge:
    cfg = {"kind": "openai", "model": "standin-judge", "base_url": base_url, "api_key_env": KEY_ENV,
           "concurrency": 4, "timeout_s": 0.4, "max_retries": 3}
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
    proto = protocol_module(protocol)
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
    # scoring counts failures as failures, never as a draw or a rating
    if judged:
        result = proto.score(records, bench, length_controlled=False)
        n_failed = {"alpaca_eval2": result.get("n_failed"), "arena_hard": None,
                    "mt_bench": (result.get("n_failed", 0) or 0)}[protocol]
        if protocol == "alpaca_eval2":
            # identical outputs are official draws (1.5, never sent); every other record needs a verdict
            assert n_failed == len(failures) and result["n_total"] == len(records) - len(failures)
        elif protocol == "mt_bench":
            single_failed = sum(1 for f in failures if f["game"].startswith("single"))
            assert n_failed == single_failed
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


@pytest.mark.parametrize("protocol", ["alpaca_eval2", "arena_hard", "mt_bench"])
def test_every_fault_ends_judged_or_listed(protocol, tmp_path):
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    # transport faults twice in a row for the first requests, then every content fault: some games
    # recover on retry, some fail for good (max_attempts 2 with content faults back to back)
    script = ALL_FAULTS + [Fault.reply("no verdict here")] * 6
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, script=script, lifetime_s=60) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
        judged, failed = check_accounting(protocol, setup, records, failures, cache_path)
        assert judged > 0
        assert stats["failed_games"] == failed
        assert not srv.script, "not every scripted fault was served"
        # rerun on a healthy server: only the failed games are asked again, and now all are judged
        before = srv.count
        records2, failures2, stats2 = _run(protocol, srv, cache_path, setup)
        assert stats2["new_requests"] == len({(f["question_id"], f["game"]) for f in failures}) or failed == 0
        assert srv.count - before == stats2["new_requests"]
        assert failures2 == []
        check_accounting(protocol, setup, records2, failures2, cache_path)
        # what was judged the first time stands unchanged
        for r1, r2 in zip(records, records2):
            g1, g2 = _games(protocol, r1), _games(protocol, r2)
            assert all(g2[g] == v for g, v in g1.items() if v is not None)


@pytest.mark.parametrize("protocol", ["alpaca_eval2", "arena_hard", "mt_bench"])
def test_prose_only_judge_fails_everything_and_caches_nothing(protocol, tmp_path):
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    with StandinServer(verdict="I would rather not say.", top_logprobs={"x": -0.1}, lifetime_s=60) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
    judged, failed = check_accounting(protocol, setup, records, failures, cache_path)
    assert judged == 0 and failed == stats["requests"] > 0
    assert not cache_path.exists() or cache_path.read_text() == ""
    assert all("no verdict parsed after 2 attempt(s)" in f["reason"] for f in failures), failures[0]
    proto = protocol_module(protocol)
    if protocol == "mt_bench":
        result = proto.score(records, setup[0])
        assert result["score"] is None and result["n_failed"] == N_QUESTIONS and result["win_rate"] is None
    else:
        with pytest.raises(DataError, match="nothing to score"):
            proto.score(records, setup[0], length_controlled=False)


def test_missing_logprobs_is_a_failure_not_a_draw(tmp_path):
    setup = _setup("alpaca_eval2")
    with StandinServer(verdict="m", lifetime_s=60, script=[Fault.no_logprobs()] * 100) as srv:
        records, failures, _ = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup)
    assert failures and all(r["preference"] in (None, 1.5) for r in records)
    # 1.5 only where the official rule says so (identical outputs, never sent to the judge)
    sent = {f["question_id"] for f in failures}
    assert all(r["preference"] is None for r in records if r["question_id"] in sent)


def test_final_http_errors_are_failures_with_the_status(tmp_path):
    setup = _setup("arena_hard")
    with StandinServer(verdict=verdict_for, script=[Fault.status(401)] * 200, lifetime_s=60) as srv:
        records, failures, _ = _run("arena_hard", srv, tmp_path / "c.jsonl", setup)
    assert len(failures) == 2 * N_QUESTIONS
    assert all("HTTP 401" in f["reason"] for f in failures)
    assert all(g["score"] is None for r in records for g in r["games"])


def test_unreachable_endpoint_is_a_failure_not_a_hang(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    setup = _setup("mt_bench")
    records, failures, _ = asyncio.run(judge_model(
        setup[0], _judge(f"http://127.0.0.1:{port}/v1", max_retries=1), JudgmentCache(tmp_path / "c.jsonl"),
        setup[1], setup[2], setup[3], setup[4], log=lambda m: None))
    assert failures and all("cannot connect" in f["reason"] for f in failures)
    assert all(s["score"] is None for r in records for s in r["single"])


@pytest.mark.parametrize("protocol", ["arena_hard", "mt_bench", "alpaca_eval2"])
def test_a_different_verdict_each_call_is_judged_once(protocol, tmp_path):
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    flaky_lp = lambda body, n: logprobs_for({"messages": [n]})  # noqa: E731
    with StandinServer(verdict=flaky_verdict_for, top_logprobs=flaky_lp, lifetime_s=60) as srv:
        records, failures, stats = _run(protocol, srv, cache_path, setup)
        asked = srv.count
        assert failures == [] and asked == stats["new_requests"] > 0
        records2, _, stats2 = _run(protocol, srv, cache_path, setup)
        assert srv.count == asked and stats2["new_requests"] == 0, "a cached judgment was asked again"
    assert [_games(protocol, r) for r in records] == [_games(protocol, r) for r in records2]
    assert len(read_jsonl(cache_path)) == stats["new_requests"]  # appended once, never duplicated


@pytest.mark.parametrize("bad", [None, float("nan")])
def test_a_cached_failure_from_elsewhere_is_asked_again(bad, tmp_path):
    """A cache line with a None/NaN verdict (another tool's, or an old run's) is never reused as a result."""
    protocol = "arena_hard"
    setup = _setup(protocol)
    cache_path = tmp_path / "_cache.jsonl"
    with StandinServer(verdict=verdict_for, lifetime_s=60) as srv:
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
    with StandinServer(verdict=verdict_for, lifetime_s=60) as srv:
        _, _, stats = _run(protocol, srv, cache_path, setup)
        data = cache_path.read_bytes()
        cache_path.write_bytes(data[: len(data) - 25])  # a kill mid-append: last line torn
        before = srv.count
        records, failures, stats2 = _run(protocol, srv, cache_path, setup)
        assert stats2["new_requests"] == 1 and srv.count == before + 1
    assert failures == []
    entries = read_jsonl(cache_path)  # strict: no torn line left
    assert len(entries) == stats["new_requests"] == len({e["key"] for e in entries})
