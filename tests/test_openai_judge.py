"""OpenAIJudge against the scripted stand-in server: transport, retries, faults, keys, cost, configs.

Transport retries are the openai SDK's (it honours retry-after-ms / retry-after); malformed 200 replies
are asked again by the judge. No assertion here has an upper time bound (a slow machine must not fail
a test): waits are checked from below, speed is measured in perf/judge_throughput.py.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from pathlib import Path

import pytest

from reproduce.config import load_yaml, validate
from reproduce.judges.base import JudgeError, JudgeFatalError, JudgeRequest, TransientJudgeError
from reproduce.judges.kinds import make_judge
from reproduce.judges.openai_judge import OpenAIJudge

try:
    from tests.support.standin_server import Fault, StandinServer
except ImportError:  # pytest run without the repo root on sys.path
    from support.standin_server import Fault, StandinServer

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "STANDIN_JUDGE_KEY"
SECRET = "sk-test-PLANTED-SECRET-4f9a"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)


@pytest.fixture
def server():
    with StandinServer() as srv:
        yield srv


def config(base_url: str, **overrides) -> dict:
    """A judge config for the stand-in: short timeout, few retries."""
    cfg = {"kind": "openai", "model": "standin-judge", "base_url": base_url, "api_key_env": KEY_ENV,
           "concurrency": 4, "timeout_s": 0.5, "max_retries": 2,
           "price_per_million_input": 10.0, "price_per_million_output": 30.0}
    cfg.update(overrides)
    return cfg


def make(base_url: str, **overrides) -> OpenAIJudge:
    """A judge with millisecond back-off, so retry tests are fast."""
    return OpenAIJudge("standin", config(base_url, **overrides), backoff_base_s=0.01, max_wait_s=5.0)


def request(answer: str = "4", logprobs: bool = False) -> JudgeRequest:
    """A small pairwise judge request."""
    decoding = {"temperature": 0.0, "max_tokens": 16}
    if logprobs:
        decoding.update(logprobs=True, top_logprobs=5)
    messages = ({"role": "system", "content": "You are a judge."},
                {"role": "user", "content": f"Q: 2+2?\n[A] {answer}\n[B] 5\nVerdict?"})
    return JudgeRequest(messages=messages, decoding=decoding,
                        fields={"kind": "pair", "question": "2+2?", "answer_a": answer, "answer_b": "5"})


def ask(judge: OpenAIJudge, *requests: JudgeRequest):
    """Run the requests concurrently in a fresh event loop; returns (replies or exceptions, seconds)."""
    async def main():
        try:
            return await asyncio.gather(*(judge.complete(r) for r in requests), return_exceptions=True)
        finally:
            await judge.aclose()

    t0 = time.monotonic()
    out = asyncio.run(main())
    return out, time.monotonic() - t0


def one(judge: OpenAIJudge, req: JudgeRequest | None = None):
    """Ask one request; re-raise its exception."""
    (reply,), dt = ask(judge, req or request())
    if isinstance(reply, BaseException):
        raise reply
    return reply, dt


def free_port() -> int:
    """A port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----- normal answers -----

def test_reply_text_usage_cost_and_request_shape(server):
    reply, _ = one(make(server.base_url))
    assert reply.text == "[[A]]" and reply.attempts == 1
    assert reply.completion_tokens == 5 and reply.prompt_tokens > 0
    assert reply.cost_usd == pytest.approx((reply.prompt_tokens * 10 + 5 * 30) / 1e6)
    sent = server.requests[0]
    assert sent["authorization"] == f"Bearer {SECRET}"
    body = sent["body"]
    assert body["model"] == "standin-judge" and body["temperature"] == 0 and body["max_tokens"] == 16
    assert body["messages"][1]["content"].startswith("Q: 2+2?")
    assert "logprobs" not in body and reply.top_logprobs is None and reply.extra == {}


def test_first_token_top_logprobs(server):
    reply, _ = one(make(server.base_url), request(logprobs=True))
    assert reply.top_logprobs == {"m": -0.1, "M": -2.4, "I": -6.0}
    assert server.requests[0]["body"]["logprobs"] is True and server.requests[0]["body"]["top_logprobs"] == 5


def test_missing_logprobs_flagged_not_retried(server):
    server.add(Fault.no_logprobs())
    reply, _ = one(make(server.base_url), request(logprobs=True))
    assert reply.text == "[[A]]" and reply.top_logprobs is None
    assert reply.extra["missing_logprobs"] is True and reply.attempts == 1


