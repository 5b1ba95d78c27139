"""A judge behind any OpenAI-compatible chat-completions endpoint (OpenAI, a local ``vllm serve``, ...).

Built from an ``evals/judges/<name>.yaml`` config. The openai client's own retries are disabled and
replaced by ours, because the judging protocols need to know exactly how many attempts a verdict took,
must honour ``Retry-After`` on rate limits, and must treat a malformed 200 body (a proxy cutting a
response short) as retryable, which the client would not.

The API key is read from the environment variable *named* by ``api_key_env``; the key itself never
enters the config, the judge's identity (the cache key), a reply, an error message or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
from pathlib import Path

import httpx
import openai

from reproduce.judges.base import Judge, JudgeError, JudgeReply, JudgeRequest

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "EMPTY"  # what local servers (vllm serve) accept when they were started without --api-key
RETRY_STATUSES = {408, 409, 429}  # plus every 5xx; other 4xx are the caller's fault and final
TOKENS_PER_MESSAGE = 4  # chat-format overhead per message, for cost estimates


class _Retryable(Exception):
    """An attempt failed in a way worth retrying; ``wait_s`` is the server's Retry-After, if any."""

    def __init__(self, reason: str, wait_s: float | None = None):
        super().__init__(reason)
        self.reason, self.wait_s = reason, wait_s


