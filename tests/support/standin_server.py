"""A scripted OpenAI-compatible stand-in server for judge tests and benchmarks.

``POST /v1/chat/completions`` answers with a fixed verdict (or one computed per call), after a
configurable latency, unless the next entry of a fault script says otherwise. Faults (one per request,
consumed in arrival order): ``Fault.rate_limit(...)`` (429 + Retry-After), ``Fault.status(500)``,
``Fault.hang(s)`` (answer only after ``s`` seconds), ``Fault.drop()`` (close the connection without an
answer), ``Fault.truncated()`` (a 200 with half a JSON body), ``Fault.empty()`` (empty content),
``Fault.no_logprobs()``, ``Fault.reply(t)`` and ``Fault.auth_error()`` (a 401 quoting the key sent).

It is bounded: it listens on 127.0.0.1 only, on a free port, stops itself after ``lifetime_s`` or
``max_requests``, and is a context manager that always shuts down on exit.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

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


class StandinServer:
    """Run with ``with StandinServer(...) as srv:``; ``srv.base_url`` is the ``/v1`` URL to point a judge at.

    verdict: the content returned, or ``f(body, n)`` computing it from the request body and the call
        number (``n`` starts at 1), e.g. a different verdict on every call.
    latency_s: delay before each normal answer. top_logprobs: the first token's alternatives returned
        when the request asks for logprobs (a dict, or ``f(body, n)`` computing one per call). ``requests`` records every request body and its
        Authorization header; ``count`` is the number of chat-completion requests received;
        ``max_inflight`` the most handled at once.
    """

    def __init__(self, *, verdict: str | Callable[[dict, int], str] = "[[A]]", latency_s: float = 0.0,
                 script: list[Fault] | None = None,
                 top_logprobs: dict | Callable[[dict, int], dict] | None = None,
                 completion_tokens: int = 5, lifetime_s: float = 120.0, max_requests: int = 100_000):
        self.verdict, self.latency_s = verdict, latency_s
        self.top_logprobs = top_logprobs if callable(top_logprobs) else \
            dict(DEFAULT_TOP_LOGPROBS if top_logprobs is None else top_logprobs)
        self.completion_tokens = completion_tokens
        self.lifetime_s, self.max_requests = lifetime_s, max_requests
        self.script: deque[Fault] = deque(script or [])
        self.requests: list[dict] = []
        self.count = 0
        self.inflight = self.max_inflight = 0  # concurrent requests now / at most, to check client bounds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None

    # ----- lifecycle -----

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "StandinServer":
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        server = self

        class Handler(_Handler):
            standin = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a hanging handler must not hold up shutdown
        httpd.request_queue_size = 256  # concurrency-32 bursts must not overflow the listen backlog
        httpd.server_bind()
        httpd.server_activate()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # self-stopping even if a test forgets
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()  # wakes hanging handlers first
        if self._timer is not None:
            self._timer.cancel()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def __enter__(self) -> "StandinServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def add(self, *faults: Fault) -> None:
        """Append faults to the script."""
        with self._lock:
            self.script.extend(faults)

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

    def _completion(self, body: dict, n: int, text: str | None, with_logprobs: bool) -> dict:
        """An OpenAI chat.completion object."""
        content = text if text is not None else (self.verdict(body, n) if callable(self.verdict) else self.verdict)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
        choice: dict = {"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content}, "logprobs": None}
        if with_logprobs and body.get("logprobs"):
            k = int(body.get("top_logprobs") or 5)
            tops = [{"token": t, "logprob": lp, "bytes": list(t.encode())}
                    for t, lp in sorted(self._top_logprobs(body, n).items(), key=lambda kv: -kv[1])[:k]]
            first = tops[0] if tops else {"token": content[:1], "logprob": 0.0, "bytes": []}
            choice["logprobs"] = {"content": [{**first, "top_logprobs": tops}]}
        return {"id": f"chatcmpl-standin-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "standin"), "choices": [choice],
                "usage": {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": self.completion_tokens,
                          "total_tokens": max(1, prompt_chars // 4) + self.completion_tokens}}

    def _top_logprobs(self, body: dict, n: int) -> dict:
        return self.top_logprobs(body, n) if callable(self.top_logprobs) else self.top_logprobs

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server stops (so hangs never outlive it)."""
        self._stop.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do; every answer carries Content-Length
    # headers and body go out as two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms), which would make the stand-in, not the judge, the bottleneck of throughput measurements
    disable_nagle_algorithm = True
    standin: StandinServer

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        """``/v1/models`` and ``/health`` for readiness checks; ``/stats`` for counts across processes."""
        if self.path.rstrip("/") == "/stats":
            srv = self.standin
            self._send(200, json.dumps({"count": srv.count, "max_inflight": srv.max_inflight}).encode())
        elif self.path.rstrip("/") in ("/v1/models", "/health"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": "standin", "object": "model"}]}).encode())
        else:
            self._send(404, b'{"error": {"message": "not found"}}')

    def do_POST(self) -> None:
        """``/v1/chat/completions``, following the fault script."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, b'{"error": {"message": "not found"}}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, b'{"error": {"message": "body is not JSON"}}')
            return
        srv = self.standin
        n, fault = srv._next(body, self.headers.get("Authorization"))
        with srv._lock:
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            self._answer(srv, body, n, fault)
        finally:
            with srv._lock:
                srv.inflight -= 1

    def _answer(self, srv: StandinServer, body: dict, n: int, fault: Fault | None) -> None:
        """Send the scripted answer (or the normal one) for request ``n``."""
        kind = fault.kind if fault else None
        if kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if kind == "auth_echo":
            auth = str(self.headers.get("Authorization", ""))
            err = {"error": {"message": f"Incorrect API key provided: {auth.removeprefix('Bearer ')}",
                             "type": "invalid_request_error", "code": "invalid_api_key"}}
            self._send(401, json.dumps(err).encode())
            return
        if kind == "status":
            err = {"error": {"message": f"stand-in fault {fault.code}", "type": "standin", "code": None}}
            self._send(fault.code, json.dumps(err).encode(), fault.headers)
            return
        srv._sleep(fault.seconds if kind == "hang" else srv.latency_s)
        if srv._stop.is_set():
            self.close_connection = True
            return
        text = fault.text if kind == "text" else None
        payload = json.dumps(srv._completion(body, n, text, with_logprobs=kind != "no_logprobs")).encode()
        if kind == "truncated":
            payload = payload[: len(payload) // 2]
        try:
            self._send(200, payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) first
            self.close_connection = True


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
