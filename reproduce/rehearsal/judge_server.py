"""A deterministic OpenAI-compatible stand-in judge on 127.0.0.1, for the rehearsal (the paid judge cannot
be called there) and, with fault injection added, for the tests (``tests/support/standin_server.py``).

``POST /v1/chat/completions`` reads the rendered judge prompt and answers in the verdict format that
prompt asks for, the verdict fixed by a hash of the messages (the same request always gets the same
answer, whichever process or call asks):

- Arena-Hard v0.1 (the system prompt lists ``[[A>>B]]``): reasoning, then ``My final verdict is: [[A>B]]``
  with one of the five labels;
- MT-Bench single grading (``[[rating]]``): ``Rating: [[n]]``, n in 1..10;
- MT-Bench pairwise (``[[A]]`` ... ``[[C]]``): ``[[A]]``, ``[[B]]`` or ``[[C]]``;
- AlpacaEval 2 (``m or M``, and any prompt without a marker): the single token ``m`` or ``M`` and, when
  asked (``logprobs``/``top_logprobs``), the first token's log-probs in OpenAI's format, a proper
  distribution over ``m``/``M`` (and a little elsewhere) whose top token is the one answered.

``GET /v1/models`` lists the models the server was started with; a request for any other model gets
OpenAI's 404 ``model_not_found`` error. The server keeps its own bill (``billed``, ``GET /billing``): the
usage of every completion it generated, as a provider would charge it - an answer whose usage the client
cannot read (cut short, dropped) at the request's upper bound (``reproduce.judges.guard.request_bound``),
a batch's lines at the batch price; error statuses are free. The server listens on 127.0.0.1 only, on the given port (0: a free
one), and stops itself after ``lifetime_s``. Use it as ``with JudgeServer(["gpt-4"]) as srv: srv.base_url``
or from the command line:
``python -m reproduce.rehearsal.judge_server --port 8765 --models gpt-4-1106-preview gpt-4 --lifetime-s 3600``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Sequence

from reproduce.rehearsal.batch_api import BatchEndpoints

ARENA_LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
OWNER = "reproduce-standin"  # owned_by of the listed models: says plainly this is not OpenAI


# ----- verdicts (pure functions of the request body) -----

def digest(body: dict) -> int:
    """A stable integer hash of the request's messages."""
    blob = json.dumps(body.get("messages"), sort_keys=True).encode()
    return int(hashlib.sha256(blob).hexdigest()[:12], 16)


def protocol_of(body: dict) -> str:
    """Which verdict format the judge prompt asks for: ``arena_hard``, ``mt_single``, ``mt_pair`` or
    ``alpaca_eval`` (also the answer to a prompt without any marker).

    Messages are read in order and the first one carrying a marker decides, so the system prompt (where
    the official prompts state the format) wins over a marker quoted inside an answer being judged.
    """
    for message in body.get("messages") or []:
        text = str(message.get("content", "")) if isinstance(message, dict) else str(message)
        if "A>>B" in text:
            return "arena_hard"
        if "[[rating]]" in text or "Rating: [[" in text:
            return "mt_single"
        if "[[A]]" in text and "[[C]]" in text:
            return "mt_pair"
        if "m or M" in text:
            return "alpaca_eval"
    return "alpaca_eval"


def logprobs_for(body: dict, n: int = 0) -> dict:
    """AlpacaEval's first-token log-probs over ``m``/``M``, fixed by the prompt: P(m) in [0.02, 0.98],
    99.9% of the mass on the two identifiers and the rest on ``I`` (a proper distribution)."""
    h = digest(body)
    p_m = 0.02 + 0.96 * ((h % 1009) / 1008)
    return {"m": math.log(0.999 * p_m), "M": math.log(0.999 * (1 - p_m)), "I": math.log(0.001)}


def verdict_for(body: dict, n: int = 0, salt: int = 0) -> str:
    """A valid verdict in the format the judge prompt asks for, fixed by the prompt (and ``salt``)."""
    h = digest(body) + salt
    protocol = protocol_of(body)
    if protocol == "arena_hard":
        return f"Both answers were compared with my own.\n\nMy final verdict is: [[{ARENA_LABELS[h % 5]}]]"
    if protocol == "mt_single":
        return f"The answer was assessed. Rating: [[{1 + h % 10}]]"
    if protocol == "mt_pair":
        return f"Verdict: [[{'ABC'[h % 3]}]]"
    if salt:
        return "mM"[h % 2]
    lps = logprobs_for(body)
    return "m" if lps["m"] >= lps["M"] else "M"  # the token answered is the most likely one


def flaky_verdict_for(body: dict, n: int) -> str:
    """A valid verdict that changes with the call number ``n`` (a nondeterministic judge)."""
    return verdict_for(body, n, salt=n)


def model_not_found(model: object) -> dict:
    """OpenAI's error body for a model that does not exist (HTTP 404)."""
    return {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                      "type": "invalid_request_error", "param": None, "code": "model_not_found"}}


