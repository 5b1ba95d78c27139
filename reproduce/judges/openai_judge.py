"""A judge behind any OpenAI-compatible chat-completions endpoint (OpenAI, a local ``vllm serve``, ...).

Built from an ``evals/judges/<name>.yaml`` config. Every HTTP attempt is ours (the client's own retries
are off), so each one passes the cost guard (``reproduce.judges.guard``: it reserves the request's upper
bound before it goes out, and the billed usage replaces that). Transport failures (408/409/429/5xx,
timeouts, dropped connections) are asked again, waiting what ``retry-after-ms`` / ``retry-after`` ask
for, else the client's own exponential back-off; a 200 whose body is not a chat completion (a proxy
cutting it short) or has empty content is asked again too; each up to ``max_retries`` times, each logged.
When either runs out the call raises :class:`TransientJudgeError`, and the judging job
(``reproduce.judges.run``) may ask again later while its time budget lasts. An HTTP 404
(``model_not_found``: a retired judge model) raises :class:`JudgeFatalError`: the job stops at once.
The client is used through its public API alone (a float timeout, the raw-response form of
``chat.completions.create``): its transport library is its own business, and a release of that library
must not break this module (tests/test_architecture.py).

The API key is read from the environment variable *named* by ``api_key_env``; the key itself never
enters the config, the judge's identity (the cache key), a reply, an error message or a log line.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time

import openai

from reproduce.names import check_env_var_name
from reproduce.judges.base import Judge, JudgeError, JudgeFatalError, JudgeReply, JudgeRequest, TransientJudgeError

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "EMPTY"  # what local servers (vllm serve) accept when they were started without --api-key
RETRY_STATUSES = {408, 409, 429}  # plus every 5xx: asked again (what the openai client retries); other 4xx are final
TOKENS_PER_MESSAGE = 4  # chat-format overhead per message, for cost estimates
# back-off between transport attempts without a server-requested wait: the openai client's own schedule
# (0.5 s doubling up to 8 s, jittered down by up to a quarter)
INITIAL_BACKOFF_S, MAX_BACKOFF_S = 0.5, 8.0
ATTEMPT_BOUND_FACTOR = 2  # one attempt may take at most this many timeout_s in all
NOT_SENT = ("ConnectError", "ConnectTimeout")  # the transport's errors for a connection never made: nothing billed
REPLACEMENT_JUDGES = "evals/judges/gpt-4.1.yaml, evals/judges/gpt-4o.yaml, evals/judges/qwen2.5-72b-instruct.yaml"


class _Malformed(Exception):
    """A 200 reply that is no usable chat completion (truncated JSON, no choices, empty content)."""


class _Failed(Exception):
    """One attempt without a usable answer that may be asked again: ``final`` is what the call raises when
    no attempt is left, ``why`` the log's words, ``wait_s`` the wait the server asked for, ``billed`` whether
    the request may have been billed (it went out and its reply was lost)."""

    def __init__(self, final: TransientJudgeError, why: str, wait_s: float | None = None, billed: bool = False):
        super().__init__(why)
        self.final, self.why, self.wait_s, self.billed = final, why, wait_s, billed


class OpenAIJudge(Judge):
    """LLM judge over an OpenAI-compatible endpoint, with bounded concurrency.

    Config keys (see reproduce/schemas/judge.schema.yaml): ``model``, ``base_url`` (default OpenAI),
    ``api_key_env`` (null: the endpoint needs no key), ``concurrency``, ``timeout_s`` (per read),
    ``max_retries`` (the transport retries per call, and the re-asks of a malformed 200 reply),
    ``price_per_million_input``/``_output`` and the decoding overrides ``temperature``, ``max_tokens`` and
    ``logprobs`` (false: the endpoint cannot return log-probs, so never ask for them). Reasoning models:
    ``max_completion_tokens`` is sent instead of any ``max_tokens`` (they refuse the latter),
    ``reasoning_effort`` as given, and ``temperature_supported: false`` never sends a temperature (the API
    rejects all but its default) and warns once when a benchmark asks for another.

    ``require_key=False`` lets a caller build the judge only to estimate cost on a machine without the
    key; ``backoff_base_s``/``max_wait_s`` shape the waits before re-asking a malformed reply (tests
    shorten them; transport waits follow the server's retry-after, capped at ``max_wait_s``).
    """

    def __init__(self, name: str, config: dict, *, require_key: bool = True, backoff_base_s: float = 1.0,
                 max_wait_s: float = 60.0):
        self.name, self.config = name, config
        if not config.get("model"):
            raise JudgeError(f"judge '{name}': config has no 'model'")
        self.model: str = config["model"]
        self.base_url: str = (config.get("base_url") or OPENAI_URL).rstrip("/")
        self.key_env: str | None = check_env_var_name(config.get("api_key_env"), f"judge '{name}': api_key_env")
        self.concurrency = int(config.get("concurrency", 8))
        self.timeout_s = float(config.get("timeout_s", 120))
        self.max_retries = int(config.get("max_retries", 5))
        self.price_in = float(config.get("price_per_million_input", 0.0))
        self.price_out = float(config.get("price_per_million_output", 0.0))
        self.backoff_base_s, self.max_wait_s = backoff_base_s, max_wait_s
        self.guard = None  # a reproduce.judges.guard.CostGuard: every attempt reserves, then is billed
        self._bound_count = None
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
        overrides = {k: self.config[k] for k in ("temperature", "max_tokens", "max_completion_tokens",
                                                 "reasoning_effort") if k in self.config}
        if self.config.get("logprobs") is False:  # only "never ask" changes replies; true is the default behaviour
            overrides["logprobs"] = False
        if self.config.get("temperature_supported") is False:  # judged at the API's default, whatever was asked
            overrides["temperature"] = "api default"
        identity = {"kind": "openai", "model": self.model, "endpoint": self.base_url, "overrides": overrides}
        if self.config.get("verdict_regex"):  # a cached verdict was read by these patterns: new ones, new keys
            identity["verdict_regex"] = dict(sorted(self.config["verdict_regex"].items()))
        return identity

    def estimate_tokens(self, requests: list[JudgeRequest]) -> tuple[int, int]:
        """(prompt tokens, output tokens) to answer ``requests``: prompts counted by tiktoken if its file is
        cached offline, else chars/4; output as each request's full ``max_tokens`` (an upper bound)."""
        count = _token_counter(self.model)
        prompt = output = 0
        for req in requests:
            prompt += sum(count(str(m.get("content", ""))) + TOKENS_PER_MESSAGE for m in req.messages or ())
            dec = self._decoding(req)
            output += dec.get("max_completion_tokens") or dec.get("max_tokens") or 1024
        return prompt, output

    def estimate_cost(self, requests: list[JudgeRequest]) -> float:
        """Dollars to answer ``requests`` (:meth:`estimate_tokens` at the config's per-million prices)."""
        prompt, output = self.estimate_tokens(requests)
        return prompt * self.price_in / 1e6 + output * self.price_out / 1e6

    # ----- calling -----

    def bound_tokens(self, params: dict) -> tuple[int, int]:
        """(prompt, completion) tokens no reply to the call ``params`` can be billed above (the guard's
        reservation; :func:`reproduce.judges.guard.request_bound`)."""
        from reproduce.judges.guard import bound_counter, completion_cap, request_bound

        if self._bound_count is None:
            self._bound_count = bound_counter(self.model)
        return request_bound(params.get("messages"), completion_cap(params), self._bound_count)

    def bound_usd(self, params: dict) -> float:
        """Dollars of :meth:`bound_tokens` at the judge file's prices."""
        prompt, completion = self.bound_tokens(params)
        return (prompt * self.price_in + completion * self.price_out) / 1e6

    async def complete(self, request: JudgeRequest) -> JudgeReply:
        """Answer one request. Each HTTP attempt is one call of the client (its own retries off, so every
        attempt passes the cost guard, ``self.guard``, when one is attached): it reserves the request's upper
        bound just before it is sent, and the reply's billed usage replaces it. Transport failures (408, 409,
        429, 5xx, timeouts, dropped connections) are asked again after the wait the server asks for, else
        exponential back-off, and a malformed 200 reply too, each up to ``max_retries`` times; raises
        :class:`TransientJudgeError` when those run out, :class:`JudgeFatalError` on a reply no retry can
        change (unknown model), :class:`JudgeError` on any other final error, and
        :class:`~reproduce.judges.guard.BudgetStop` (a JudgeError) for an attempt the cap refuses."""
        if request.messages is None:
            raise JudgeError(f"judge '{self.name}': judge prompt files unavailable (the request has no messages; "
                             "only a programmatic judge can answer it)")
        client, sem = self._session()
        params = self._params(request)
        # flag replies without logprobs whenever the protocol wanted them, even if this endpoint is
        # configured never to be asked (logprobs: false): the protocol decides what that means
        want_logprobs = bool(request.decoding.get("logprobs"))
        guard = self.guard
        bound = self.bound_tokens(params) if guard is not None else (0, 0)
        attempts = failed = malformed = 0
        async with sem:  # held through back-off too, so a rate-limited endpoint is not flooded meanwhile
            while True:
                ticket = guard.reserve(self._usd(*bound), f"the next request to judge {self.name}") if guard else None
                attempts += 1
                try:
                    body_text = await self._attempt(client, params)
                except _Failed as f:
                    self._settle(ticket, bound, None, billed=f.billed)
                    failed += 1
                    if failed > self.max_retries:
                        raise f.final from None
                    wait = min(self.max_wait_s, f.wait_s if f.wait_s is not None else _backoff_s(failed))
                    log.info("judge %s: %s; asking again in %.2fs (%d of %d)", self.name, f.why, wait, failed,
                             self.max_retries)
                    await asyncio.sleep(wait)
                    continue
                except JudgeError:  # a final error status: nothing was billed
                    self._settle(ticket, bound, None, billed=False)
                    raise
                except BaseException:  # cancelled in flight: the request may have been billed
                    self._settle(ticket, bound, None, billed=True)
                    raise
                self._settle(ticket, bound, _usage(body_text), billed=True)
                try:
                    reply = self._reply(body_text, want_logprobs)
                except _Malformed as e:
                    malformed += 1
                    if malformed > self.max_retries:
                        raise TransientJudgeError(f"judge '{self.name}': {self.base_url} sent {malformed} malformed "
                                                  f"replies in a row (last: {e})") from None
                    wait = self._wait_s(malformed)
                    log.info("judge %s: malformed 200 reply (%s); asking again in %.2fs (%d of %d)",
                             self.name, e, wait, malformed, self.max_retries)
                    await asyncio.sleep(wait)
                    continue
                reply.attempts = attempts
                return reply

    def _usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6

    def _settle(self, ticket, bound: tuple[int, int], usage: tuple[int, int] | None, billed: bool) -> None:
        """Replace an attempt's reservation: by its read usage, by its bound (billed, usage unreadable), or by
        nothing (not billed)."""
        if ticket is None:
            return
        if not billed:
            self.guard.release(ticket)
        elif usage is not None:
            self.guard.bill(ticket, self._usd(*usage), *usage)
        else:
            self.guard.bill(ticket, self._usd(*bound), *bound, usage="reserved (unreadable)")

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
        are tied to the loop that first used them). The client makes no retries of its own: each attempt is
        ours, so the cost guard sees every request that goes out."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._client = openai.AsyncOpenAI(api_key=self._api_key(), base_url=self.base_url,
                                              max_retries=0, timeout=self.timeout_s)
            self._sem = asyncio.Semaphore(self.concurrency)
            self._loop = loop
        return self._client, self._sem

    def _decoding(self, request: JudgeRequest) -> dict:
        """The request's decoding with the config's overrides applied."""
        dec = dict(request.decoding)
        for k in ("temperature", "max_tokens", "reasoning_effort"):
            if self.config.get(k) is not None:
                dec[k] = self.config[k]
        if self.config.get("max_completion_tokens") is not None:
            # reasoning models refuse max_tokens; their cap covers reasoning and answer tokens together
            dec.pop("max_tokens", None)
            dec["max_completion_tokens"] = self.config["max_completion_tokens"]
        if self.config.get("logprobs") is False:
            dec["logprobs"] = False
        if self.config.get("temperature_supported") is False:
            asked = dec.pop("temperature", None)
            if asked not in (None, 1, 1.0) and not getattr(self, "_warned_temperature", False):
                self._warned_temperature = True  # once per judge: the API rejects any value but its default
                log.warning("judge '%s' (%s) accepts only the API's default temperature; the benchmark asks %s, so "
                            "its verdicts are sampled at the default (not greedy)", self.name, self.model, asked)
        return dec

    def _params(self, request: JudgeRequest) -> dict:
        """Keyword arguments of the chat-completions call."""
        dec = self._decoding(request)
        params: dict = {"model": self.model, "messages": [dict(m) for m in request.messages]}
        for k in ("temperature", "max_tokens", "max_completion_tokens", "reasoning_effort"):
            if dec.get(k) is not None:
                params[k] = dec[k]
        if dec.get("logprobs"):
            params["logprobs"] = True
            params["top_logprobs"] = int(dec.get("top_logprobs") or 5)
        return params

    async def _attempt(self, client: openai.AsyncOpenAI, params: dict) -> str:
        """One HTTP request: the 200 body's text; :class:`_Failed` for what may pass when asked again; a
        :class:`JudgeError` for a final answer."""
        n = self.max_retries + 1
        try:
            # the raw-response form of the typed call: we parse the body ourselves (a truncated body must be
            # asked again, where the client's parser would raise). timeout_s bounds each read; this bounds the
            # whole attempt (a server that trickles bytes, or accepts and never answers, cannot hold a game)
            async with asyncio.timeout(ATTEMPT_BOUND_FACTOR * self.timeout_s):
                raw = await client.chat.completions.with_raw_response.create(**params)
                return raw.text
        except (openai.APITimeoutError, TimeoutError):
            # no reply read: the request went out, so it may have been billed
            raise _Failed(TransientJudgeError(f"judge '{self.name}': {self.base_url} gave no reply within timeout_s "
                                              f"({self.timeout_s:g}s) on every one of {n} attempts", unreachable=True),
                          "no reply within timeout_s", billed=True) from None
        except openai.APIConnectionError as e:
            cause = type(e.__cause__).__name__ if e.__cause__ else "connection error"
            raise _Failed(TransientJudgeError(f"judge '{self.name}': cannot connect to {self.base_url} ({cause}) after "
                                              f"{n} attempts", unreachable=True),
                          f"connection failed ({cause})", billed=cause not in NOT_SENT) from None
        except openai.APIStatusError as e:
            status = e.status_code
            detail = _short(self._redact(str(e.message)))
            if status == 404:
                raise JudgeFatalError(self._not_found_message(e, detail)) from None
            if status in RETRY_STATUSES or status >= 500:
                raise _Failed(TransientJudgeError(f"judge '{self.name}': {self.base_url} answered HTTP {status} after "
                                                  f"{n} attempts: {detail}", _retry_after_s(e.response.headers)),
                              f"HTTP {status}", _retry_after_s(e.response.headers)) from None
            raise JudgeError(f"judge '{self.name}': {self.base_url} answered HTTP {status}: {detail}") from None
        except openai.APIError as e:  # any other error the client reports about the endpoint's answer
            raise JudgeError(f"judge '{self.name}': {self.base_url}: {type(e).__name__}: "
                             f"{_short(self._redact(str(e)))}") from None

    def request_bound_s(self) -> float:
        """Longest one call may take without server-requested waits: every attempt's bound plus the back-off
        between them (at most ``MAX_BACKOFF_S`` each)."""
        return ATTEMPT_BOUND_FACTOR * self.timeout_s * (self.max_retries + 1) + MAX_BACKOFF_S * self.max_retries

    def _not_found_message(self, error: openai.APIStatusError, detail: str) -> str:
        """One line for a 404: which judge file and model, and where the replacements are."""
        body = error.body if isinstance(error.body, dict) else {}
        code = body.get("code") if isinstance(body.get("code"), str) else None
        judge_file = self.config.get("_file") or f"evals/judges/{self.name}.yaml"
        what = f"HTTP 404{' ' + code if code else ''}: {detail}"
        return (f"{judge_file}: {self.base_url} does not serve judge model '{self.model}' ({what}); the provider may "
                f"have retired it (the paper's gpt-4-1106-preview and gpt-4 are retired) - pick a replacement "
                f"judge from evals/judges/ ({REPLACEMENT_JUDGES}) or set 'model'/'base_url' in {judge_file}")

    def _reply(self, body_text: str, want_logprobs: bool) -> JudgeReply:
        """Parse a 200 body into a reply; a body that is not a chat completion, or whose content is
        empty, raises :class:`_Malformed` (asked again)."""
        try:
            body = json.loads(body_text)
            choice = body["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Malformed(f"not a chat completion: {_short(self._redact(body_text), 60)!r}") from None
        content = message.get("content") if isinstance(message, dict) else None
        if not content:
            raise _Malformed("empty content")
        usage = body.get("usage") or {}
        p_tok, c_tok = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        returned = body.get("model")  # the snapshot that answered: an alias may move under a run (alias drift)
        reply = JudgeReply(text=content, prompt_tokens=p_tok, completion_tokens=c_tok,
                           cost_usd=(p_tok * self.price_in + c_tok * self.price_out) / 1e6,
                           model=returned if isinstance(returned, str) and returned else None)
        if not usage:
            reply.extra["missing_usage"] = True
        if want_logprobs:
            reply.top_logprobs = _first_token_logprobs(choice.get("logprobs"))
            if reply.top_logprobs is None:
                reply.extra["missing_logprobs"] = True
        return reply

    def _wait_s(self, ask: int) -> float:
        """Seconds before re-asking after a malformed reply: exponential back-off with jitter (so many
        clients hit by one faulty proxy do not retry in lock-step), capped at max_wait_s."""
        return min(self.max_wait_s, self.backoff_base_s * 2 ** (ask - 1)) * random.uniform(0.5, 1.0)


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


def _usage(body_text: str) -> tuple[int, int] | None:
    """(prompt, completion) tokens of a 200 body's ``usage``, or None when it cannot be read."""
    try:
        usage = json.loads(body_text)["usage"]
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    except (ValueError, KeyError, TypeError):
        return None


def _backoff_s(failed: int) -> float:
    """The wait before transport attempt ``failed + 1`` when the server asked for none."""
    return min(MAX_BACKOFF_S, INITIAL_BACKOFF_S * 2 ** (failed - 1)) * (1 - 0.25 * random.random())


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
    """A token counter: tiktoken's when its encoding file is already cached on disk, else characters / 4
    (reproduce.judges.tokens, which the plan shares)."""
    from reproduce.judges.tokens import token_counter

    return token_counter(model)[0]
