"""Judge throughput, cached-rerun cost and fault tolerance, against the local stand-in server (no network, no key).

1. judgments/s of OpenAIJudge at concurrency 1, 8 and 32 with a fixed server latency, the openai SDK doing
   the transport retries (goal: >= 0.8 x concurrency / latency, i.e. >= 128/s at 32 and 200 ms);
2. the wall time and request count of rerunning a fully cached 805-item benchmark (goal: 0 requests,
   <= 2 s), and the load time of a 1610-entry cache file;
3. under 30% injected faults of each kind (429 with Retry-After, 500, dropped connection, truncated body,
   empty reply): 805 AlpacaEval 2 games judged through ``reproduce.judges.run.judge_model`` and the official
   protocol: games scored / expected after the job and after one rerun, and whether the score equals the
   fault-free score (goal: 805/805 and equal).

Exits 1 if a goal is missed.

    python perf/judge_throughput.py [--latency 0.2] [--json results.json] [--skip-faults]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # judge_model's progress bar would drown the figures
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # for fault_schedule, support

from reproduce.judges.base import JudgeRequest  # noqa: E402
from reproduce.judges.cache import JudgmentCache  # noqa: E402
from reproduce.judges.openai_judge import OpenAIJudge  # noqa: E402
from tests.support import judge_cached  # noqa: E402

from fault_schedule import ScheduledStandin, random_schedule  # noqa: E402
from support.standin_server import Fault  # noqa: E402
from support.verdicts import logprobs_for, verdict_for  # noqa: E402

STANDIN = Path(__file__).resolve().parent.parent / "tests" / "support" / "standin_server.py"

N_ITEMS = 805  # AlpacaEval 2's instruction count


def make_request(i: int) -> JudgeRequest:
    """An AlpacaEval-sized pairwise request (~3 KB of prompt: an instruction and two answers)."""
    a, b = f"Model answer {i}: " + "lorem ipsum dolor " * 80, f"Reference answer {i}: " + "sit amet " * 160
    messages = ({"role": "system", "content": "You are a helpful assistant that ranks models."},
                {"role": "user", "content": f"Instruction {i}\n\nOutput (a): {a}\n\nOutput (b): {b}\n\nBest: m or M?"})
    return JudgeRequest(messages=messages, decoding={"temperature": 1.0, "max_tokens": 1, "logprobs": True,
                                                     "top_logprobs": 5},
                        fields={"kind": "preference", "question": f"Instruction {i}", "answer_a": a, "answer_b": b})


def make_judge(base_url: str, concurrency: int) -> OpenAIJudge:
    """A keyless judge for the stand-in."""
    cfg = {"kind": "openai", "model": "standin", "base_url": base_url, "api_key_env": None,
           "concurrency": concurrency, "timeout_s": 10, "max_retries": 2}
    return OpenAIJudge("standin", cfg)


def throughput(base_url: str, concurrency: int, latency: float) -> dict:
    """Judgments/s for enough requests to keep ``concurrency`` busy for about 10 waves."""
    n = max(20, concurrency * 10)
    judge = make_judge(base_url, concurrency)

    async def main():
        try:
            await judge.complete(make_request(-1))  # warm-up: client construction is a one-time ~0.1 s
            t0 = time.perf_counter()
            replies = await asyncio.gather(*(judge.complete(make_request(i)) for i in range(n)))
            return replies, time.perf_counter() - t0
        finally:
            await judge.aclose()

    replies, elapsed = asyncio.run(main())
    assert all(r.text for r in replies)
    rate, goal = n / elapsed, 0.8 * concurrency / latency
    return {"concurrency": concurrency, "requests": n, "seconds": round(elapsed, 3),
            "judgments_per_s": round(rate, 1), "goal": round(goal, 1), "ok": rate >= goal}


@contextlib.contextmanager
def standin_process(latency: float):
    """The stand-in in a process of its own, as a real server would be (sharing this interpreter's lock
    would charge the server's work to the judge); yields its base URL and kills it on exit."""
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--latency", str(latency), "--verdict", "m",
                             "--lifetime", "600"], stdout=subprocess.PIPE, text=True)
    try:
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def request_count(base_url: str) -> int:
    """Chat-completion requests the stand-in has received so far."""
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as resp:
        return json.load(resp)["count"]


