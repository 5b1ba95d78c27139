"""Judge one model's answers on one benchmark with one judge, through the content-addressed cache.

For every question the protocol renders its judge requests (games); each request is looked up in the
judge's cache (``results/judgments/<benchmark>/<judge>/_cache.jsonl``), answered by the judge when
missing, re-asked up to ``judging.max_attempts`` times while no verdict parses, and only a parsed
verdict is cached. A question with a failed game is listed in ``failures`` and its game carries no
verdict (the scorers drop or count it as the official tools do) — a failure is never a verdict.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time

from reproduce.judges.base import Judge, JudgeError


def protocol_module(protocol: str):
    """The module implementing a protocol (``reproduce.benchmarks.<protocol>``)."""
    return importlib.import_module(f"reproduce.benchmarks.{protocol}")


async def _answer(judge: Judge, proto, game, request, max_attempts: int):
    """Ask until a verdict parses or attempts run out; returns (verdict | None, reply | None, reason)."""
    reply, reason = None, "no verdict parsed"
    for attempt in range(1, max_attempts + 1):
        try:
            reply = await judge.complete(request)
        except JudgeError as e:
            return None, None, f"judge error: {e}"
        reply.attempts = attempt
        verdict = proto.parse(game, reply)
        if verdict is not None:
            return verdict, reply, None
        reason = f"no verdict parsed after {attempt} attempt(s): {str(reply.text)[:80]!r}"
    return None, reply, reason


async def judge_model(bench: dict, judge: Judge, cache, questions: list[dict], answers: dict[str, dict],
                      reference: dict[str, dict] | None, templates, log=print) -> tuple[list[dict], list[dict], dict]:
    """Judge every answered question; returns (native records, failures, run stats)."""
    proto = protocol_module(bench["protocol"])
    max_attempts = bench.get("judging", {}).get("max_attempts", 2)
    identity = judge.identity()
    plan = []  # (question, [(game, request, cache_key)])
    for q in questions:
        a = answers.get(q["question_id"])
        if a is None:
            continue
        ref = reference.get(q["question_id"]) if reference is not None else None
        if reference is not None and ref is None:
            raise ValueError(f"reference answers lack question {q['question_id']!r}")
        games = [(g, r, cache.key(identity, r)) for g, r in proto.build_requests(q, a, ref, bench, templates)]
        plan.append((q, a, ref, games))
    missing = [(g, r) for *_, games in plan for g, r, k in games if cache.get(k) is None]
    estimate = judge.estimate_cost([r for _, r in missing])
    log(f"judge {judge.name}: {sum(len(p[3]) for p in plan)} requests, {len(missing)} not cached"
        + (f", estimated cost ${estimate:.2f}" if estimate else ""))

    from tqdm import tqdm

    bar = tqdm(total=len(missing), desc=f"judging ({judge.name})", file=sys.stderr, disable=not missing)
    results: dict[str, tuple] = {}

    async def run_one(game, request, key):
        verdict, reply, reason = await _answer(judge, proto, game, request, max_attempts)
        if verdict is not None:
            cache.put(key, reply, verdict)
        results[key] = (verdict, reply, reason)
        bar.update(1)

    t0 = time.time()
    seen = set()
    tasks = []
    for g, r, k in ((g, r, k) for *_, games in plan for g, r, k in games):
        if cache.get(k) is None and k not in seen:
            seen.add(k)
            tasks.append(run_one(g, r, k))
    await asyncio.gather(*tasks)
    bar.close()
    await judge.aclose()

    from reproduce.judges.base import JudgeReply

    records, failures = [], []
    cost = tokens_in = tokens_out = 0
    for q, a, ref, games in plan:
        verdicts, replies = {}, {}
        for g, r, k in games:
            hit = cache.get(k)
            if hit is not None:
                verdicts[g], replies[g] = hit["verdict"], JudgeReply(**hit["reply"])
                if k in results:  # judged in this run: count its usage
                    cost += replies[g].cost_usd
                    tokens_in += replies[g].prompt_tokens
                    tokens_out += replies[g].completion_tokens
            else:
                verdict, reply, reason = results[k]
                verdicts[g], replies[g] = None, reply
                failures.append({"question_id": q["question_id"], "game": g, "reason": reason})
        records.append(proto.make_record(q, a, ref, bench, judge.name, verdicts, replies))
    stats = {"requests": sum(len(p[3]) for p in plan), "new_requests": len(tasks), "failed_games": len(failures),
             "cost_usd": round(cost, 4), "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
             "seconds": round(time.time() - t0, 2)}
    return records, failures, stats
