"""The spend ledger and the cost guard on their own: reservations replaced by bills, never counted twice,
a killed run's reservations settled by the job's next run, batch entries left for the resumed batch, the
cap refusing the request that would cross it, and totals kept from new lines only (no rereading)."""

from __future__ import annotations

import json
import multiprocessing

import pytest

from reproduce.judges.guard import BOUND_REPLY_TOKENS, BOUND_TOKENS_PER_MESSAGE, BudgetStop, CostGuard, request_bound
from reproduce.judges.ledger import SpendLedger


def test_a_bill_replaces_the_reservation_and_is_never_added_twice(tmp_path):
    led = SpendLedger(tmp_path / "_spend.jsonl")
    g = CostGuard(1.0, led, "job-a")
    t = g.reserve(0.30)
    assert led.look() == pytest.approx(0.30)
    g.bill(t, 0.05, 100, 10)
    g.bill(t, 0.05, 100, 10)  # a second bill of the same ticket (a retry of the write) changes nothing
    assert led.look() == pytest.approx(0.05) and g.run_usd == pytest.approx(0.05) and g.requests == 1
    t2 = g.reserve(0.30)
    g.release(t2)  # an error status: nothing billed
    assert led.look() == pytest.approx(0.05)
    # another process's view of the same file: the same totals
    other = SpendLedger(tmp_path / "_spend.jsonl")
    assert other.look() == pytest.approx(0.05) and other.tokens == [100, 10]


def test_the_cap_refuses_the_request_that_would_cross_it_and_every_one_after(tmp_path):
    led = SpendLedger(tmp_path / "_spend.jsonl")
    g = CostGuard(1.0, led, "job-a")
    g.bill(g.reserve(0.6), 0.6, 1, 1)
    in_flight = g.reserve(0.3)  # 0.9 committed
    with pytest.raises(BudgetStop, match=r"judging.max_usd = \$1.00 reached: .* could cost up to \$0.2000 but only "
                                          r"\$0.1000 remains .* it was not sent"):
        g.reserve(0.2)
    with pytest.raises(BudgetStop):
        g.reserve(0.01)  # fits, but the job has stopped: nothing after the first refusal is sent
    g.bill(in_flight, 0.25, 1, 1)  # the reply of a request already in flight is still recorded
    assert led.look() == pytest.approx(0.85)
    # another job may still use what is left
    CostGuard(1.0, led, "job-b").reserve(0.1)


def test_a_killed_run_is_settled_by_the_next_run_of_its_job_and_batches_are_left_to_resume(tmp_path):
    path = tmp_path / "_spend.jsonl"
    killed = CostGuard(10.0, SpendLedger(path), "job-a")
    killed.bill(killed.reserve(1.0), 0.5, 1, 1)
    killed.reserve(2.0)  # sent, never answered: the process died
    assert killed.reserve_batch("n1", 3.0, resumed=False) is None
    CostGuard(10.0, SpendLedger(path), "job-b").reserve(1.5)  # another job's request in flight: not ours to settle
    rerun = CostGuard(10.0, SpendLedger(path), "job-a")
    line = rerun.begin()
    assert "1 request(s)" in line and "$2.00" in line
    led = rerun.ledger
    assert led.billed_usd == pytest.approx(2.5) and led.open_usd == pytest.approx(4.5)
    assert rerun.begin() is None  # settled once
    # the resumed batch keeps its reservation (never refused, even over the cap) and its bill replaces it
    assert rerun.reserve_batch("n1", 3.0, resumed=True) is None and led.open_usd == pytest.approx(4.5)
    rerun.bill_batch("n1", 1.25, 10, 10)
    rerun.bill_batch("n1", 1.25, 10, 10)
    assert SpendLedger(path).look() == pytest.approx(0.5 + 2.0 + 1.25 + 1.5)


