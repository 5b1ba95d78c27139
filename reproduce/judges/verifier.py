"""The tiny preset's judge: a program that checks answers, answering in each protocol's verdict format.

It reads the structured ``fields`` of a request (the LLM judges read ``messages``) and replies with text
the protocol parses exactly as it parses an LLM judge's reply: ``[[8]]`` ratings, ``[[B>>A]]`` or ``[[A]]``
pairwise verdicts, and AlpacaEval's ``m``/``M`` token with top log-probs.

Two modes (``mode`` in the judge file): ``exact`` (default) rates by in-place digits and compares pairs by
absolute error; ``lenient`` grades by digit overlap (the multiset of digits shared with the true sum, order
ignored), so e.g. a dropped carry ("84" for 184) scores like a digit swap. The lenient mode exists to give
the tiny preset a second, genuinely different judge for re-judging and judge-agreement reports.
"""

from __future__ import annotations

import math
from collections import Counter

from reproduce.judges.base import Judge, JudgeReply, JudgeRequest
from reproduce.tasks import load_task


class VerifierJudge(Judge):
    """Deterministic judge backed by a task's checker (see evals/judges/verifier.yaml)."""

    def __init__(self, name: str, config: dict):
        self.name, self.config = name, config
        self.task = load_task(config.get("task", "addition"))
        self.mode = config.get("mode", "exact")
        if self.mode not in ("exact", "lenient"):
            raise ValueError(f"verifier judge '{name}': unknown mode '{self.mode}' (known: exact, lenient)")

    def identity(self) -> dict:
        """Kind, task and (when not the default) mode: the verifier's verdicts depend on nothing else."""
        ident = {"kind": "verifier", "task": self.task.name}
        if self.mode != "exact":  # the exact mode keeps its old identity so existing caches stay valid
            ident["mode"] = self.mode
        return ident

    def overlap(self, question: str, answer: str) -> float:
        """Lenient credit in [0, 1]: shared digits with the true sum (multiset, order ignored), over the
        longer of the two digit strings (so padding an answer with digits is not free); 0 without a number."""
        value = self.task.parse_answer(answer)
        if value is None:
            return 0.0
        got, truth = str(abs(value)), str(self.task.solve(question))
        shared = sum((Counter(got) & Counter(truth)).values())
        return shared / max(len(got), len(truth))

    def rating(self, question: str, answer: str) -> int:
        """1-10 rating: the task's rating (exact) or 1 + 9 * digit overlap (lenient; 10 only when correct)."""
        if self.mode == "exact":
            return self.task.rating(question, answer)
        if self.task.is_correct(question, answer):
            return 10
        return min(9, 1 + int(9 * self.overlap(question, answer)))

    def _better(self, question: str, a: str, b: str) -> tuple[str, bool]:
        """Which answer is better ('A', 'B' or '=') and whether the difference is strong."""
        if self.mode == "lenient":
            oa, ob = self.overlap(question, a), self.overlap(question, b)
            if oa == ob:
                return "=", False
            # strong only when one side is fully right and the other shares at most half its digits
            return ("A" if oa > ob else "B"), (max(oa, ob) == 1.0 and min(oa, ob) <= 0.5)
        da, db = self.task.distance(question, a), self.task.distance(question, b)
        if da == db:
            return "=", False
        winner = "A" if da < db else "B"
        return winner, (min(da, db) == 0)

    async def complete(self, request: JudgeRequest) -> JudgeReply:
        """Judge one request from its fields."""
        f = request.fields
        kind, question = f["kind"], f["question"]
        if kind == "rating":
            return JudgeReply(text=f"Rating: [[{self.rating(question, f['answer'])}]]")
        if kind == "pair":
            winner, strong = self._better(question, f["answer_a"], f["answer_b"])
            if f.get("verdicts") == "abc":
                return JudgeReply(text={"A": "[[A]]", "B": "[[B]]", "=": "[[C]]"}[winner])
            if winner == "=":
                return JudgeReply(text="My final verdict is tie: [[A=B]]")
            loser = "B" if winner == "A" else "A"
            return JudgeReply(text=f"My final verdict is: [[{winner}{'>>' if strong else '>'}{loser}]]")
        if kind == "preference":
            winner, _ = self._better(question, f["answer_a"], f["answer_b"])
            if winner == "=":
                half = math.log(0.5)
                return JudgeReply(text="m", top_logprobs={"m": half, "M": half})
            token = "m" if winner == "A" else "M"  # m = output_1 (A) is better
            return JudgeReply(text=token, top_logprobs={token: 0.0})
        raise ValueError(f"verifier judge: unknown request kind '{kind}'")