def test_config_overrides_decoding(server):
    judge = make(server.base_url, temperature=0.7, max_tokens=3, logprobs=False)
    reply, _ = one(judge, request(logprobs=True))
    body = server.requests[0]["body"]
    assert body["temperature"] == 0.7 and body["max_tokens"] == 3 and "logprobs" not in body
    assert reply.extra["missing_logprobs"] is True  # asked for, but this endpoint never gives them
    assert judge.identity()["overrides"] == {"temperature": 0.7, "max_tokens": 3, "logprobs": False}


def test_empty_content_is_asked_again(server, caplog):
    caplog.set_level(logging.INFO, logger="reproduce.judges.openai_judge")
    server.add(Fault.empty())
    reply, _ = one(make(server.base_url))
    assert reply.text == "[[A]]" and reply.attempts == 2 and server.count == 2
    assert "malformed 200 reply (empty content); asking again" in caplog.text


def test_malformed_replies_that_never_stop_are_transient(server):
    server.add(*[Fault.truncated()] * 3)
    with pytest.raises(TransientJudgeError, match="3 malformed replies in a row"):
        one(make(server.base_url, max_retries=2))
    assert server.count == 3


def test_fixed_and_varying_verdicts():
    with StandinServer(verdict=lambda body, n: f"[[{n}]]") as srv:
        replies, _ = ask(make(srv.base_url, concurrency=1), request(), request(), request())
        assert sorted(r.text for r in replies) == ["[[1]]", "[[2]]", "[[3]]"]
    with StandinServer(verdict="My final verdict is [[B>A]]") as srv:
        reply, _ = one(make(srv.base_url))
        assert reply.text == "My final verdict is [[B>A]]"


# ----- retries -----

def test_429_retry_after_seconds(server):
    server.add(Fault.rate_limit(retry_after="1"))
    reply, dt = one(make(server.base_url))
    assert reply.attempts == 2 and server.count == 2
    assert dt >= 0.95  # the server's wait was honoured, not the 10 ms back-off


def test_429_retry_after_ms(server):
    server.add(Fault.rate_limit(retry_after=None, retry_after_ms="300"))
    reply, dt = one(make(server.base_url))
    assert reply.attempts == 2 and dt >= 0.29


def test_429_retry_after_http_date(server):
    server.add(Fault.rate_limit(retry_after=email.utils.formatdate(time.time() + 2, usegmt=True)))
    reply, dt = one(make(server.base_url))
    assert reply.attempts == 2 and dt >= 0.9  # HTTP dates have 1 s resolution: waits 1-2 s


@pytest.mark.parametrize("fault", [Fault.status(500), Fault.status(503), Fault.drop(), Fault.truncated()],
                         ids=["500", "503", "dropped-connection", "truncated-json"])
def test_transient_faults_retried(server, fault, caplog):
    caplog.set_level(logging.INFO)
    server.add(fault)
    reply, _ = one(make(server.base_url))
    assert reply.text == "[[A]]" and reply.attempts == 2 and server.count == 2
    # every retry is logged
    assert "asking again" in caplog.text


@pytest.mark.server
def test_every_transport_attempt_is_ours(server):
    judge = make(server.base_url, max_retries=4)

    async def client_retries():
        client, _ = judge._session()
        return client.max_retries

    # the client retries nothing itself: each attempt is one of ours, so the cost guard sees every request sent
    assert asyncio.run(client_retries()) == 0
    server.add(*[Fault.status(503)] * 4)
    reply, _ = one(judge)
    assert reply.attempts == 5 and server.count == 5


def test_hang_longer_than_timeout_retried(server):
    server.add(Fault.hang(10))
    reply, _ = one(make(server.base_url, timeout_s=0.4))
    assert reply.attempts == 2 and server.count == 2


def test_retries_exhausted_raise_judge_error_naming_url(server):
    server.add(*[Fault.status(500)] * 3)
    with pytest.raises(TransientJudgeError) as err:
        one(make(server.base_url, max_retries=2))
    assert server.base_url in str(err.value) and "3 attempts" in str(err.value) and "HTTP 500" in str(err.value)
    assert server.count == 3