# ----- the server -----

class JudgeServer(BatchEndpoints):
    """The stand-in judge; ``models=None`` answers for any model name (the tests' default).

    Subclasses change the answers by overriding ``content``/``top_logprobs`` or, to control the whole
    response (faults), ``on_chat``. ``count`` is the number of chat-completion requests received.
    """

    default_top_logprobs = 0  # alternatives returned when logprobs are asked without top_logprobs (OpenAI's)

    def __init__(self, models: Sequence[str] | None = None, *, port: int = 0, lifetime_s: float = 3600.0,
                 completion_tokens: int | None = None, tokenizer: str | None = None):
        self.models = list(models) if models is not None else None
        self.port, self.lifetime_s, self.completion_tokens = port, lifetime_s, completion_tokens
        self.tokenizer_path, self._tokenizer = tokenizer, None  # usage is counted with it (rehearsal/usage.py)
        self.count = 0
        self.billed: list[dict] = []  # one entry per billed completion: tokens, how they were counted, batch or not
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._batch_init()  # /v1/files and /v1/batches (reproduce.rehearsal.batch_api)

    # ----- lifecycle -----

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "JudgeServer":
        """Bind 127.0.0.1:``port`` and serve in a daemon thread; stops itself after ``lifetime_s``."""
        from reproduce.rehearsal.usage import standin_tokenizer

        owner = self
        self._tokenizer = standin_tokenizer(self.tokenizer_path)  # before listening: no request waits for it

        class Handler(_Handler):
            server_owner = owner

        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler, bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.block_on_close = False  # a slow handler must not hold up shutdown
        httpd.request_queue_size = 256  # bursts of concurrent judge calls must not overflow the backlog
        httpd.allow_reuse_address = True
        try:
            httpd.server_bind()
            httpd.server_activate()
        except OSError:
            httpd.server_close()
            raise
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # bounded even if the caller forgets
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()  # wakes waiting handlers first
        if self._timer is not None:
            self._timer.cancel()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` passes); True when it has stopped."""
        return self._stop.wait(timeout)

    def __enter__(self) -> "JudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- the bill -----

    def bill(self, body: dict, usage: dict | None, batch: bool = False) -> None:
        """Bill one generated completion: its ``usage``, or (None: the client cannot read it) the request's
        upper bound, computed as the client's guard computes it."""
        if usage is None:
            from reproduce.judges.guard import bound_counter, completion_cap, request_bound

            prompt, completion = request_bound(body.get("messages"), completion_cap(body),
                                               bound_counter(str(body.get("model", ""))))
            entry = {"prompt_tokens": prompt, "completion_tokens": completion, "usage": "bound"}
        else:
            entry = {"prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"],
                     "usage": "read"}
        with self._lock:
            self.billed.append({**entry, "batch": batch})

    def billed_usd(self, price_in: float, price_out: float, batch_factor: float = 0.5) -> float:
        """Dollars of the bill at per-million prices (batch lines at ``batch_factor`` of them)."""
        with self._lock:
            return sum((e["prompt_tokens"] * price_in + e["completion_tokens"] * price_out) / 1e6
                       * (batch_factor if e["batch"] else 1.0) for e in self.billed)

    def billed_tokens(self) -> tuple[int, int]:
        """(prompt, completion) tokens billed."""
        with self._lock:
            return sum(e["prompt_tokens"] for e in self.billed), sum(e["completion_tokens"] for e in self.billed)

    # ----- answers -----

    def content(self, body: dict, n: int) -> str:
        """The reply text for request number ``n`` (from 1)."""
        return verdict_for(body, n)

    def top_logprobs(self, body: dict, n: int) -> dict:
        """The first token's alternatives ``{token: logprob}`` when the request asks for logprobs."""
        return logprobs_for(body, n)

    def listed_models(self) -> list[str]:
        """The names ``GET /v1/models`` lists."""
        return list(self.models) if self.models is not None else ["standin"]

    def model_error(self, body: dict) -> dict | None:
        """OpenAI's 404 body when the request names a model this server was not started with, else None."""
        if self.models is None or body.get("model") in self.models:
            return None
        return model_not_found(body.get("model"))

    def completion(self, body: dict, n: int, text: str | None = None, with_logprobs: bool = True) -> dict:
        """An OpenAI ``chat.completion`` object answering ``body``."""
        from reproduce.rehearsal.usage import usage

        content = self.content(body, n) if text is None else text
        prompt_tokens, counted = usage(body, content, self._tokenizer)  # a real tokenizer, not characters / 4
        completion_tokens = self.completion_tokens if self.completion_tokens is not None else counted
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        if cap:  # a provider never bills more completion tokens than the request allows
            completion_tokens = min(completion_tokens, int(cap))
        choice: dict = {"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content, "refusal": None}, "logprobs": None}
        if with_logprobs and body.get("logprobs"):
            k = int(body.get("top_logprobs") or self.default_top_logprobs)
            ranked = sorted(self.top_logprobs(body, n).items(), key=lambda kv: -kv[1])
            tops = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked[:k]]
            first = tops[0] if tops else {"token": content[:1], "logprob": 0.0, "bytes": list(content[:1].encode())}
            choice["logprobs"] = {"content": [{**first, "top_logprobs": tops}], "refusal": None}
        return {"id": f"chatcmpl-standin-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "standin"), "choices": [choice], "system_fingerprint": "standin",
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    # ----- request handling (called from handler threads) -----

    def on_get(self, handler: "_Handler", path: str) -> None:
        """``/v1/models`` (OpenAI's list), ``/v1/models/<id>``, ``/health``."""
        if self.on_batch_get(handler, path):
            return
        if path == "/billing":
            prompt, completion = self.billed_tokens()
            handler.send_json(200, {"completions": len(self.billed), "prompt_tokens": prompt,
                                    "completion_tokens": completion, "entries": list(self.billed)})
        elif path in ("/v1/models", "/health"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": OWNER} for m in self.listed_models()]
            handler.send_json(200, {"object": "list", "data": data})
        elif path.startswith("/v1/models/"):
            model = path.removeprefix("/v1/models/")
            if self.models is not None and model not in self.models:
                handler.send_json(404, model_not_found(model))
            else:
                handler.send_json(200, {"id": model, "object": "model", "created": 0, "owned_by": OWNER})
        else:
            handler.send_json(404, _unknown_url("GET", path))

    def on_chat(self, handler: "_Handler", body: dict) -> None:
        """Answer one chat-completion request."""
        with self._lock:
            self.count += 1
            n = self.count
        error = self.model_error(body)
        if error is not None:
            handler.send_json(404, error)
        else:
            out = self.completion(body, n)
            self.bill(body, out["usage"])
            handler.send_json(200, out)


def _unknown_url(method: str, path: str) -> dict:
    return {"error": {"message": f"Unknown request URL: {method} {path}.", "type": "invalid_request_error",
                      "param": None, "code": "unknown_url"}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do; every answer carries Content-Length
    # headers and body go out as two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms), which would make the stand-in, not the judge, the bottleneck of throughput measurements
    disable_nagle_algorithm = True
    server_owner: JudgeServer

    def log_message(self, *args) -> None:  # keep the rehearsal's and the tests' output quiet
        pass

    def send_json(self, status: int, payload: dict | bytes, headers: dict | None = None) -> None:
        """Send ``payload`` (an object, or bytes sent as they are) with ``status`` and extra ``headers``."""
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        """Listing and readiness endpoints."""
        self.server_owner.on_get(self, self.path.split("?", 1)[0].rstrip("/"))

    def do_POST(self) -> None:
        """``/v1/chat/completions``."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/files":
            self.server_owner.on_file_upload(self, raw, self.headers.get("Content-Type", ""))
            return
        if path not in ("/v1/chat/completions", "/v1/batches"):
            self.send_json(404, _unknown_url("POST", path))
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.send_json(400, {"error": {"message": "We could not parse the JSON body of your request.",
                                           "type": "invalid_request_error", "param": None, "code": None}})
            return
        if path == "/v1/batches":
            self.server_owner.on_batch_create(self, body)
            return
        self.server_owner.on_chat(self, body)


def main(argv: list[str] | None = None) -> int:
    """Serve from the command line until ``--lifetime-s`` passes or SIGTERM/SIGINT arrives; prints the base
    URL (and writes it to ``--url-file``) once it is listening."""
    ap = argparse.ArgumentParser(description="Deterministic OpenAI-compatible stand-in judge on 127.0.0.1 "
                                             "(Arena-Hard, MT-Bench and AlpacaEval verdict formats).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: a free port, printed)")
    ap.add_argument("--models", nargs="+", required=True,
                    help="model names to answer for; any other model gets OpenAI's 404 model_not_found")
    ap.add_argument("--lifetime-s", type=float, default=3600.0,
                    help="stop after this many seconds even if never told to (default 3600)")
    ap.add_argument("--tokenizer", default=None,
                    help="tokenizer.json (or a model directory holding one) that counts usage (default: the "
                         "rehearsal's Llama-3-shaped BPE, trained once and cached)")
    ap.add_argument("--url-file", type=Path, default=None,
                    help="also write the base URL to this file (atomically) once listening")
    args = ap.parse_args(argv)
    server = JudgeServer(args.models, port=args.port, lifetime_s=args.lifetime_s, tokenizer=args.tokenizer)
    try:
        server.start()
    except OSError as e:
        print(f"judge_server: cannot listen on 127.0.0.1:{args.port} ({e.strerror or e})", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=server.stop, daemon=True).start())
    if args.url_file is not None:  # written before the URL is printed: a reader of either finds both
        from reproduce.io import atomic_write_text

        atomic_write_text(args.url_file, server.base_url + "\n")
    print(server.base_url, flush=True)
    while not server.wait(0.5):  # short waits so the signal handlers run promptly
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
