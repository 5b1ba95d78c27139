"""``judging.max_usd`` holds against the HTTP stand-in judge on 127.0.0.1, checked against the stand-in's own
bill (``StandinServer.billed``: what it generated, an unreadable reply at the request's upper bound), not
against the ledger: with faults on, the bill stays under the cap and the ledger equals it exactly; a job
killed while its batch runs resumes that batch under the same cap and nothing is billed twice; the bridge
is refused before its first request; a server without ``/v1/files`` is judged in standard mode."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproduce.benchmarks.protocol import get_protocol
from reproduce.io import DataError
from reproduce.judges.cache import JudgmentCache
from reproduce.judges.guard import CostGuard
from reproduce.judges.ledger import SpendLedger
from reproduce.judges.openai_judge import OpenAIJudge
from reproduce.judges.pricing import BATCH_PRICE_FACTOR
from reproduce.judges.run import judge_model
from fault_schedule import TRANSIENT_KINDS, ScheduledStandin, request_digest
from support.alpaca_inputs import alpaca_inputs, tiny_alpaca_bench
from support.standin_server import Fault, StandinServer
from support.verdicts import logprobs_for, verdict_for

ROOT = Path(__file__).resolve().parent.parent
N = 16
PRICE_IN, PRICE_OUT = 2.0, 8.0
FAULTS = ["429", "500", "drop", "truncated", "empty"]


def _bench(n=N):
    return tiny_alpaca_bench(n, retry_budget_s=2.0, max_attempts=2)


def _judge_cfg(url: str, **extra) -> dict:
    return {"kind": "openai", "model": "standin-judge", "base_url": url, "api_key_env": None, "concurrency": 4,
            "timeout_s": 5, "max_retries": 2, "price_per_million_input": PRICE_IN,
            "price_per_million_output": PRICE_OUT, "logprobs": True, **extra}


def _bound_usd(url: str, bench, batch: bool = False) -> float:
    """The upper bound in dollars of every request of the job, as the guard reserves them."""
    questions, answers, reference, templates = alpaca_inputs(bench)
    judge = OpenAIJudge("standin", _judge_cfg(url))
    proto = get_protocol("alpaca_eval2")
    total = sum(judge.bound_usd(judge._params(r)) for q in questions
                for _, r in proto.build_requests(q, answers[q["question_id"]], reference[q["question_id"]], bench,
                                                 templates))
    return total * (BATCH_PRICE_FACTOR if batch else 1.0)


def _faulty(seed: int):
    """Faults keyed by request and ask: transport faults, malformed 200s and 200s without a verdict (no
    log-probs) on about half the asks."""
    def schedule(body, k):
        rng = random.Random(f"{seed}:{request_digest(body.get('messages') or [])}:{k}")
        x = rng.random()
        if x < 0.4:
            return TRANSIENT_KINDS[rng.choice(FAULTS)]()
        return Fault.no_logprobs() if x < 0.55 else None
    return schedule


def _judge_capped(srv, folder: Path, max_usd: float | None):
    bench = _bench()
    questions, answers, reference, templates = alpaca_inputs(bench)
    cache = JudgmentCache(folder / "_cache" / "s" / "m.jsonl", shared_dir=folder / "_cache")
    judge = OpenAIJudge("standin", _judge_cfg(srv.base_url), backoff_base_s=0.01, max_wait_s=0.05)
    judge.guard = CostGuard(max_usd, folder / "_spend.jsonl", "job-m")
    records, failures, stats = asyncio.run(judge_model(bench, judge, cache, questions, answers, reference, templates,
                                                       log=lambda m: None))
    return judge.guard, cache, records, failures, stats


def test_a_cap_with_faults_on_holds_on_the_servers_own_bill(tmp_path):
    # what the whole job is billed with these faults: the uncapped run, on a server of its own
    with ScheduledStandin(_faulty(7), verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=900) as srv:
        guard, _, _, _, full = _judge_capped(srv, tmp_path / "full", None)
        whole = srv.billed_usd(PRICE_IN, PRICE_OUT)
        assert whole == pytest.approx(guard.ledger.look(), abs=1e-12) and full["cost_usd"] > 0
        kinds = {e["usage"] for e in srv.billed}
        assert kinds == {"read", "bound"}  # the faults did bill unreadable replies at the bound
    cap = whole / 2
    with ScheduledStandin(_faulty(7), verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=900) as srv:
        guard, cache, records, failures, stats = _judge_capped(srv, tmp_path / "capped", cap)
        billed = srv.billed_usd(PRICE_IN, PRICE_OUT)
        prompt, completion = srv.billed_tokens()
    assert 0 < billed <= cap
    # the ledger holds exactly what the server billed, token for token
    ledger = SpendLedger(tmp_path / "capped" / "_spend.jsonl")
    assert ledger.look() == pytest.approx(billed, abs=1e-12) and ledger.open_usd == 0
    assert ledger.tokens == [prompt, completion]
    # one cost figure: the job's stats are the ledger's
    assert stats["cost_usd"] == pytest.approx(billed, abs=1e-6)
    # stopped, with what is left said; nothing paid for is lost
    assert guard.stopped and "judging.max_usd" in guard.stopped
    judged = sum(r["preference"] is not None for r in records)
    assert 0 < judged < N and len(cache) == judged
    assert stats["budget_left"]["games"] == N - judged and stats["budget_left"]["usd_max"] > 0
    assert any("judging.max_usd" in f["reason"] for f in failures)


def _cli_job(tmp_path, url: str, judging: dict, **judge_extra):
    bench = _bench()
    questions, answers, reference, _ = alpaca_inputs(bench)
    res = tmp_path / "results"
    a = res / "answers" / "tiny_alpaca_eval2" / "tiny-add" / "m.jsonl"
    r = tmp_path / "reference.jsonl"
    a.parent.mkdir(parents=True, exist_ok=True)
    a.write_text("".join(json.dumps(x) + "\n" for x in answers.values()))
    r.write_text("".join(json.dumps(x) + "\n" for x in reference.values()))
    job = {"stage": "judge", "benchmark": "tiny_alpaca_eval2", "judge": "standin", "setting": "tiny-add",
           "method": "m", "benchmark_config": bench, "judge_config": _judge_cfg(url, **judge_extra), "judging": judging}
    out = res / "judgments" / "tiny_alpaca_eval2" / "standin" / "tiny-add" / "m.jsonl"
    cmd = [sys.executable, "-m", "reproduce.cli", "judge", "--job", json.dumps(job), "--answers", str(a),
           "--reference", str(r), "--out", str(out), "--cache", str(out.parent.parent / "_cache"), "--spend-ledger", str(res / "judgments" / "_spend.jsonl")]
    return cmd, out, res / "judgments" / "_spend.jsonl"


@pytest.mark.server
def test_a_job_killed_mid_batch_resumes_under_the_same_cap_and_nothing_is_billed_twice(tmp_path):
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=900) as srv:
        # the cap covers the batch's upper bound once, not twice: a resume that reserved it again is refused
        cap = 1.5 * _bound_usd(srv.base_url, _bench(), batch=True)
        cmd, out, ledger = _cli_job(tmp_path, srv.base_url, {"mode": "batch", "batch_poll_s": 0.05, "max_usd": cap},
                                    batch=True)
        state = out.parent.parent / "_cache" / "tiny-add" / "m.batch.json"
        srv.batch_hold.set()  # the batch stays in progress until the job is killed
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 600
            while not state.exists():  # the event: the batch exists and its state is on disk
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "no batch state file appeared"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(60)
        assert srv.batches_created == 1 and srv.count == 0 and not out.exists()
        held = SpendLedger(ledger)
        assert held.look() == pytest.approx(_bound_usd(srv.base_url, _bench(), batch=True), rel=1e-9)
        srv.batch_hold.clear()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "resuming batch" in done.stderr
        assert (srv.batches_created, srv.batch_items, srv.count) == (1, N, 0)  # one batch, nothing asked again
        billed = srv.billed_usd(PRICE_IN, PRICE_OUT, BATCH_PRICE_FACTOR)
    led = SpendLedger(ledger)
    assert led.look() == pytest.approx(billed, abs=1e-12) and led.open_usd == 0 and billed <= cap
    stats = json.loads(out.with_name("m.config.json").read_text())["judge_stats"]
    assert stats["cost_usd"] == pytest.approx(billed, abs=1e-6) and stats["batch_requests"] == N


@pytest.mark.server
def test_a_server_without_a_files_endpoint_is_judged_in_standard_mode(tmp_path):
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=900) as srv:
        srv.files_endpoint = False
        cmd, out, ledger = _cli_job(tmp_path, srv.base_url, {"mode": "batch", "batch_poll_s": 0.05, "max_usd": 1.0},
                                    batch=True)
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert srv.batches_created == 0 and srv.count == N
        lines = [x for x in done.stderr.splitlines() if "Batch API" in x]
        assert len(lines) == 1 and "has no usable Batch API (HTTP 404); standard mode" in lines[0]
        assert "Traceback" not in done.stderr
        assert SpendLedger(ledger).look() == pytest.approx(srv.billed_usd(PRICE_IN, PRICE_OUT), abs=1e-12)


@pytest.mark.server
def test_batch_mode_only_where_a_batch_api_exists(tmp_path):
    """A judge neither on OpenAI's host nor marked ``batch: true`` (a local vllm serve) is judged one request
    at a time, with one line saying so."""
    from reproduce.judges.batch import batch_capable

    assert batch_capable({"kind": "openai", "model": "gpt-4.1"})
    assert batch_capable({"kind": "openai", "model": "gpt-4.1", "base_url": "https://api.openai.com/v1"})
    assert not batch_capable({"kind": "openai", "model": "q", "base_url": "http://127.0.0.1:8000/v1"})
    assert batch_capable({"kind": "openai", "model": "q", "base_url": "http://127.0.0.1:8000/v1", "batch": True})
    assert not batch_capable({"kind": "verifier", "task": "t"})
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=900) as srv:
        cmd, out, _ = _cli_job(tmp_path, srv.base_url, {"mode": "batch", "batch_poll_s": 0.05})
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert srv.batches_created == 0 and srv.count == N
        assert "is not OpenAI's API and the judge file does not say batch: true; standard mode" in done.stderr


def test_the_bridge_is_refused_by_the_cap_before_its_first_request(tmp_path):
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.run import run_bridge
    from test_bridge import RETIRED, _fetch_or_skip

    man = load_manifest("alpaca_eval")
    _fetch_or_skip(man, "alpaca-7b", RETIRED)
    results = tmp_path / "r"
    with StandinServer(verdict="m", lifetime_s=300) as srv:
        judge = OpenAIJudge("standin", _judge_cfg(srv.base_url, concurrency=8))
        # the judge jobs spent almost all of it already
        spent = CostGuard(0.01, results / "judgments" / "_spend.jsonl", "an earlier judge job")
        spent.bill(spent.reserve(0.0099), 0.0099, 1, 1)
        with pytest.raises(DataError, match=r"bridge: judging.max_usd = \$0.0100 reached: .* it was not sent; (\d+) of "
                                            r"\1 games of alpaca-7b \(up to \$0\.0\d+\) and 0 more panel"):
            run_bridge(benchmark="alpaca_eval2", judge=judge, config_json=json.dumps({"judging": {"max_usd": 0.01}}),
                       preset="paper", limit=4, rounds=10, panel=["alpaca-7b"], results=results,
                       out_dir=tmp_path / "out", log=lambda m: None)
        assert srv.count == 0 and srv.billed == []
    assert SpendLedger(results / "judgments" / "_spend.jsonl").look() == pytest.approx(0.0099)


def test_the_rehearsal_sets_the_ledger_against_the_stand_ins_bill(tmp_path):
    """``reproduce rehearsal``'s spend figures (rehearsal_metrics.json): the judge jobs' ledger against the
    stand-in's ``GET /billing``, token for token."""
    from urllib.parse import urlparse

    from reproduce.paths import ResultPaths
    from reproduce.rehearsal.run import spend_check

    results = tmp_path / "results"
    ledger = Path(ResultPaths(results).spend_ledger())
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=900) as srv:
        srv.add(Fault.truncated(), Fault.status(500))
        _judge_capped(srv, ledger.parent, None)
        url = urlparse(srv.base_url)
        check = spend_check(url.hostname, url.port, results)
        assert check["equal"] and check["billed_prompt_tokens"] == srv.billed_tokens()[0] > 0
        assert check["ledger_open_usd"] == 0
        # a reply the ledger never heard of makes them differ
        srv.bill({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}, {"prompt_tokens": 1,
                                                                                      "completion_tokens": 1})
        assert not spend_check(url.hostname, url.port, results)["equal"]
