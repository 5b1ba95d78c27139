"""The cost guard, ``judging.max_usd``: a hard cap on every billed request of a results folder.

Every request (a judge job's, a batch's, the bridge's) reserves its upper bound - prompt tokens plus
``max_tokens`` at the judge file's prices (:func:`request_bound`) - just before it is sent; the reply's
billed usage replaces the reservation (a reply whose usage cannot be read is billed at the reservation).
A request that would take what is billed and reserved over ``max_usd`` is not sent: the guard raises
:class:`BudgetStop`, and from then on refuses every further request of the job, which ends with what it
already paid for in the cache. The figures live in the spend ledger (:mod:`reproduce.judges.ledger`,
``results/judgments/_spend.jsonl``, passed by the workflow); delete it to start a new budget. Without
``max_usd`` nothing is refused, but every request is still recorded, so the job's cost figure is the
ledger's.
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

from reproduce.judges.base import JudgeError
from reproduce.judges.ledger import BATCH_PREFIX, SpendLedger
from reproduce.judges.tokens import token_counter

# completion tokens reserved for a request that names no max_tokens (the judge files and benchmarks all set one)
DEFAULT_MAX_TOKENS = 4096
# the chat format's own tokens, per message and before the reply: OpenAI's cookbook counts 3-4 and 3, Llama-3's
# template 5 (role headers, end of turn) and 5 (begin of text, the reply's header); 8 covers both
BOUND_TOKENS_PER_MESSAGE = 8
BOUND_REPLY_TOKENS = 8


def money(usd: float) -> str:
    """Dollars, to the cent, or to a hundredth of a cent under a dollar (a small job's plan is not $0.00)."""
    return f"${usd:,.2f}" if abs(usd) >= 1 else f"${usd:.4f}"


class BudgetStop(JudgeError):
    """A request was not sent: its upper bound would take the spending over ``judging.max_usd``."""


def bound_counter(model: str):
    """``count(text) -> int`` that is never below the tokens a provider bills: tiktoken's exact count when its
    encoding file is offline, else UTF-8 bytes (a byte-level BPE token covers at least one byte)."""
    count, basis = token_counter(model)
    if basis.startswith("counted"):
        return count
    return lambda s: len(s.encode("utf-8"))


def completion_cap(params: dict) -> int | None:
    """The completion tokens a chat-completions request allows: ``max_completion_tokens`` (reasoning models:
    reasoning and answer together), else ``max_tokens``."""
    return params.get("max_completion_tokens") or params.get("max_tokens")


def request_bound(messages, max_tokens: int | None, count) -> tuple[int, int]:
    """(prompt, completion) tokens no reply to this request can be billed above (``max_tokens``: the
    request's :func:`completion_cap`)."""
    prompt = sum(count(str(m.get("content", ""))) + BOUND_TOKENS_PER_MESSAGE for m in messages or ()) + BOUND_REPLY_TOKENS
    return prompt, int(max_tokens or DEFAULT_MAX_TOKENS)


class CostGuard:
    """One job's (or bridge run's) view of the spend ledger: reserve, bill, release; refuse over ``max_usd``."""

    def __init__(self, max_usd: float | None, ledger: str | Path | SpendLedger | None, job: str):
        self.max_usd = None if max_usd is None else float(max_usd)
        self.ledger = ledger if isinstance(ledger, SpendLedger) else SpendLedger(ledger)
        self.job = job
        self.run = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stopped: str | None = None  # the refusal, once one request was refused
        self.run_usd = 0.0  # what this run was billed: the job's cost figure (the ledger's bill lines of this run)
        self.run_tokens = [0, 0]
        self.requests = 0  # billed replies of this run
        self._ids = itertools.count(1)

    def begin(self) -> str | None:
        """Settle what an earlier (killed) run of this job left reserved; a line saying so, if anything."""
        n, usd = self.ledger.reconcile(self.job, self.run)
        if not n:
            return None
        return (f"spend ledger: {n} request(s) an earlier run of this job sent without reading a reply are counted at "
                f"their upper bound ({money(usd)})")

    def reserve(self, usd: float, what: str = "the next request") -> str:
        """Reserve ``usd`` for one request about to be sent; returns its ticket. Raises :class:`BudgetStop`
        when it does not fit under ``max_usd`` (and for every request after the first refusal)."""
        if self.stopped:
            raise BudgetStop(self.stopped)
        ticket = f"{self.run}:{next(self._ids)}"
        left = self.ledger.reserve(self.job, ticket, self.run, usd, self.max_usd)
        if left is not None:
            where = f" in {self.ledger.path}" if self.ledger.path else ""
            self.stopped = (f"judging.max_usd = {money(self.max_usd)} reached: {what} could cost up to {money(usd)} "
                            f"but only {money(left)} remains ({money(self.max_usd - left)} billed or reserved{where}); "
                            "it was not sent")
            raise BudgetStop(self.stopped)
        return ticket

    def reserve_batch(self, nonce: str, usd: float, resumed: bool) -> float | None:
        """Reserve a batch's upper bound under entry ``batch:<nonce>``; a resumed batch (already created: its
        money is committed) is never refused and keeps the entry its first run made. Returns None when
        reserved, else the dollars left under the cap."""
        rid = BATCH_PREFIX + nonce
        if resumed and self.ledger.open_entry(self.job, rid) is not None:
            return None
        return self.ledger.reserve(self.job, rid, self.run, usd, self.max_usd, force=resumed)

    def bill(self, ticket: str, usd: float, prompt_tokens: int, completion_tokens: int, usage: str = "read") -> None:
        """Record a reply's billed usage in place of its ticket's reservation."""
        if self.ledger.bill(self.job, ticket, self.run, usd, prompt_tokens, completion_tokens, usage):
            self.run_usd += usd
            self.run_tokens[0] += prompt_tokens
            self.run_tokens[1] += completion_tokens
            self.requests += 1

    def bill_batch(self, nonce: str, usd: float, prompt_tokens: int, completion_tokens: int) -> None:
        """Record what a batch was billed (its output's usage) in place of its reservation."""
        self.bill(BATCH_PREFIX + nonce, usd, prompt_tokens, completion_tokens, "batch output")

    def release(self, ticket: str) -> None:
        """Nothing was billed for this ticket (an error status, a connection never made)."""
        self.ledger.release(self.job, ticket, self.run)

    def release_batch(self, nonce: str) -> None:
        """A batch that was never created: drop its reservation."""
        self.release(BATCH_PREFIX + nonce)
