"""Test helpers shared by several test files and perf/judge_throughput.py.

``judge_cached`` is the minimal judge-through-cache loop a benchmark protocol runs, so the cache and
the judge can be tested together without any protocol code.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from reproduce.judges.base import Judge, JudgeError, JudgeRequest
from reproduce.judges.cache import JudgmentCache


async def judge_cached(judge: Judge, cache: JudgmentCache, requests: list[JudgeRequest],
                       parse: Callable[[str | None], Any] = lambda text: text) -> list[Any]:
    """Verdicts for ``requests``: cached ones reused, the rest asked concurrently and cached on success.

    A failed call or an unparseable reply gives None for that request and is not cached.
    """
    identity = judge.identity()
    keys = [cache.key(identity, r) for r in requests]

    async def one(key: str, req: JudgeRequest) -> Any:
        hit = cache.get(key)
        if hit is not None:
            return hit["verdict"]
        try:
            reply = await judge.complete(req)
        except JudgeError:
            return None
        verdict = parse(reply.text)
        if verdict is not None:
            cache.put(key, reply, verdict)
        return verdict

    try:
        return list(await asyncio.gather(*(one(k, r) for k, r in zip(keys, requests))))
    finally:
        await judge.aclose()
