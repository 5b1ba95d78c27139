"""Deterministic stand-in judge answers for the three official protocols (tests only).

``verdict_for(body, n)`` reads the rendered judge prompt of a chat-completions request and answers in the
format that prompt asks for (Arena-Hard five-level label, MT-Bench rating or pairwise letter, AlpacaEval's
``m``/``M``), chosen by a hash of the messages: the same request always gets the same verdict, whichever
process or call asks. ``logprobs_for`` gives AlpacaEval's first-token log-probs the same way.
``flaky_verdict_for`` gives a different (valid) verdict on every call.
"""

from __future__ import annotations

import hashlib
import json

ARENA_LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")


def digest(body: dict) -> int:
    """A stable integer hash of the request's messages."""
    blob = json.dumps(body.get("messages"), sort_keys=True).encode()
    return int(hashlib.sha256(blob).hexdigest()[:12], 16)


def _prompt_text(body: dict) -> str:
    return "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])


def verdict_for(body: dict, n: int = 0, salt: int = 0) -> str:
    """A valid verdict in the format the judge prompt asks for, fixed by the prompt (and ``salt``)."""
    text, h = _prompt_text(body), digest(body) + salt
    if "A>>B" in text:
        return f"Some reasoning.\n\nMy final verdict is: [[{ARENA_LABELS[h % 5]}]]"
    if "[[rating]]" in text or "Rating: [[" in text:
        return f"The answer is fine. Rating: [[{1 + h % 10}]]"
    if "[[A]]" in text and "[[C]]" in text:
        return f"Verdict: [[{'ABC'[h % 3]}]]"
    return "mM"[h % 2]


def flaky_verdict_for(body: dict, n: int) -> str:
    """A valid verdict that changes with the call number ``n`` (a nondeterministic judge)."""
    return verdict_for(body, n, salt=n)


def logprobs_for(body: dict, n: int = 0) -> dict:
    """AlpacaEval first-token log-probs over m/M, fixed by the prompt."""
    h = digest(body)
    return {"m": -0.05 - (h % 97) / 40.0, "M": -0.05 - (h // 97 % 89) / 40.0, "I": -7.0}
