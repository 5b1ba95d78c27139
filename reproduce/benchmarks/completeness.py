"""Judgments held against the benchmark they claim to score: the questions a score must cover come from the
benchmark definition (``load_questions``), never from the judgments file.

``check_records`` refuses an empty input, a question judged twice (naming both places) and a question the
benchmark does not have (judgments of another benchmark); it returns the benchmark's questions that have
no judgment, which each protocol's ``score`` counts as failed games (so the score says INCOMPLETE).
Every record read from a file carries ``_where`` (``file:line`` or ``file: record i``) for these messages.
"""

from __future__ import annotations

from reproduce.io import DataError

WHERE = "_where"  # the key under which read_judgments keeps a record's place in its file


def check_records(records: list[dict], questions: list[dict], benchmark: str, source: str,
                  key=lambda r: str(r["question_id"])) -> list[dict]:
    """The questions of ``questions`` without a record; errors for an empty input, duplicates, unknown ids.

    ``records`` are one model's; ``key`` gives a record's question id.
    """
    if not records:
        raise DataError(f"{source}: no judgments to score (empty input)")
    known = {str(q["question_id"]) for q in questions}
    seen: dict[str, str] = {}
    for i, rec in enumerate(records):
        qid = key(rec)
        where = rec.get(WHERE) or f"{source}: record {i}"
        if qid not in known:
            example = next(iter(known), "none")
            raise DataError(f"{where}: question {qid!r} is not a question of benchmark {benchmark} "
                            f"({len(known)} questions, e.g. {example!r}); judgments of another benchmark?")
        if qid in seen:
            raise DataError(f"{where}: question {qid!r} is judged twice (first at {seen[qid]}); "
                            "a duplicate would count twice")
        seen[qid] = where
    return [q for q in questions if str(q["question_id"]) not in seen]


def missing_note(result: dict, missing: list[dict]) -> dict:
    """``result`` with the count and the first few ids of the questions that had no judgment."""
    if missing:
        result["n_questions_missing"] = len(missing)
        result["questions_missing"] = [str(q["question_id"]) for q in missing[:20]]
    return result
