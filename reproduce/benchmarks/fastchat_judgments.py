"""FastChat's MT-Bench judgment files (``gpt-4_single.jsonl``, ``gpt-4_pair.jsonl``) read into the MT-Bench
protocol's native records: the rows of one judge model, each (model, question, turn) once."""

from __future__ import annotations

import math
from pathlib import Path

from reproduce.benchmarks.completeness import WHERE
from reproduce.io import DataError

WINNERS = ("model_1", "model_2", "tie")
_SWAP = {"model_1": "model_2", "model_2": "model_1", "tie": "tie", None: None}


def from_fastchat(path: Path, rows: list[dict]) -> list[dict]:
    """Group FastChat single / pairwise judgment rows into native records, one per (model, question) in
    order of first appearance; a pairwise row is filed under both its models (model_2's copy with the
    winners swapped). Rows made by two judge models are refused."""
    records: dict[tuple, dict] = {}
    judges: dict[str, int] = {}
    seen: dict[tuple, int] = {}  # (kind, models, question, turn) -> line: a row given twice would count twice
    for i, row in rows:
        judge = row.get("judge")
        judge_name, prompt = (judge[0], judge[1]) if isinstance(judge, list) and len(judge) == 2 else (judge, None)
        judges.setdefault(str(judge_name), i)
        if "model" in row and "score" in row:
            kind = "single"
        elif all(k in row for k in ("model_1", "model_2", "g1_winner", "g2_winner")):
            kind = "pair"
        else:
            raise DataError(f"{path}:{i}: neither a FastChat single (model, score, turn) nor pairwise "
                            "(model_1, model_2, g1_winner, g2_winner) judgment")
        if "question_id" not in row:
            raise DataError(f"{path}:{i}: record lacks 'question_id'")
        for key in ("model",) if kind == "single" else ("model_1", "model_2"):
            if not isinstance(row[key], str):
                raise DataError(f"{path}:{i}: key '{key}' must be a string, got {type(row[key]).__name__}")
        qid = str(row["question_id"])
        turn = row.get("turn", 1)
        if turn not in (1, 2) or isinstance(turn, bool):
            raise DataError(f"{path}:{i}: turn {turn!r} is not 1 or 2")
        ident = (kind, row["model"]) if kind == "single" else (kind, row["model_1"], row["model_2"])
        ident += (qid, turn, str(judge_name))  # two judges' rows are refused below, with their lines
        if ident in seen:
            raise DataError(f"{path}:{i}: question {qid!r} turn {turn} of {' vs '.join(ident[1:-3])} is judged twice "
                            f"(first on line {seen[ident]}); a duplicate would count twice")
        seen[ident] = i

        def record(model):
            return records.setdefault((model, qid), {"question_id": qid, "model": model, "judge": judge_name,
                                                     "category": row.get("category"), "single": [], "pairwise": [],
                                                     WHERE: f"{path}:{i}"})

        if kind == "single":
            score = row["score"]
            if not isinstance(score, (int, float)) or isinstance(score, bool):
                raise DataError(f"{path}:{i}: score {score!r} is not a number")
            if not math.isfinite(score):
                raise DataError(f"{path}:{i}: key 'score' is {score}, not a finite number")
            # FastChat stores -1 when no rating parsed: a failed judgment, never a rating
            record(row["model"])["single"].append({"turn": turn, "prompt": prompt,
                                                   "score": None if score == -1 else float(score),
                                                   "judgment": row.get("judgment")})
            continue
        winners = []
        for key in ("g1_winner", "g2_winner"):
            w = row[key]
            if w not in WINNERS + ("error",):
                raise DataError(f"{path}:{i}: {key} {w!r} is not model_1, model_2, tie or error")
            winners.append(None if w == "error" else w)
        for model, other, (g1, g2) in ((row["model_1"], row["model_2"], winners),
                                       (row["model_2"], row["model_1"], [_SWAP[w] for w in winners])):
            record(model)["pairwise"].append({"turn": turn, "prompt": prompt, "baseline": other, "g1_winner": g1,
                                              "g2_winner": g2, "g1_judgment": row.get("g1_judgment"),
                                              "g2_judgment": row.get("g2_judgment")})
    if len(judges) > 1:
        where = ", ".join(f"'{j}' (first on line {n})" for j, n in judges.items())
        raise DataError(f"{path}: judgments by more than one judge model: {where}; score one judge's file at a time")
    return list(records.values())