def cached_rerun(base_url: str) -> dict:
    """Fill a cache with N_ITEMS judgments, then time a rerun from a freshly loaded cache."""
    reqs = [make_request(i) for i in range(N_ITEMS)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "judgments.jsonl"
        asyncio.run(judge_cached(make_judge(base_url, 32), JudgmentCache(path), reqs))
        before = request_count(base_url)
        t0 = time.perf_counter()
        verdicts = asyncio.run(judge_cached(make_judge(base_url, 32), JudgmentCache(path), reqs))
        elapsed = time.perf_counter() - t0
        sent = request_count(base_url) - before
    assert None not in verdicts
    return {"items": N_ITEMS, "seconds": round(elapsed, 3), "requests": sent, "goal": "0 requests, <= 2 s",
            "ok": sent == 0 and elapsed <= 2.0}


def cache_load(n: int = 1610) -> dict:
    """Seconds to load a cache file of ``n`` AlpacaEval-sized judgments and look every one up."""
    from reproduce.io import append_jsonl

    reqs = [make_request(i) for i in range(n)]
    identity = {"kind": "openai", "model": "x", "endpoint": "http://127.0.0.1:1/v1", "overrides": {}}
    keys = [JudgmentCache.key(identity, r) for r in reqs]
    reply = {"text": "m", "top_logprobs": {"m": -0.1, "M": -2.4}, "prompt_tokens": 900, "completion_tokens": 1,
             "cost_usd": 0.0, "attempts": 1, "extra": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "_cache" / "s" / "m.jsonl"
        append_jsonl(path, ({"key": k, "reply": reply, "verdict": 1.2} for k in keys))
        t0 = time.perf_counter()
        cache = JudgmentCache(Path(tmp) / "_cache" / "s" / "other.jsonl", shared_dir=Path(tmp) / "_cache")
        hits = sum(cache.get(JudgmentCache.key(identity, r)) is not None for r in reqs)
        elapsed = time.perf_counter() - t0
    return {"entries": n, "hits": hits, "seconds": round(elapsed, 3), "goal": "<= 1 s", "ok": hits == n and elapsed <= 1}


FAULT_KINDS = {  # what a real endpoint does under load, each injected alone at FAULT_RATE
    "429 + Retry-After: 1": lambda: Fault.rate_limit("1"),
    "500": lambda: Fault.status(500),
    "dropped connection": Fault.drop,
    "truncated body": Fault.truncated,
    "empty reply": Fault.empty,
}
FAULT_RATE = 0.3


def _alpaca_setup(n: int = N_ITEMS):
    """An 805-instruction AlpacaEval 2 benchmark (synthetic texts, the official prompt and protocol)."""
    from reproduce.benchmarks import alpaca_eval2 as ae

    bench = {"protocol": "alpaca_eval2", "questions": {"files": {}},
             "judging": {"temperature": 1.0, "max_tokens": 1, "logprobs": True, "top_logprobs": 5, "max_attempts": 1,
                         "length_controlled": False, "retry_budget_s": 300}}
    questions = [{"question_id": str(i), "category": "helpful_base", "turns": [f"Instruction {i}: explain topic {i}."],
                  "reference": [f"Reference answer {i}: " + "sit amet " * 40], "reference_generator": "reference"}
                 for i in range(n)]
    answers = {q["question_id"]: {"question_id": q["question_id"], "model": "policy",
                                  "turns": [f"Model answer {q['question_id']}: " + "lorem ipsum " * 40]} for q in questions}
    return bench, questions, answers, ae.load_templates(bench)


def faults(concurrency: int = 32) -> list[dict]:
    """Games scored / expected after the job and after one rerun, per fault kind at FAULT_RATE."""
    from reproduce.benchmarks import alpaca_eval2 as ae
    from reproduce.judges.run import judge_model

    bench, questions, answers, templates = _alpaca_setup()

    def run(srv, cache_path):
        judge = make_judge(srv.base_url, concurrency)
        judge.max_retries = 6  # as the shipped OpenAI judge files
        return asyncio.run(judge_model(bench, judge, JudgmentCache(cache_path), questions, answers, None, templates,
                                       log=lambda m: None))

    def scored(records):
        s = ae.score(records, bench, length_controlled=False)
        return s, f"{s['n_judged']}/{s['n_expected']}"

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with ScheduledStandin(lambda body, k: None, verdict=verdict_for, top_logprobs=logprobs_for, lifetime_s=3600) as srv:
            clean, _ = scored(run(srv, Path(tmp) / "clean.jsonl")[0])
        for i, (kind, fault) in enumerate(FAULT_KINDS.items()):
            with ScheduledStandin(random_schedule(100 + i, FAULT_RATE, fault), verdict=verdict_for,
                                  top_logprobs=logprobs_for, lifetime_s=3600) as srv:
                t0 = time.perf_counter()
                records, failures, stats = run(srv, Path(tmp) / f"{i}.jsonl")
                first_s, first = scored(records)
                seconds = time.perf_counter() - t0
                sent = srv.count
                records2, _, stats2 = run(srv, Path(tmp) / f"{i}.jsonl")
                second_s, second = scored(records2)
            equal = {k: v for k, v in second_s.items()} == clean
            rows.append({"fault": kind, "rate": FAULT_RATE, "after_job": first, "after_rerun": second,
                         "rerun_requests": stats2["new_requests"], "http_requests": sent, "rounds": stats["rounds"],
                         "seconds": round(seconds, 1), "score": round(second_s["win_rate"], 4),
                         "fault_free_score": round(clean["win_rate"], 4), "equal_to_fault_free": equal,
                         "ok": first == second == f"{N_ITEMS}/{N_ITEMS}" and equal})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run both measurements, print them, return 0 when every goal is met."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2, help="stand-in server latency per request (s)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--skip-faults", action="store_true", help="only throughput and the cached rerun")
    args = ap.parse_args(argv)
    with standin_process(args.latency) as base_url:
        rows = [throughput(base_url, c, args.latency) for c in (1, 8, 32)]
        rerun = cached_rerun(base_url)
    load = cache_load()
    print(f"stand-in latency {args.latency * 1000:.0f} ms (openai SDK transport retries)")
    print(f"{'concurrency':>11} {'requests':>8} {'seconds':>8} {'judgments/s':>11} {'goal':>6}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['seconds']:>8.2f} {r['judgments_per_s']:>11.1f} "
              f"{r['goal']:>6.1f} {'ok' if r['ok'] else 'MISSED'}")
    print(f"cached rerun of {rerun['items']} items: {rerun['seconds']:.3f} s, {rerun['requests']} requests "
          f"({rerun['goal']}) {'ok' if rerun['ok'] else 'MISSED'}")
    print(f"cache load + lookup of {load['entries']} entries: {load['seconds']:.3f} s ({load['goal']}) "
          f"{'ok' if load['ok'] else 'MISSED'}")
    fault_rows = [] if args.skip_faults else faults()
    if fault_rows:
        print(f"\n{N_ITEMS} AlpacaEval 2 games, {FAULT_RATE:.0%} of asks faulted, concurrency 32, SDK max_retries 6:")
        print(f"{'fault':<22} {'after job':>10} {'after rerun':>11} {'rerun asks':>10} {'HTTP requests':>13} "
              f"{'seconds':>7}  score vs fault-free")
        for r in fault_rows:
            print(f"{r['fault']:<22} {r['after_job']:>10} {r['after_rerun']:>11} {r['rerun_requests']:>10} "
                  f"{r['http_requests']:>13} {r['seconds']:>7.1f}  {r['score']} vs {r['fault_free_score']} "
                  f"{'equal' if r['equal_to_fault_free'] else 'DIFFERENT'} {'ok' if r['ok'] else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"latency_s": args.latency, "throughput": rows, "cached_rerun": rerun,
                                         "cache_load": load, "faults": fault_rows}, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows + fault_rows) and rerun["ok"] and load["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