class OpenAIJudge(Judge):
    """LLM judge over an OpenAI-compatible endpoint, with bounded concurrency and our own retries.

    Config keys (see reproduce/schemas/judge.schema.yaml): ``model``, ``base_url`` (default OpenAI),
    ``api_key_env`` (null: the endpoint needs no key), ``concurrency``, ``timeout_s``, ``max_retries``,
    ``price_per_million_input``/``_output`` and the decoding overrides ``temperature``, ``max_tokens`` and
    ``logprobs`` (false: the endpoint cannot return log-probs, so never ask for them).

    ``require_key=False`` lets a caller build the judge only to estimate cost on a machine without the
    key; ``backoff_base_s``/``max_wait_s`` shape the retry waits (tests shorten them).
    """

    def __init__(self, name: str, config: dict, *, require_key: bool = True, backoff_base_s: float = 1.0,
                 max_wait_s: float = 60.0):
        self.name, self.config = name, config
        if not config.get("model"):
            raise JudgeError(f"judge '{name}': config has no 'model'")
        self.model: str = config["model"]
        self.base_url: str = (config.get("base_url") or OPENAI_URL).rstrip("/")
        self.key_env: str | None = config.get("api_key_env")
        self.concurrency = int(config.get("concurrency", 8))
        self.timeout_s = float(config.get("timeout_s", 120))
        self.max_retries = int(config.get("max_retries", 5))
        self.price_in = float(config.get("price_per_million_input", 0.0))
        self.price_out = float(config.get("price_per_million_output", 0.0))
        self.backoff_base_s, self.max_wait_s = backoff_base_s, max_wait_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None
        if require_key:
            self._api_key()  # fail fast, before any request is rendered or sent

    def __repr__(self) -> str:
        return f"OpenAIJudge(name={self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    # ----- identity and cost -----

    def identity(self) -> dict:
        """Kind, model, endpoint and the decoding overrides: all that changes what verdicts come back."""
        overrides = {k: self.config[k] for k in ("temperature", "max_tokens", "logprobs") if k in self.config}
        return {"kind": "openai", "model": self.model, "endpoint": self.base_url, "overrides": overrides}

    def estimate_cost(self, requests: list[JudgeRequest]) -> float:
        """Dollars to answer ``requests``: prompt tokens (tiktoken if cached offline, else chars/4) plus
        each request's full ``max_tokens`` of output, at the config's per-million prices (an upper bound)."""
        count = _token_counter(self.model)
        total = 0.0
        for req in requests:
            messages = req.messages or ()
            prompt = sum(count(str(m.get("content", ""))) + TOKENS_PER_MESSAGE for m in messages)
            output = self._decoding(req).get("max_tokens") or 1024
            total += prompt * self.price_in / 1e6 + output * self.price_out / 1e6
        return total

    # ----- calling -----

    async def complete(self, request: JudgeRequest) -> JudgeReply:
        """Answer one request, retrying transient failures; raise :class:`JudgeError` when it cannot."""
        if request.messages is None:
            raise JudgeError(f"judge '{self.name}': judge prompt files unavailable (the request has no messages; "
                             "only a programmatic judge can answer it)")
        client, sem = self._session()
        params = self._params(request)
        # flag replies without logprobs whenever the protocol wanted them, even if this endpoint is
        # configured never to be asked (logprobs: false): the protocol decides what that means
        want_logprobs = bool(request.decoding.get("logprobs"))
        last = "no attempt made"
        async with sem:  # held through back-off too, so a rate-limited endpoint is not flooded meanwhile
            for attempt in range(1, self.max_retries + 2):
                try:
                    reply = await self._attempt(client, params, want_logprobs)
                    reply.attempts = attempt
                    return reply
                except _Retryable as e:
                    last = e.reason
                    if attempt > self.max_retries:
                        break
                    wait = self._wait_s(attempt, e.wait_s)
                    log.info("judge %s: attempt %d failed (%s); retrying in %.2fs", self.name, attempt, last, wait)
                    await asyncio.sleep(wait)
        raise JudgeError(f"judge '{self.name}': {self.base_url} failed after {self.max_retries + 1} attempts "
                         f"(last: {last})")

    async def aclose(self) -> None:
        """Close the HTTP connections of the current event loop's client."""
        if self._client is not None:
            await self._client.close()
        self._client = self._sem = self._loop = None

    # ----- internals -----

    def _api_key(self) -> str:
        """The key from the environment (``EMPTY`` when no key is configured); one-line error if unset."""
        if self.key_env is None:
            return NO_KEY
        key = os.environ.get(self.key_env, "")
        if not key.strip():
            raise JudgeError(f"judge '{self.name}': environment variable {self.key_env} is not set "
                             f"(it must hold the API key for {self.base_url})")
        return key

    def _redact(self, text: str) -> str:
        """``text`` with the API key blanked out: servers quote a rejected key back in their errors, and
        error text ends up in failure lists and logs."""
        key = os.environ.get(self.key_env, "").strip() if self.key_env else ""
        return text.replace(key, "[REDACTED]") if len(key) >= 4 else text

    def _session(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        """Client and semaphore bound to the running loop (each asyncio.run gets fresh ones, since both
        are tied to the loop that first used them)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._client = openai.AsyncOpenAI(
                api_key=self._api_key(), base_url=self.base_url, max_retries=0, timeout=self.timeout_s)
            self._sem = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._client, self._sem

    def _decoding(self, request: JudgeRequest) -> dict:
        """The request's decoding with the config's overrides applied."""
        dec = dict(request.decoding)
        for k in ("temperature", "max_tokens"):
            if self.config.get(k) is not None:
                dec[k] = self.config[k]
        if self.config.get("logprobs") is False:
            dec["logprobs"] = False
        return dec

    def _params(self, request: JudgeRequest) -> dict:
        """Keyword arguments of the chat-completions call."""
        dec = self._decoding(request)
        params: dict = {"model": self.model, "messages": [dict(m) for m in request.messages]}
        for k in ("temperature", "max_tokens"):
            if dec.get(k) is not None:
                params[k] = dec[k]
        if dec.get("logprobs"):
            params["logprobs"] = True
            params["top_logprobs"] = int(dec.get("top_logprobs") or 5)
        return params

    async def _attempt(self, client: openai.AsyncOpenAI, params: dict, want_logprobs: bool) -> JudgeReply:
        """One HTTP call, classified: a reply, a :class:`_Retryable`, or a final :class:`JudgeError`."""
        try:
            # asyncio.timeout bounds the whole call: httpx's timeout is per read, so a trickling server
            # could otherwise hold a request far past timeout_s.
            async with asyncio.timeout(self.timeout_s):
                # the client's documented raw-request form: we parse the body ourselves (a truncated body
                # must be retryable), and it skips the typed-params transform, whose CPU cost per call
                # would cap throughput at high concurrency
                resp = await client.post("/chat/completions", cast_to=httpx.Response, body=params)
                text = resp.text
        except (TimeoutError, openai.APITimeoutError):
            raise _Retryable(f"timed out after {self.timeout_s:g}s") from None
        except openai.APIConnectionError as e:
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection error"
            raise _Retryable(f"cannot connect ({cause})") from None
        except openai.APIStatusError as e:
            status = e.status_code
            if status in RETRY_STATUSES or status >= 500:
                raise _Retryable(f"HTTP {status}", _retry_after_s(e.response.headers)) from None
            raise JudgeError(f"judge '{self.name}': {self.base_url} answered HTTP {status}: "
                             f"{_short(self._redact(str(e.message)))}") from None
        except openai.APIResponseValidationError:
            raise _Retryable("malformed response body") from None
        return self._reply(text, want_logprobs)

    def _reply(self, body_text: str, want_logprobs: bool) -> JudgeReply:
        """Parse a 200 body into a reply; a body that is not a chat completion is retryable."""
        try:
            body = json.loads(body_text)
            choice = body["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"malformed response body ({_short(self._redact(body_text), 60)!r})") from None
        content = message.get("content") if isinstance(message, dict) else None
        usage = body.get("usage") or {}
        p_tok, c_tok = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        reply = JudgeReply(text=content or "", prompt_tokens=p_tok, completion_tokens=c_tok,
                           cost_usd=(p_tok * self.price_in + c_tok * self.price_out) / 1e6)
        if not content:
            reply.extra["empty_content"] = True
        if not usage:
            reply.extra["missing_usage"] = True
        if want_logprobs:
            reply.top_logprobs = _first_token_logprobs(choice.get("logprobs"))
            if reply.top_logprobs is None:
                reply.extra["missing_logprobs"] = True
        return reply

    def _wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Seconds before the next attempt: the server's Retry-After if given, else exponential back-off
        with jitter (so many clients hit by one outage do not retry in lock-step); capped at max_wait_s."""
        if retry_after is not None:
            return min(self.max_wait_s, retry_after * random.uniform(1.0, 1.1))
        return min(self.max_wait_s, self.backoff_base_s * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def _first_token_logprobs(logprobs: dict | None) -> dict[str, float] | None:
    """``{token: logprob}`` of the first generated token's top alternatives, or None if absent."""
    try:
        tops = logprobs["content"][0]["top_logprobs"]
    except (TypeError, KeyError, IndexError):
        return None
    out: dict[str, float] = {}
    for entry in tops or ():
        if isinstance(entry, dict) and "token" in entry and entry.get("logprob") is not None:
            out.setdefault(entry["token"], float(entry["logprob"]))  # keep the higher of duplicate tokens
    return out or None


def _retry_after_s(headers) -> float | None:
    """The wait a server asks for: ``retry-after-ms``, or ``retry-after`` in seconds or as an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str, n: int = 200) -> str:
    """One line of at most ``n`` characters (error bodies can be long HTML pages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _token_counter(model: str):
    """A token counter: tiktoken's when its encoding file is already cached on disk (never downloads:
    judging must not reach the network just to estimate cost), else characters / 4."""
    try:
        import tiktoken

        name = tiktoken.encoding_name_for_model(model)
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or \
            os.path.join(tempfile.gettempdir(), "data-gym-cache")
        if (Path(cache) / hashlib.sha1(url.encode()).hexdigest()).exists():
            enc = tiktoken.get_encoding(name)
            return lambda s: len(enc.encode(s, disallowed_special=()))
    except Exception:  # unknown model, tiktoken missing or its cache unreadable: fall back
        pass
    return lambda s: math.ceil(len(s) / 4)