def test_unknown_model_is_fatal_and_names_file_model_and_replacements(server):
    server.add(Fault.status(404))
    judge = OpenAIJudge("gpt-4-1106-preview", config(server.base_url, model="gpt-4-1106-preview",
                                                     _file="evals/judges/gpt-4-1106-preview.yaml"))
    with pytest.raises(JudgeFatalError) as err:
        one(judge)
    msg = str(err.value)
    assert server.count == 1  # never retried
    assert msg.startswith("evals/judges/gpt-4-1106-preview.yaml: ") and "'gpt-4-1106-preview'" in msg
    assert "HTTP 404" in msg and "evals/judges/gpt-4o.yaml" in msg and "\n" not in msg


def test_client_error_is_final(server):
    server.add(Fault.status(400))
    with pytest.raises(JudgeError, match="HTTP 400"):
        one(make(server.base_url))
    assert server.count == 1


def test_unreachable_base_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(TransientJudgeError) as err:
        one(make(url, max_retries=2))
    assert url in str(err.value) and "cannot connect" in str(err.value)


def test_concurrency_is_bounded():
    with StandinServer(latency_s=0.2) as srv:
        replies, dt = ask(make(srv.base_url, concurrency=3), *[request(str(i)) for i in range(9)])
        assert all(r.text == "[[A]]" for r in replies)
        assert srv.max_inflight == 3
        assert dt >= 0.55  # at least three waves of 0.2 s


def test_judge_reusable_across_event_loops(server):
    judge = make(server.base_url)
    one(judge)
    one(judge)
    assert server.count == 2


# ----- keys, prompts, cost -----

def test_missing_key_fails_at_construction(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(JudgeError) as err:
        make("http://127.0.0.1:9/v1")
    msg = str(err.value)
    assert KEY_ENV in msg and "\n" not in msg


def test_no_key_config_sends_empty(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    reply, _ = one(make(server.base_url, api_key_env=None))
    assert reply.text == "[[A]]" and server.requests[0]["authorization"] == "Bearer EMPTY"


def test_secret_never_logged_or_in_identity(server, caplog):
    caplog.set_level(logging.DEBUG)
    server.add(Fault.status(500), Fault.status(500), Fault.status(500))
    judge = make(server.base_url)
    with pytest.raises(JudgeError) as err:
        one(judge)
    assert SECRET not in caplog.text and SECRET not in str(err.value)
    assert SECRET not in repr(judge) and SECRET not in str(judge.identity())
    assert server.requests[0]["authorization"] == f"Bearer {SECRET}"  # it was really used


def test_no_messages_raises(server):
    req = JudgeRequest(messages=None, decoding={}, fields={"kind": "rating", "question": "q", "answer": "a"})
    with pytest.raises(JudgeError, match="judge prompt files unavailable"):
        one(make(server.base_url), req)
    assert server.count == 0


def test_estimate_cost_without_key_or_requests(monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    judge = OpenAIJudge("x", config("http://127.0.0.1:9/v1"), require_key=False)
    req = request()
    chars = sum(len(m["content"]) for m in req.messages)
    est = judge.estimate_cost([req] * 10)
    # chars/4 (+ per-message overhead) input at $10/M, max_tokens 16 output at $30/M, per request
    low, high = 10 * (chars / 4 * 10 + 16 * 30) / 1e6, 10 * ((chars / 4 + 10) * 10 + 16 * 30) / 1e6
    assert low <= est <= high


def test_make_judge_builds_openai_judge(server):
    judge = make_judge("standin", config(server.base_url))
    assert isinstance(judge, OpenAIJudge)
    assert judge.identity() == {"kind": "openai", "model": "standin-judge", "endpoint": server.base_url,
                                "overrides": {}}


# ----- shipped judge configs -----

@pytest.mark.parametrize("path", sorted((ROOT / "evals" / "judges").glob("*.yaml")), ids=lambda p: p.stem)
def test_judge_yaml_validates(path):
    data = validate(load_yaml(path), "judge", path)
    if data["kind"] == "openai":
        assert data["model"] and "concurrency" in data and "timeout_s" in data and "max_retries" in data
        if (data.get("base_url") or "").startswith("http://127.0.0.1"):  # local servers and stand-ins
            assert data["api_key_env"] is None
        else:
            assert data["api_key_env"] == "OPENAI_API_KEY"
            assert data["price_per_million_input"] > 0 and data["price_per_million_output"] > 0
        OpenAIJudge(path.stem, data, require_key=False)  # every config builds


def test_official_judges_present():
    names = {p.stem for p in (ROOT / "evals" / "judges").glob("*.yaml")}
    assert {"gpt-4-1106-preview", "gpt-4", "gpt-4o", "gpt-4.1", "local-vllm", "verifier"} <= names
