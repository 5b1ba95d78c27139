"""`judging.mode: batch`, the `judging.max_usd` cost guard and `reproduce plan --compare`, over real HTTP
on 127.0.0.1 against the stand-in judge (which implements /v1/files and /v1/batches), through the real
AlpacaEval 2 protocol (its prompt ships with the alpaca_eval package)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.judges.batch import BatchSender
from reproduce.judges.cache import JudgmentCache
from reproduce.judges.openai_judge import OpenAIJudge
from reproduce.judges.run import judge_model
from support.alpaca_inputs import alpaca_inputs, tiny_alpaca_bench
from support.standin_server import StandinServer
from support.verdicts import logprobs_for, verdict_for

ROOT = Path(__file__).resolve().parent.parent
N = 12
PRICES = {"price_per_million_input": 2.0, "price_per_million_output": 8.0}


def _bench():
    return tiny_alpaca_bench(N, retry_budget_s=1.0)


def _judge_cfg(url: str) -> dict:
    return {"kind": "openai", "model": "standin-judge", "base_url": url, "api_key_env": None, "concurrency": 4,
            "timeout_s": 5, "max_retries": 1, **PRICES}


class Killed(Exception):
    """The job was stopped at its event (see ``_run``'s ``kill_when``)."""


async def _cancel_when(coro, event) -> None:
    """Run ``coro`` and cancel it once ``event()`` holds, as a kill would (never on a timer: on a loaded
    machine a timer can fire before the job got there). Raises :class:`Killed`."""
    task = asyncio.ensure_future(coro)
    while not event():
        if task.done():
            await task  # its error, if it raised one, is the failure
            raise AssertionError("the job ended before its kill point")
        await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise Killed


def _run(srv, tmp_path, batch=True, kill_when=None):
    bench = _bench()
    questions, answers, reference, templates = alpaca_inputs(bench)
    cache = JudgmentCache(tmp_path / "_cache" / "s" / "m.jsonl", shared_dir=tmp_path / "_cache")
    sender = BatchSender(cache.path.with_suffix(".batch.json"), poll_s=0.05) if batch else None
    judge = OpenAIJudge("standin", _judge_cfg(srv.base_url))
    logs: list[str] = []
    coro = judge_model(bench, judge, cache, questions, answers, reference, templates, log=logs.append, batch=sender)
    if kill_when is not None:
        coro = _cancel_when(coro, kill_when)
    records, failures, stats = asyncio.run(coro)
    return records, failures, stats, cache, logs


def test_batch_mode_sends_one_batch_and_caches_its_verdicts(tmp_path):
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        records, failures, stats, cache, _ = _run(srv, tmp_path)
        assert (srv.batches_created, srv.batch_items, srv.count) == (1, N, 0)  # no ordinary call at all
        assert failures == [] and stats["batch_requests"] == N and stats["new_requests"] == N
        assert all(r["preference"] in (1.0, 2.0) or 1 <= r["preference"] <= 2 for r in records)
        entries = list(JudgmentCache(cache.path)._entries.values())
        assert len(entries) == N and all(e["reply"]["extra"]["batch_id"].startswith("batch-") for e in entries)
        # priced at half the standard rate
        for e in entries:
            r = e["reply"]
            assert r["cost_usd"] == pytest.approx((r["prompt_tokens"] * 2.0 + r["completion_tokens"] * 8.0) / 2e6)
        assert not cache.path.with_suffix(".batch.json").exists()
        # the same verdicts the ordinary path gets: a standard-mode run in another folder agrees
        ordinary, _, _, _, _ = _run(srv, tmp_path / "ordinary", batch=False)
        assert [r["preference"] for r in ordinary] == [r["preference"] for r in records]
        # a rerun finds everything cached: nothing is sent, no batch is made
        _, _, again, _, _ = _run(srv, tmp_path)
        assert again["new_requests"] == 0 and srv.batches_created == 1


def test_failed_batch_items_go_through_the_ordinary_retry_path(tmp_path):
    class FailingSome(StandinServer):
        def batch_item(self, body, n):
            return (500, {"error": {"message": "server error"}}) if n <= 3 else super().batch_item(body, n)

    with FailingSome(verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        _, failures, stats, _, logs = _run(srv, tmp_path)
        assert failures == [] and stats["batch_requests"] == N - 3
        assert srv.count == 3  # exactly the failed items, asked one by one
        assert any("3 (3 failed items) go through the ordinary path" in line for line in logs), logs


def test_a_killed_batch_job_resumes_its_batch_instead_of_paying_twice(tmp_path):
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        srv.batch_hold.set()  # the batch stays in progress: the job is killed while it waits
        state_path = tmp_path / "_cache" / "s" / "m.batch.json"  # written (atomically) before any wait
        with pytest.raises(Killed):
            _run(srv, tmp_path, kill_when=state_path.exists)
        state = json.loads(state_path.read_text())
        assert state["batch_id"].startswith("batch-") and len(state["keys"]) == N
        srv.batch_hold.clear()
        _, failures, stats, _, logs = _run(srv, tmp_path)
        assert (srv.batches_created, srv.batch_items, srv.count) == (1, N, 0)
        assert failures == [] and stats["batch_requests"] == N
        assert any(f"resuming batch {state['batch_id']}" in line for line in logs)


def _cli_job(tmp_path, srv, judging: dict) -> tuple[dict, Path, Path]:
    bench = _bench()
    questions, answers, reference, _ = alpaca_inputs(bench)
    res = tmp_path / "results"
    a = res / "answers" / "tiny_alpaca_eval2" / "tiny-add" / "m.jsonl"
    r = tmp_path / "reference.jsonl"
    a.parent.mkdir(parents=True)
    a.write_text("".join(json.dumps(x) + "\n" for x in answers.values()))
    r.write_text("".join(json.dumps(x) + "\n" for x in reference.values()))
    job = {"stage": "judge", "benchmark": "tiny_alpaca_eval2", "judge": "standin", "setting": "tiny-add",
           "method": "m", "benchmark_config": bench, "judge_config": _judge_cfg(srv.base_url), "judging": judging}
    return job, a, r


def _judge_cli(job, answers, reference, out, ledger):
    return subprocess.run([sys.executable, "-m", "reproduce.cli", "judge", "--job", json.dumps(job), "--answers",
                           str(answers), "--reference", str(reference), "--out", str(out), "--spend-ledger", str(ledger)],
                          capture_output=True, text=True, cwd=ROOT)


@pytest.mark.slow
def test_cost_guard_stops_a_job_over_budget_before_sending_anything(tmp_path):
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        job, answers, reference = _cli_job(tmp_path, srv, {"max_usd": 0.0001})
        ledger = tmp_path / "results" / "judgments" / "_spend.jsonl"
        out = tmp_path / "results" / "judgments" / "tiny_alpaca_eval2" / "standin" / "tiny-add" / "m.jsonl"
        done = _judge_cli(job, answers, reference, out, ledger)
        assert done.returncode == 2 and srv.count == 0 and srv.batches_created == 0
        [line] = [x for x in done.stderr.splitlines() if x.startswith("error:")]
        assert "judging.max_usd = $0.0001 reached: the next request to judge standin could cost up to $0.0" in line
        assert "it was not sent" in line and f"{N} of {N} games are left, up to $0.0" in line
        # a budget that covers the run: judged, and the job's cost figure is the ledger's
        job["judging"] = {"max_usd": 1.0}
        done = _judge_cli(job, answers, reference, out, ledger)
        assert done.returncode == 0, done.stderr
        from reproduce.judges.ledger import SpendLedger

        stats = json.loads(out.with_name("m.config.json").read_text())["judge_stats"]
        assert SpendLedger(ledger).look() == pytest.approx(stats["cost_usd"], abs=1e-9) and stats["cost_usd"] > 0
        assert srv.billed_usd(2.0, 8.0) == pytest.approx(stats["cost_usd"], abs=1e-9)


@pytest.mark.slow
def test_plan_compare_counts_requests_exactly_and_tokens_closely(tmp_path):
    from reproduce.plan.compare import compare
    from reproduce.judges.pricing import JudgeCosting
    from reproduce.plan.judging import BenchmarkInputs, plan_judge_job

    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for) as srv:
        job, answers, reference = _cli_job(tmp_path, srv, {})
        res = tmp_path / "results"
        inputs = BenchmarkInputs("tiny_alpaca_eval2", job["benchmark_config"], res)
        row = plan_judge_job(inputs, JudgeCosting("standin", job["judge_config"], res), "tiny-add", "m")
        (tmp_path / "plan.json").write_text(json.dumps({"preset": "tiny", "judge_jobs": [row]}))
        out = res / "judgments" / "tiny_alpaca_eval2" / "standin" / "tiny-add" / "m.jsonl"
        done = _judge_cli(job, answers, reference, out, res / "judgments" / "_spend.jsonl")
        assert done.returncode == 0, done.stderr
    [group, total] = compare(tmp_path / "plan.json", res)["groups"]
    assert group["planned_to_send"] == group["counted_new_requests"] == N == srv.count
    # prompt tokens: the plan's estimate (characters / 4 offline) against the usage the server counted with
    # a real tokenizer (the rehearsal's BPE; about 13% more tokens on AlpacaEval 2's prompt)
    assert group["counted_prompt_tokens"] == pytest.approx(group["planned_prompt_tokens"], rel=0.25)
    assert group["counted_prompt_tokens"] > 0 and total["counted_cost_usd"] > 0
