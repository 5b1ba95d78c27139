"""The judging protocol interface, the judge request and reply it speaks, and the protocols' registry.

A protocol module (``reproduce/benchmarks/<name>.py``) turns questions and answers into judge requests,
parses the replies, writes one judgment record per question and scores a model's records the way the
official tool does; :class:`Protocol` states what it must define. Adding a protocol is one new module and
one line in :data:`PROTOCOLS`. Judges (``reproduce/judges/``) answer :class:`JudgeRequest`\ s with
:class:`JudgeReply`\ s and know no protocol.

Optional members: ``leaderboard_rank(result)`` (the score stage adds its dict to the result),
``MULTI_MODEL_OPTIONS`` (score options for a file of several models scored without ``--baseline``),
``without_logprobs(bench, judge_config)`` (the bench as judged by a judge without log-probs) and
``parser(bench)`` (the ``parse`` the judge loop uses for that bench, when the judge's file changes how replies
are read).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol as _Interface

from reproduce.config import ConfigError

# protocol name -> the module implementing it
PROTOCOLS = {"alpaca_eval2": "reproduce.benchmarks.alpaca_eval2", "arena_hard": "reproduce.benchmarks.arena_hard",
             "mt_bench": "reproduce.benchmarks.mt_bench"}


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


class Protocol(_Interface):
    """What a protocol module defines (a module satisfies this as its namespace)."""

    MODEL_FIELD: str
    """The field of a judgment record that names the model it judges."""

    PROMPT_METRICS: dict
    """Table-1 metric -> (extractor, scale): ``extractor(records)`` gives per prompt (numerator, denominator)
    with the score ``scale * sum(num) / sum(den)`` as the official scoring computes it, the failed games and
    the baselines; the method comparisons resample prompts with these (:mod:`reproduce.report.stats`)."""

    def load_templates(self, bench: dict, mirror=None) -> dict | None:
        """The official judge prompts of ``bench`` (None for a tiny benchmark without the files)."""

    def build_requests(self, question: dict, answer: dict, reference: dict | None, bench: dict,
                       templates: dict | None) -> list[tuple[str, JudgeRequest]]:
        """The judge games of one question as (game name, request); empty when no game is asked."""

    def parse(self, game: str, reply: JudgeReply) -> Any | None:
        """The verdict of one game's reply, in the official tool's terms; None when unparseable."""

    def make_record(self, question: dict, answer: dict, reference: dict | None, bench: dict, judge_name: str,
                    verdicts: dict, replies: dict) -> dict:
        """One native judgment record of a question (its games' verdicts and replies)."""

    def read_judgments(self, path: str | Path, fmt: str = "native") -> list[dict]:
        """Judgment records from a file: ours (``native``) or the official tool's format."""

    def score(self, records: list[dict], bench: dict | None = None, **options) -> dict:
        """One model's score the way the official tool computes it, with its coverage counts."""

    def summary_line(self, result: dict) -> str:
        """The score as one line in the official tool's style."""


def get_protocol(name: str) -> Protocol:
    """The module implementing protocol ``name``; an unknown name is a one-line ``ConfigError``."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol '{name}' (known: {', '.join(PROTOCOLS)})")
    return importlib.import_module(PROTOCOLS[name])


def judge_decoding(bench: dict, defaults: dict) -> dict:
    """The judge's decoding: ``defaults`` overridden by the benchmark's ``judging`` keys; log-probs asked for
    when ``judging.logprobs`` is set and the protocol does not decide them itself (a key of ``defaults``)."""
    judging = bench.get("judging") or {}
    out = {k: judging.get(k, v) for k, v in defaults.items()}
    if judging.get("logprobs") and "logprobs" not in defaults:
        out.update(logprobs=True, top_logprobs=judging.get("top_logprobs", 0))
    return out
