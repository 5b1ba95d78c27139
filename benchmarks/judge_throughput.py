"""Judge throughput and cached-rerun cost, against the local stand-in server (no network, no key).

Prints judgments/s of OpenAIJudge at concurrency 1, 8 and 32 with a fixed server latency (goal:
>= 0.8 x concurrency / latency), then the wall time and request count of rerunning a fully cached
805-item benchmark (goal: 0 requests, <= 2 s). Exits 1 if a goal is missed.

    python benchmarks/judge_throughput.py [--latency 0.2] [--json results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from reproduce.judges.base import JudgeRequest  # noqa: E402
from reproduce.judges.cache import JudgmentCache  # noqa: E402
from reproduce.judges.openai_judge import OpenAIJudge  # noqa: E402
from tests.support import judge_cached  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    """Run both measurements, print them, return 0 when every goal is met."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.2, help="stand-in server latency per request (s)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    with standin_process(args.latency) as base_url:
        rows = [throughput(base_url, c, args.latency) for c in (1, 8, 32)]
        rerun = cached_rerun(base_url)
    print(f"stand-in latency {args.latency * 1000:.0f} ms")
    print(f"{'concurrency':>11} {'requests':>8} {'seconds':>8} {'judgments/s':>11} {'goal':>6}")
    for r in rows:
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['seconds']:>8.2f} {r['judgments_per_s']:>11.1f} "
              f"{r['goal']:>6.1f} {'ok' if r['ok'] else 'MISSED'}")
    print(f"cached rerun of {rerun['items']} items: {rerun['seconds']:.3f} s, {rerun['requests']} requests "
          f"({rerun['goal']}) {'ok' if rerun['ok'] else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"latency_s": args.latency, "throughput": rows, "cached_rerun": rerun},
                                        indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) and rerun["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
