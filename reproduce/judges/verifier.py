"""The tiny preset's judge: a program that checks answers, answering in each protocol's verdict format.

It reads the structured ``fields`` of a request (the LLM judges read ``messages``) and replies with text
the protocol parses exactly as it parses an LLM judge's reply: ``[[8]]`` ratings, ``[[B>>A]]`` or ``[[A]]``
pairwise verdicts, and AlpacaEval's ``m``/``M`` token with top log-probs.
"""

from __future__ import annotations

import math

from reproduce.judges.base import Judge, JudgeReply, JudgeRequest
from reproduce.tiny.task import load_task


class VerifierJudge(Judge):
    """Deterministic judge backed by a task's checker (see evals/judges/verifier.yaml)."""

    def __init__(self, name: str, config: dict):
        self.name, self.config = name, config
        self.task = load_task(config.get("task", "addition"))

    def identity(self) -> dict:
        """Kind and task: the verifier's verdicts depend on nothing else."""
        return {"kind": "verifier", "task": self.task.name}

    def _better(self, question: str, a: str, b: str) -> tuple[str, bool]:
        """Which answer is better ('A', 'B' or '=') and whether the difference is strong (right vs wrong)."""
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
            return JudgeReply(text=f"Rating: [[{self.task.rating(question, f['answer'])}]]")
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
