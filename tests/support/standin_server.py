"""A scripted OpenAI-compatible stand-in server for judge tests and benchmarks.

It is the rehearsal's stand-in judge (``reproduce.rehearsal.judge_server.JudgeServer``: HTTP handling,
OpenAI response shapes, model list and 404 ``model_not_found``, bounded lifetime) with test controls on
top: ``POST /v1/chat/completions`` answers with a fixed verdict (or one computed per call), after a
configurable latency, unless the next entry of a fault script says otherwise. Faults (one per request,
consumed in arrival order): ``Fault.rate_limit(...)`` (429 + Retry-After), ``Fault.status(500)``,
``Fault.hang(s)`` (answer only after ``s`` seconds), ``Fault.drop()`` (close the connection without an
answer), ``Fault.truncated()`` (a 200 with half a JSON body), ``Fault.empty()`` (empty content),
``Fault.no_logprobs()``, ``Fault.reply(t)`` and ``Fault.auth_error()`` (a 401 quoting the key sent).
Its bill (``billed``, from the rehearsal server) counts every completion generated: read usage for what
the client can read, the request's upper bound for a drop, a truncated body or a hang (which outlasts
the client's timeout by design); error statuses are free.

It is bounded: it listens on 127.0.0.1 only, on a free port, stops itself after ``lifetime_s`` or
``max_requests``, and is a context manager that always shuts down on exit.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from reproduce.rehearsal.judge_server import JudgeServer

DEFAULT_TOP_LOGPROBS = {"m": -0.1, "M": -2.4, "I": -6.0}


@dataclass
class Fault:
    """One scripted misbehaviour for one request."""

    kind: str
    code: int = 200
    headers: dict = field(default_factory=dict)
    seconds: float = 0.0
    text: str = ""

    @classmethod
    def rate_limit(cls, retry_after: str | None = "1", retry_after_ms: str | None = None) -> "Fault":
        """429 with ``Retry-After`` (seconds or an HTTP date) and/or ``retry-after-ms``."""
        headers = {}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        if retry_after_ms is not None:
            headers["retry-after-ms"] = retry_after_ms
        return cls("status", code=429, headers=headers)

    @classmethod
    def status(cls, code: int = 500) -> "Fault":
        """An error status with an OpenAI-style error body."""
        return cls("status", code=code)

    @classmethod
    def auth_error(cls) -> "Fault":
        """401 whose error message quotes the key the client sent (a careless server or proxy)."""
        return cls("auth_echo", code=401)

    @classmethod
    def hang(cls, seconds: float) -> "Fault":
        """Answer normally, but only after ``seconds`` (longer than the client's timeout)."""
        return cls("hang", seconds=seconds)

    @classmethod
    def drop(cls) -> "Fault":
        """Close the connection without sending a response."""
        return cls("drop")

    @classmethod
    def truncated(cls) -> "Fault":
        """A 200 whose JSON body is cut in half."""
        return cls("truncated")

    @classmethod
    def empty(cls) -> "Fault":
        """A well-formed completion with empty content."""
        return cls("text", text="")

    @classmethod
    def no_logprobs(cls) -> "Fault":
        """A completion without logprobs even when they were requested."""
        return cls("no_logprobs")

    @classmethod
    def reply(cls, text: str) -> "Fault":
        """A completion with this content."""
        return cls("text", text=text)


class StandinServer(JudgeServer):
    """Run with ``with StandinServer(...) as srv:``; ``srv.base_url`` is the ``/v1`` URL to point a judge at.

    verdict: the content returned, or ``f(body, n)`` computing it from the request body and the call
        number (``n`` starts at 1), e.g. a different verdict on every call.
    latency_s: delay before each normal answer. top_logprobs: the first token's alternatives returned
        when the request asks for logprobs (a dict, or ``f(body, n)`` computing one per call). models: the
        names answered for (None: any; others get the 404 ``model_not_found``). served_model: the model name a
        reply carries (``response.model``; default: the name asked for), or ``f(body, n)`` computing it (an
        alias that moves to another snapshot mid-run). ``requests`` records every
        request body and its Authorization header; ``count`` is the number of chat-completion requests
        received; ``max_inflight`` the most handled at once. lifetime_s: an hour by default; the ``with``
        block stops the server, the lifetime only bounds a forgotten one (a test-sized lifetime races a
        loaded machine: a test that outlived it failed with its server gone). ``_next`` is the hook that
        picks a request's fault (tests/fault_schedule.py overrides it).
    """

    default_top_logprobs = 5

    def __init__(self, *, verdict: str | Callable[[dict, int], str] = "[[A]]", latency_s: float = 0.0,
                 script: list[Fault] | None = None,
                 top_logprobs: dict | Callable[[dict, int], dict] | None = None,
                 completion_tokens: int = 5, lifetime_s: float = 3600.0, max_requests: int = 100_000,
                 models: list[str] | None = None, served_model: str | Callable[[dict, int], str] | None = None):
        super().__init__(models, lifetime_s=lifetime_s, completion_tokens=completion_tokens)
        self.verdict, self.latency_s = verdict, latency_s
        self.served_model = served_model
        self._top = top_logprobs if callable(top_logprobs) else \
            dict(DEFAULT_TOP_LOGPROBS if top_logprobs is None else top_logprobs)
        self.max_requests = max_requests
        self.script: deque[Fault] = deque(script or [])
        self.requests: list[dict] = []
        self.inflight = self.max_inflight = 0  # concurrent requests now / at most, to check client bounds

    def add(self, *faults: Fault) -> None:
        """Append faults to the script."""
        with self._lock:
            self.script.extend(faults)

    # ----- answers -----

    def content(self, body: dict, n: int) -> str:
        """The configured verdict (fixed, or computed from the request and call number)."""
        return self.verdict(body, n) if callable(self.verdict) else self.verdict

    def top_logprobs(self, body: dict, n: int) -> dict:
        """The configured first-token alternatives."""
        return self._top(body, n) if callable(self._top) else self._top

    def completion(self, body: dict, n: int, text: str | None = None, with_logprobs: bool = True) -> dict:
        """The server's completion, answering as ``served_model`` when one is set."""
        out = super().completion(body, n, text, with_logprobs)
        if self.served_model is not None:
            out["model"] = self.served_model(body, n) if callable(self.served_model) else self.served_model
        return out

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops (so hangs never outlive it)."""
        self._stop.wait(seconds)

    # ----- request handling (called from handler threads) -----

    def _next(self, body: dict, auth: str | None) -> tuple[int, Fault | None]:
        """Record a request and pop the fault scripted for it."""
        with self._lock:
            self.count += 1
            self.requests.append({"body": body, "authorization": auth})
            fault = self.script.popleft() if self.script else None
            n = self.count
        if n >= self.max_requests:
            threading.Thread(target=self.stop, daemon=True).start()
        return n, fault

    def on_get(self, handler, path: str) -> None:
        """Adds ``/stats`` (counts, for a benchmark in another process) to the server's endpoints."""
        if path == "/stats":
            handler.send_json(200, {"count": self.count, "max_inflight": self.max_inflight})
        else:
            super().on_get(handler, path)

    def on_chat(self, handler, body: dict) -> None:
        """Follow the fault script (or answer normally), counting requests in flight."""
        n, fault = self._next(body, handler.headers.get("Authorization"))
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            self._answer(handler, body, n, fault)
        finally:
            with self._lock:
                self.inflight -= 1

    def _answer(self, handler, body: dict, n: int, fault: Fault | None) -> None:
        """Send the scripted answer (or the normal one) for request ``n``."""
        kind = fault.kind if fault else None
        if kind == "drop":  # after the request arrived: billed at its upper bound, as a provider might
            self.bill(body, None)
            handler.close_connection = True
            try:
                handler.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "auth_echo":
            auth = str(handler.headers.get("Authorization", ""))
            err = {"error": {"message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}",
                             "type": "invalid_request_error", "code": "invalid_api_key"}}
            handler.send_json(401, err)
            return
        if kind == "status":
            err = {"error": {"message": f"stand-in fault {fault.code}", "type": "standin", "code": None}}
            handler.send_json(fault.code, err, fault.headers)
            return
        error = self.model_error(body)
        if error is not None:
            handler.send_json(404, error)
            return
        self._sleep(fault.seconds if kind == "hang" else self.latency_s)
        if self._stop.is_set():
            handler.close_connection = True
            return
        text = fault.text if kind == "text" else None
        out = self.completion(body, n, text, with_logprobs=kind != "no_logprobs")
        # what the client cannot read (a body cut short, an answer after it gave up) is billed at the bound
        self.bill(body, None if kind in ("truncated", "hang") else out["usage"])
        payload = json.dumps(out).encode()
        if kind == "truncated":
            payload = payload[: len(payload) // 2]
        try:
            handler.send_json(200, payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
            handler.close_connection = True


def main(argv: list[str] | None = None) -> int:
    """Serve from the command line, in a process of its own (so a benchmark's client does not share the
    server's interpreter lock): prints the base URL, then serves until killed or ``--lifetime`` passes."""
    ap = argparse.ArgumentParser(description="OpenAI-compatible stand-in server on 127.0.0.1")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--verdict", default="[[A]]", help="content of every answer")
    ap.add_argument("--lifetime", type=float, default=600.0, help="stop after this many seconds")
    args = ap.parse_args(argv)
    with StandinServer(latency_s=args.latency, verdict=args.verdict, lifetime_s=args.lifetime) as srv:
        print(srv.base_url, flush=True)
        srv._stop.wait(args.lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
