"""The judge interface every judge implements (LLM judges over HTTP, the tiny preset's verifier).

A benchmark protocol renders a :class:`~reproduce.benchmarks.protocol.JudgeRequest` (chat messages for an
LLM judge plus the same content as structured ``fields`` for a programmatic judge) and parses the
:class:`~reproduce.benchmarks.protocol.JudgeReply` text the same way whoever answered, so the verifier
judge feeds exactly the scoring code LLM judges feed. Judges are built by kind in
:mod:`reproduce.judges.kinds`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from reproduce.benchmarks.protocol import JudgeReply, JudgeRequest  # noqa: F401 (the judge interface speaks them)


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


class JudgeCodeError(JudgeFatalError):
    """``Judge.complete`` raised something that is neither a :class:`JudgeError` nor the HTTP client's own
    error: a fault in code (ours or a library's), which every game would repeat, so the job stops at the
    first one. ``error`` is the original exception, whose traceback the job logs."""

    def __init__(self, judge: str, game: str, error: BaseException):
        super().__init__(f"judge '{judge}' raised {type(error).__name__}: {error} (game {game}); a fault in "
                         "code, not in the endpoint's replies - stopped at its first occurrence")
        self.game, self.error = game, error


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
