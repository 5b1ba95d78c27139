"""A stand-in judge server whose faults are a seeded function of the request, not of arrival order.

``ScheduledStandin`` is the tests' stand-in server (``support.standin_server.StandinServer``) with one
change: when its arrival-ordered script is empty, the fault for a request is ``schedule(body, k)``, where
``k`` counts how often this same request (same messages) has been asked. So which games fail, and how
often, is fixed by the seed whatever the concurrency, and a test can compute the failed games in advance.

``doomed_schedule`` fails a seeded share of requests on every ask (until ``healthy`` is set) and gives the
others up to ``transient_faults`` faults before answering; ``random_schedule`` injects one kind of fault
with a fixed probability per ask (perf/judge_throughput.py's 30% runs).
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
from collections import Counter
from typing import Callable

from support.standin_server import Fault, StandinServer

# retry-after-ms on server errors keeps the SDK's waits short in tests (real servers send it too)
FAST = {"retry-after-ms": "20"}
TRANSIENT_KINDS: dict[str, Callable[[], Fault]] = {
    "429": lambda: Fault.rate_limit(None, retry_after_ms="20"),
    "500": lambda: Fault("status", code=500, headers=dict(FAST)),
    "503": lambda: Fault("status", code=503, headers=dict(FAST)),
    "drop": Fault.drop,
    "truncated": Fault.truncated,
    "empty": Fault.empty,
}


def request_digest(messages) -> str:
    """A stable hash of a request's messages (the same for the server's body and the client's request)."""
    return hashlib.sha256(json.dumps(list(messages), sort_keys=True).encode()).hexdigest()[:16]


class ScheduledStandin(StandinServer):
    """StandinServer with content-keyed faults: ``schedule(body, k) -> Fault | None``; ``asked`` counts
    requests per digest, ``healthy`` switches the schedule off."""

    def __init__(self, schedule: Callable[[dict, int], Fault | None], **kwargs):
        super().__init__(**kwargs)
        self.schedule = schedule
        self.asked: Counter = Counter()
        self.healthy = False
        self._asked_lock = threading.Lock()

    def _next(self, body: dict, auth: str | None):
        n, scripted = super()._next(body, auth)
        digest = request_digest(body.get("messages") or [])
        with self._asked_lock:
            self.asked[digest] += 1
            k = self.asked[digest]
        if scripted is not None or self.healthy:
            return n, scripted
        return n, self.schedule(body, k)


def doomed(seed: int, messages, doomed_rate: float) -> bool:
    """Whether the request with these messages fails on every ask under ``doomed_schedule(seed, ...)``."""
    return random.Random(f"{seed}:doomed:{request_digest(messages)}").random() < doomed_rate


def doomed_schedule(seed: int, doomed_rate: float, kinds: list[str], transient_faults: int = 1,
                    doomed_fault: Callable[[], Fault] | None = None):
    """A schedule: doomed requests get ``doomed_fault()`` (default: a seeded transient kind) on every ask;
    the others get 0..``transient_faults`` seeded faults of ``kinds`` on their first asks, then answers."""
    def schedule(body: dict, k: int) -> Fault | None:
        messages = body.get("messages") or []
        rng = random.Random(f"{seed}:{request_digest(messages)}")
        if doomed(seed, messages, doomed_rate):
            return doomed_fault() if doomed_fault else TRANSIENT_KINDS[kinds[k % len(kinds)]]()
        n_faults = rng.randint(0, transient_faults)
        return TRANSIENT_KINDS[rng.choice(kinds)]() if k <= n_faults else None
    return schedule


def random_schedule(seed: int, rate: float, fault: str | Callable[[], Fault]):
    """A schedule injecting ``fault`` (a TRANSIENT_KINDS name or a factory) with probability ``rate`` on every
    ask, seeded per request and ask."""
    make = TRANSIENT_KINDS[fault] if isinstance(fault, str) else fault

    def schedule(body: dict, k: int) -> Fault | None:
        rng = random.Random(f"{seed}:{request_digest(body.get('messages') or [])}:{k}")
        return make() if rng.random() < rate else None
    return schedule
