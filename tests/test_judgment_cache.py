"""JudgmentCache: keys, append-only storage, torn tails, duplicates, speed, and use with a judge."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from reproduce.judges.base import JudgeReply, JudgeRequest
from reproduce.judges.cache import JudgmentCache
from reproduce.judges.openai_judge import OpenAIJudge

try:
    from tests.support import judge_cached
    from tests.support.standin_server import Fault, StandinServer
except ImportError:  # pytest run without the repo root on sys.path
    from support import judge_cached
    from support.standin_server import Fault, StandinServer

KEY_ENV = "CACHE_TEST_JUDGE_KEY"
SECRET = "sk-cache-PLANTED-SECRET-77c1"
IDENTITY = {"kind": "openai", "model": "judge-x", "endpoint": "http://127.0.0.1:1/v1", "overrides": {}}


def request(question: str = "2+2?", a: str = "4", b: str = "5", temperature: float = 0.0) -> JudgeRequest:
    """A pairwise request whose prompt holds both answers in order A, B."""
    messages = ({"role": "system", "content": "Judge."},
                {"role": "user", "content": f"{question}\n[A] {a}\n[B] {b}"})
    return JudgeRequest(messages=messages, decoding={"temperature": temperature, "max_tokens": 8},
                        fields={"kind": "pair", "question": question, "answer_a": a, "answer_b": b})


def parse(text: str | None) -> str | None:
    """Verdict letter from '[[X]]', None when absent."""
    if text and text.startswith("[[") and text.endswith("]]"):
        return text[2:-2]
    return None


# ----- keys -----

def test_key_is_stable_and_content_addressed():
    k = JudgmentCache.key(IDENTITY, request())
    assert k == JudgmentCache.key(dict(IDENTITY), request()) and len(k) == 32
    others = [
        JudgmentCache.key(IDENTITY, request(a="four")),            # a regenerated answer
        JudgmentCache.key(IDENTITY, request(a="5", b="4")),        # swapped order
        JudgmentCache.key(IDENTITY, request(temperature=1.0)),     # decoding
        JudgmentCache.key({**IDENTITY, "model": "judge-y"}, request()),
        JudgmentCache.key({**IDENTITY, "endpoint": "http://127.0.0.1:2/v1"}, request()),
    ]
    assert len({k, *others}) == len(others) + 1


# ----- storage -----

def test_put_get_and_reload(tmp_path):
    path = tmp_path / "c" / "judgments.jsonl"
    cache = JudgmentCache(path)
    key = cache.key(IDENTITY, request())
    assert cache.get(key) is None and len(cache) == 0
    reply = JudgeReply(text="[[A]]", top_logprobs={"m": -0.1}, prompt_tokens=10, completion_tokens=2,
                       cost_usd=0.001, attempts=2)
    cache.put(key, reply, "A")
    again = JudgmentCache(path)
    entry = again.get(key)
    assert entry == {"key": key, "reply": reply.to_dict(), "verdict": "A"} and key in again and len(again) == 1


@pytest.mark.parametrize("verdict", [None, math.nan])
def test_failure_is_never_stored(tmp_path, verdict):
    cache = JudgmentCache(tmp_path / "j.jsonl")
    with pytest.raises(ValueError, match="refusing"):
        cache.put("k", JudgeReply(text="garbled"), verdict)
    assert cache.get("k") is None and not (tmp_path / "j.jsonl").exists()


def test_torn_tail_repaired_on_load(tmp_path):
    path = tmp_path / "j.jsonl"
    cache = JudgmentCache(path)
    cache.put("k1", JudgeReply(text="[[A]]"), "A")
    cache.put("k2", JudgeReply(text="[[B]]"), "B")
    with open(path, "a") as fh:
        fh.write('{"key": "k3", "reply": {"text": "[[')  # a crash mid-write
    loaded = JudgmentCache(path)
    assert len(loaded) == 2 and loaded.get("k3") is None
    assert path.read_text().endswith("\n")
    loaded.put("k3", JudgeReply(text="[[A]]"), "A")
    assert JudgmentCache(path).get("k3")["verdict"] == "A"


def test_duplicate_key_keeps_first(tmp_path):
    path = tmp_path / "j.jsonl"
    first = JudgmentCache(path)
    first.put("k", JudgeReply(text="[[A]]"), "A")
    first.put("k", JudgeReply(text="[[B]]"), "B")  # already present: ignored
    with open(path, "a") as fh:  # a second writer appended the same key
        fh.write('{"key": "k", "reply": {"text": "[[C]]"}, "verdict": "C"}\n')
    assert JudgmentCache(path).get("k")["verdict"] == "A"
    assert len(path.read_text().splitlines()) == 2


def test_load_and_lookup_fast(tmp_path):
    path = tmp_path / "j.jsonl"
    reqs = [request(question=f"q{i}", a=f"answer {i} " * 40, b="baseline " * 40) for i in range(1610)]
    seed = JudgmentCache(path)
    keys = [seed.key(IDENTITY, r) for r in reqs]
    from reproduce.io import append_jsonl  # bulk-write the fixture (one fsync) rather than 1610 puts
    reply = JudgeReply(text="[[A]]", prompt_tokens=500, completion_tokens=200).to_dict()
    append_jsonl(path, ({"key": k, "reply": reply, "verdict": "A"} for k in keys))
    t0 = time.perf_counter()
    cache = JudgmentCache(path)
    hits = sum(cache.get(cache.key(IDENTITY, r)) is not None for r in reqs)
    elapsed = time.perf_counter() - t0
    assert hits == 1610 and elapsed < 1.0, elapsed


# ----- with a judge -----

@pytest.fixture
def judge_env(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


def make_judge(base_url: str) -> OpenAIJudge:
    """An OpenAI judge for the stand-in with the planted secret as its key."""
    cfg = {"kind": "openai", "model": "judge-x", "base_url": base_url, "api_key_env": KEY_ENV,
           "concurrency": 8, "timeout_s": 1.0, "max_retries": 1,
           "price_per_million_input": 1.0, "price_per_million_output": 2.0}
    return OpenAIJudge("judge-x", cfg, backoff_base_s=0.01)


def test_rerun_hits_cache_and_changed_answer_misses(tmp_path, judge_env):
    reqs = [request(question=f"q{i}", a=f"a{i}") for i in range(20)]
    path = tmp_path / "cache" / "judgments.jsonl"
    # a different verdict on every call: a rerun that asked again would change the verdicts
    with StandinServer(verdict=lambda body, n: f"[[{n}]]") as srv:
        first = asyncio.run(judge_cached(make_judge(srv.base_url), JudgmentCache(path), reqs, parse))
        assert srv.count == 20 and None not in first
        rerun = asyncio.run(judge_cached(make_judge(srv.base_url), JudgmentCache(path), reqs, parse))
        assert srv.count == 20 and rerun == first  # 0 requests on the rerun
        changed = reqs[:]
        changed[3] = request(question="q3", a="a regenerated answer")
        third = asyncio.run(judge_cached(make_judge(srv.base_url), JudgmentCache(path), changed, parse))
        assert srv.count == 21 and third[3] == "21" and third[:3] == first[:3] and third[4:] == first[4:]
        assert srv.requests[0]["authorization"] == f"Bearer {SECRET}"  # the secret was really in use
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f


def test_failures_and_unparseable_replies_are_not_cached(tmp_path, judge_env):
    path = tmp_path / "j.jsonl"
    reqs = [request(question="q0"), request(question="q1")]
    with StandinServer(script=[Fault.status(500), Fault.status(500), Fault.reply("no verdict here")]) as srv:
        out = asyncio.run(judge_cached(make_judge(srv.base_url), JudgmentCache(path), reqs[:1], parse))
        assert out == [None] and srv.count == 2  # 1 try + 1 retry, then JudgeError
        out = asyncio.run(judge_cached(make_judge(srv.base_url), JudgmentCache(path), reqs[1:], parse))
        assert out == [None]
        assert not path.exists() or len(JudgmentCache(path)) == 0
        out = asyncio.run(judge_cached(make_judge(srv.base_url), JudgmentCache(path), reqs, parse))
        assert out == ["A", "A"] and srv.count == 5  # both asked again, now successfully
