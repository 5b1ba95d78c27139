"""The judge interface every judge implements (LLM judges over HTTP, the tiny preset's verifier).

A benchmark protocol renders a :class:`JudgeRequest` (chat messages for an LLM judge plus the same
content as structured ``fields`` for a programmatic judge) and parses the :class:`JudgeReply` text the
same way whoever answered, so the verifier judge feeds exactly the scoring code LLM judges feed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any


class JudgeError(RuntimeError):
    """A judge call failed for good (after retries); never stored as a verdict."""


class TransientJudgeError(JudgeError):
    """A call failed in a way that may pass (rate limit, 5xx, timeout, dropped connection, a malformed
    200 reply) after the transport's own retries ran out; the job may ask again while its budget lasts.
    ``wait_s`` is the wait the server asked for, if any."""

    def __init__(self, message: str, wait_s: float | None = None, unreachable: bool = False):
        super().__init__(message)
        self.wait_s = wait_s
        self.unreachable = unreachable  # no connection could be made at all (nothing listening, DNS)


class JudgeFatalError(JudgeError):
    """A reply that every further request would repeat (the endpoint does not serve the judge model, or
    the URL is wrong): the judging job stops at the first one instead of failing every game."""


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call.

    messages: chat messages rendered from the benchmark's official judge prompt (None when the prompt
        files are unavailable; only a programmatic judge can answer then).
    decoding: temperature, max_tokens, logprobs (bool), top_logprobs (int).
    fields: structured view of the same content: ``kind`` ("rating", "pair", "preference"), ``question``,
        and ``answer`` or ``answer_a``/``answer_b``, plus ``reference`` when reference-guided.
    """

    messages: tuple | None
    decoding: dict
    fields: dict

    def payload(self) -> dict:
        """Everything that determines the judge's answer (for the cache key)."""
        return {"messages": list(self.messages) if self.messages else None, "decoding": self.decoding,
                "fields": self.fields}


@dataclass
class JudgeReply:
    """A judge's answer: text, the first token's top log-probs (token -> logprob), usage and cost, and
    ``model``: the model name the endpoint says answered (``response.model``; None for a programmatic judge
    or a reply cached before it was recorded)."""

    text: str | None
    top_logprobs: dict[str, float] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    attempts: int = 1
    extra: dict = field(default_factory=dict)
    model: str | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable form."""
        return asdict(self)


class Judge(ABC):
    """Base class of judges. ``complete`` is async so LLM judges can run many calls concurrently."""

    name: str
    config: dict

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What makes this judge's verdicts what they are (kind, model, endpoint); part of the cache key."""

    @abstractmethod
    async def complete(self, request: JudgeRequest) -> JudgeReply:
        """Answer one request; raise :class:`JudgeError` when it cannot (after its own retries)."""

    def estimate_cost(self, requests: list[JudgeRequest]) -> float:
        """Dollar estimate for answering ``requests`` (0 for free judges)."""
        return 0.0

    async def aclose(self) -> None:
        """Release connections."""


def make_judge(name: str, config: dict) -> Judge:
    """Build the judge described by ``evals/judges/<name>.yaml`` (already validated)."""
    kind = config["kind"]
    if kind == "verifier":
        from reproduce.judges.verifier import VerifierJudge

        return VerifierJudge(name, config)
    if kind == "openai":
        from reproduce.judges.openai_judge import OpenAIJudge

        return OpenAIJudge(name, config)
    raise ValueError(f"judge '{name}': unknown kind '{kind}'")
