"""The tiny preset's AlpacaEval 2 benchmark and one model's answers to it, for the tests that judge them
through the real protocol against the stand-in judge."""

from __future__ import annotations

from reproduce.benchmarks.protocol import get_protocol
from reproduce.benchmarks.questions import load_questions
from reproduce.benchmarks.reference import reference_answers
from reproduce.config import load_config


def tiny_alpaca_bench(n: int, **judging) -> dict:
    """The tiny preset's ``tiny_alpaca_eval2`` with its first ``n`` questions and ``judging`` keys overridden."""
    bench = dict(load_config({"preset": "tiny"})["benchmarks"]["tiny_alpaca_eval2"])
    bench["questions"] = dict(bench["questions"], n=n)
    bench["judging"] = dict(bench["judging"], **judging)
    return bench


def alpaca_inputs(bench: dict):
    """``(questions, answers, reference, templates)`` for ``bench``: model ``m`` answers each question with its
    reference text plus " (m)", so every answer differs from the reference."""
    questions = load_questions(bench)
    reference = {r["question_id"]: r for r in reference_answers(bench, questions)}
    answers = {q["question_id"]: {"question_id": q["question_id"], "model": "m", "turns": [f"{q['reference'][0]} (m)"]}
               for q in questions}
    return questions, answers, reference, get_protocol("alpaca_eval2").load_templates(bench)