def test_a_resumed_batch_is_never_refused_for_money_already_spent(tmp_path):
    g = CostGuard(1.0, SpendLedger(tmp_path / "_spend.jsonl"), "job-a")
    g.bill(g.reserve(0.9), 0.9, 1, 1)
    assert g.reserve_batch("new", 0.5, resumed=False) == pytest.approx(0.1)  # a new batch does not fit
    assert g.reserve_batch("old", 0.5, resumed=True) is None  # one already created does


def test_totals_come_from_new_lines_only(tmp_path, monkeypatch):
    """Each process reads every byte of the ledger once, however often it checks: per-request checks over a
    paper run's 35k requests stay linear."""
    path = tmp_path / "_spend.jsonl"
    writer, reader = CostGuard(None, SpendLedger(path), "w"), SpendLedger(path)
    read = []
    real_open = open

    class Counting:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *a):
            self.fh.close()

        def seek(self, n):
            self.fh.seek(n)

        def read(self):
            data = self.fh.read()
            read.append(len(data))
            return data

    monkeypatch.setattr("builtins.open", lambda p, mode="r", *a, **k: Counting(real_open(p, mode, *a, **k))
                        if str(p) == str(path) else real_open(p, mode, *a, **k))
    for _ in range(300):
        writer.bill(writer.reserve(0.001), 0.001, 1, 1)
        reader.look()
    assert sum(read) == path.stat().st_size
    assert reader.billed_usd == pytest.approx(0.3)


def _spender(path, job, n, cap, out):
    g = CostGuard(cap, SpendLedger(path), job)
    sent = 0
    for _ in range(n):
        try:
            t = g.reserve(0.01)
        except BudgetStop:
            break
        g.bill(t, 0.01, 1, 1)
        sent += 1
    out.put(sent)


def test_jobs_running_at_once_never_take_more_than_the_cap_together(tmp_path):
    path = tmp_path / "_spend.jsonl"
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_spender, args=(path, f"job-{i}", 100, 1.0, out)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    sent = sum(out.get(timeout=5) for _ in procs)
    assert sent == 100  # $1.00 in $0.01 requests: exactly 100 fit, whichever job sent them
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert sum(x["usd"] for x in lines if x["t"] == "bill") == pytest.approx(1.0)


def test_the_earlier_per_job_ledger_format_still_counts(tmp_path):
    path = tmp_path / "_spend.jsonl"
    path.write_text(json.dumps({"run": "r1", "job": "a", "reserved_usd": 4.0}) + "\n"
                    + json.dumps({"run": "r1", "job": "a", "spent_usd": 3.0}) + "\n"
                    + json.dumps({"run": "r2", "job": "b", "reserved_usd": 5.0}) + "\n")
    assert SpendLedger(path).look() == pytest.approx(8.0)


def test_the_bound_covers_the_prompt_and_every_completion_token():
    count = len  # one token per character
    messages = [{"role": "system", "content": "abc"}, {"role": "user", "content": "de"}]
    assert request_bound(messages, 7, count) == (3 + 2 + 2 * BOUND_TOKENS_PER_MESSAGE + BOUND_REPLY_TOKENS, 7)


def test_the_bound_is_above_what_the_stand_in_bills():
    """The stand-in counts usage with a real byte-level BPE through the Llama-3 chat template; the bound (UTF-8
    bytes and the stated per-message overhead) is above it for every kind of message, short ones included."""
    from reproduce.judges.guard import bound_counter
    from reproduce.rehearsal.usage import standin_tokenizer, usage

    tok = standin_tokenizer()
    for messages in ([{"role": "user", "content": "x"}],
                     [{"role": "system", "content": ""}, {"role": "user", "content": "2+2="}],
                     [{"role": "system", "content": "You are a helpful assistant. " * 20},
                      {"role": "user", "content": "Ünïcödé text, 数字 12345 and [[A>>B]]"}]):
        prompt, _ = usage({"messages": messages}, "m", tok)
        assert prompt <= request_bound(messages, 1, bound_counter("standin-judge"))[0]
