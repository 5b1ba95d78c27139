"""MT-Bench protocol: FastChat's single-answer grading per turn, optionally pairwise games against a baseline.

Judge prompts come from FastChat's ``judge_prompts.jsonl``. Categories math, reasoning and coding use the
reference-guided ("math") prompts with the GPT-4 reference answers; turn 2 is judged with the
multi-turn prompts, which show the whole two-turn conversation.

Games of one question:
    ``single-t1``, ``single-t2``            one rating 1..10 per turn
    ``pair-t1-g1``, ``pair-t1-g2``, ...     when judging.modes includes "pairwise": game 1 shows the model as
                                            assistant A and the baseline as B, game 2 swaps them

Native record of one question (designed for this project, close to FastChat's judgment rows)::

    {"question_id", "model", "judge", "category",
     "single":   [{"turn": 1, "prompt": "single-v1", "score": 8.0 | None, "judgment": text}, ...],
     "pairwise": [{"turn": 1, "prompt": "pair-v2", "baseline": name,
                   "g1_winner": "model_1" | "model_2" | "tie" | None, "g2_winner": ...,
                   "g1_judgment": text, "g2_judgment": text}, ...]}

``model_1`` is always the model being evaluated and ``model_2`` the baseline (FastChat's
pairwise-baseline convention); a winner of None is a game without a verdict.

Scoring follows FastChat 0.2.36's show_result.py (checked against it in tests/test_mt_bench.py): ``score``
is the mean of all valid ratings (both turns pooled), ``score_turn1``/``score_turn2`` the per-turn means; a
pairwise row with a failed game is dropped, a row is a win only when both games name the model, a loss only
when both name the baseline, otherwise a tie. Win rates are reported in percent (FastChat prints
fractions): win_rate = 100 W / (W + L + T), win_rate_adjusted = 100 (W + T/2) / n.

Ratings are read as FastChat reads them: the first ``[[x]]`` (else ``[x]``) whatever its value, so a judge's
0 or 11 is kept as a rating, as FastChat keeps it (``n_out_of_range`` counts them); only a reply without
a rating is a failure (FastChat's -1).

FastChat judgment files (``gpt-4_single.jsonl``, ``gpt-4_pair.jsonl``) hold many models; a pairwise row
counts for both of its models (FastChat's show_result does the same), and a file whose rows were made by
more than one judge model is refused (show_result would average them together).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

from reproduce.benchmarks.completeness import WHERE, missing_note
from reproduce.benchmarks.coverage import coverage
from reproduce.benchmarks.fastchat_judgments import from_fastchat
from reproduce.benchmarks.protocol import JudgeReply, JudgeRequest, judge_decoding
from reproduce.benchmarks.templates import mt_bench_prompts, templates_from_file
from reproduce.io import DataError, read_json, read_jsonl

NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")  # FastChat's reference-guided categories
ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
DEFAULT_DECODING = {"temperature": 0.0, "max_tokens": 2048}
MODEL_FIELD = "model"  # the field naming the model a record judges
# Scoring a file of several models without --baseline (FastChat's are): every model against every opponent,
# its shared baseline too.
MULTI_MODEL_OPTIONS = {"all_opponents": True}


def load_templates(bench: dict, mirror=None) -> dict | None:
    """FastChat judge prompts by name (None for a tiny bench without the file)."""
    return templates_from_file(bench, "judge_prompts", mt_bench_prompts, mirror)


def _turns(question: dict, answer: dict) -> list[int]:
    """Turns to judge: 1, and 2 only for two-turn questions (FastChat skips multi-turn otherwise)."""
    if len(answer["turns"]) < len(question["turns"]):
        raise DataError(f"mt_bench: answer to {question['question_id']!r} has {len(answer['turns'])} turns, "
                        f"the question {len(question['turns'])}")
    return [1, 2] if len(question["turns"]) == 2 else [1]


def _prompt_name(kind: str, ref_based: bool, turn: int) -> str:
    base = {("single", False): "single-v1", ("single", True): "single-math-v1",
            ("pair", False): "pair-v2", ("pair", True): "pair-math-v1"}[(kind, ref_based)]
    return base + ("-multi-turn" if turn == 2 else "")


def _ref_based(question: dict) -> bool:
    return question.get("category") in NEED_REF_CATS


def _messages(templates: dict | None, name: str, args: dict) -> tuple | None:
    if templates is None:
        return None
    if name not in templates:
        raise DataError(f"mt_bench: judge prompt '{name}' missing from judge_prompts.jsonl")
    t = templates[name]
    return ({"role": "system", "content": t["system_prompt"]},
            {"role": "user", "content": t["prompt_template"].format(**args)})


def build_requests(question: dict, answer: dict, reference: dict | None, bench: dict,
                   templates: dict | None) -> list[tuple[str, JudgeRequest]]:
    """Single grading per turn and, with judging.modes including "pairwise", both-order games per turn."""
    modes = ((bench.get("judging") or {}).get("modes")) or ["single"]
    q, a = question["turns"], answer["turns"]
    ref_based = _ref_based(question)
    refs = question.get("reference") or []
    if ref_based and templates is not None and len(refs) < len(q):
        raise DataError(f"mt_bench: question {question['question_id']!r} ({question.get('category')}) "
                        "needs reference answers for every turn")
    ref_args = {f"ref_answer_{i + 1}": r for i, r in enumerate(refs)} if ref_based else {}
    decoding = judge_decoding(bench, DEFAULT_DECODING)
    out = []
    if "pairwise" in modes and is_own_baseline(answer, reference):
        modes = [m for m in modes if m != "pairwise"]  # a game against itself means nothing: never asked
    for turn in _turns(question, answer):
        ref_field = {"reference": refs[turn - 1]} if ref_based and len(refs) >= turn else {}
        if "single" in modes:
            name = _prompt_name("single", ref_based, turn)
            args = ({"question": q[0], "answer": a[0]} if turn == 1 else
                    {"question_1": q[0], "question_2": q[1], "answer_1": a[0], "answer_2": a[1]})
            fields = {"kind": "rating", "question": q[turn - 1], "answer": a[turn - 1], "turn": turn, **ref_field}
            out.append((f"single-t{turn}", JudgeRequest(_messages(templates, name, {**args, **ref_args}),
                                                        decoding, fields)))
        if "pairwise" in modes:
            if reference is None:
                raise DataError(f"mt_bench: pairwise mode needs a baseline answer for {question['question_id']!r}")
            b = reference["turns"]
            name = _prompt_name("pair", ref_based, turn)
            for game, (x, y) in (("g1", (a, b)), ("g2", (b, a))):
                args = ({"question": q[0], "answer_a": x[0], "answer_b": y[0]} if turn == 1 else
                        {"question_1": q[0], "question_2": q[1], "answer_a_1": x[0], "answer_b_1": y[0],
                         "answer_a_2": x[1], "answer_b_2": y[1]})
                fields = {"kind": "pair", "question": q[turn - 1], "answer_a": x[turn - 1],
                          "answer_b": y[turn - 1], "verdicts": "abc", "turn": turn, **ref_field}
                out.append((f"pair-t{turn}-{game}", JudgeRequest(_messages(templates, name, {**args, **ref_args}),
                                                                 decoding, fields)))
    return out


def is_own_baseline(answer: dict, reference: dict | None) -> bool:
    """Whether the pairwise baseline is the answering model itself (the paper preset's SFT against its own
    SFT baseline): such games are never asked, and its win rate is not applicable."""
    return reference is not None and reference.get("model") is not None and reference.get("model") == answer.get("model")


def parse_rating(text: str | None) -> float | None:
    """FastChat's rating: first ``[[x]]``, else first ``[x]``, kept whatever its value (as FastChat does);
    None when there is none."""
    if not text:
        return None
    match = ONE_SCORE.search(text) or ONE_SCORE_BACKUP.search(text)
    if not match:
        return None
    return float(ast.literal_eval(match.group(1)))


def parse_pair(text: str | None) -> str | None:
    """FastChat's pairwise verdict, checked in its order: ``[[A]]``, ``[[B]]``, ``[[C]]`` (tie)."""
    if not text:
        return None
    for token, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
        if token in text:
            return verdict
    return None


def parse(game: str, reply: JudgeReply) -> Any | None:
    """A rating (single games) or "A"/"B"/"tie" (pairwise games); None when nothing valid parses."""
    if game.startswith("single-t"):
        return parse_rating(reply.text)
    if game.startswith("pair-t"):
        return parse_pair(reply.text)
    raise ValueError(f"mt_bench: unknown game '{game}'")


def _text(reply) -> str | None:
    if reply is None:
        return None
    return reply.get("text") if isinstance(reply, dict) else getattr(reply, "text", None)


def make_record(question, answer, reference, bench, judge_name: str, verdicts: dict, replies: dict) -> dict:
    """Native record of one question (layout in the module docstring)."""
    modes = ((bench.get("judging") or {}).get("modes")) or ["single"]
    own_baseline = "pairwise" in modes and is_own_baseline(answer, reference)
    if own_baseline:
        modes = [m for m in modes if m != "pairwise"]
    ref_based = _ref_based(question)
    single, pairwise = [], []
    for turn in _turns(question, answer):
        if "single" in modes:
            key = f"single-t{turn}"
            single.append({"turn": turn, "prompt": _prompt_name("single", ref_based, turn),
                           "score": verdicts.get(key), "judgment": _text(replies.get(key))})
        if "pairwise" in modes:
            # game 1 shows the model as A, game 2 shows the baseline as A
            g1 = {"A": "model_1", "B": "model_2", "tie": "tie"}.get(verdicts.get(f"pair-t{turn}-g1"))
            g2 = {"A": "model_2", "B": "model_1", "tie": "tie"}.get(verdicts.get(f"pair-t{turn}-g2"))
            pairwise.append({"turn": turn, "prompt": _prompt_name("pair", ref_based, turn),
                             "baseline": (reference or {}).get("model"), "g1_winner": g1, "g2_winner": g2,
                             "g1_judgment": _text(replies.get(f"pair-t{turn}-g1")),
                             "g2_judgment": _text(replies.get(f"pair-t{turn}-g2"))})
    record = {"question_id": str(question["question_id"]), "model": answer["model"], "judge": judge_name,
              "category": question.get("category"), "single": single, "pairwise": pairwise}
    if own_baseline:
        record["pairwise_skipped"] = "own baseline"
    return record


def read_judgments(path, fmt: str = "native") -> list[dict]:
    """Native records (JSON list or JSONL), or FastChat single / pairwise judgment JSONL (fmt "fastchat")."""
    path = Path(path)
    if fmt == "fastchat":
        return from_fastchat(path, read_jsonl(path, with_lines=True))
    if fmt != "native":
        raise DataError(f"{path}: unknown judgment format '{fmt}' (native, fastchat)")
    if path.suffix == ".jsonl":
        rows = [(f"{path}:{line}", rec) for line, rec in read_jsonl(path, with_lines=True)]
    else:
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a list of records")
        rows = [(f"{path}: record {i}", rec) for i, rec in enumerate(data)]
    out = []
    for where, rec in rows:
        if not isinstance(rec, dict) or not all(k in rec for k in ("question_id", "model", "single", "pairwise")):
            raise DataError(f"{where}: lacks question_id / model / single / pairwise")
        if not isinstance(rec["model"], str):
            raise DataError(f"{where}: key 'model' must be a string, got {type(rec['model']).__name__}")
        if not isinstance(rec["single"], list) or not isinstance(rec["pairwise"], list):
            raise DataError(f"{where}: keys 'single' and 'pairwise' must be lists")
        turns = set()
        for s in rec["single"]:
            score = s.get("score") if isinstance(s, dict) else "not an object"
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not math.isfinite(score)):
                raise DataError(f"{where}: key 'single.score' is {score!r}, not a finite number")
            if not isinstance(s, dict) or s.get("turn") not in (1, 2) or s["turn"] in turns:
                raise DataError(f"{where}: key 'single.turn' must be 1 or 2, each once")
            turns.add(s["turn"])
        out.append({**rec, "question_id": str(rec["question_id"]), WHERE: where})
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score(records: list[dict], bench: dict | None = None, **options) -> dict:
    """FastChat's MT-Bench numbers for one model (option ``model`` picks one from a mixed list, ``baseline``
    the pairwise opponent when the records hold several, as show_result's --baseline-model; ``all_opponents``
    counts the games against every opponent together, as show_result lists every model of a file).

    ``questions`` (the benchmark's) and ``missing`` (those without a record): every rating and pairwise row
    the benchmark asks for and the records lack counts as failed, so the score is marked incomplete."""
    missing = options.get("missing") or []
    if options.get("model"):
        records = [r for r in records if r["model"] == options["model"]]
    if not records:
        raise DataError("mt_bench: no records to score")
    models = {r["model"] for r in records}
    if len(models) != 1:
        raise DataError(f"mt_bench: records of several models {sorted(models)}; pass model=...")
    single = [s for r in records for s in r["single"]]
    valid = [s for s in single if s["score"] is not None]
    out = {"model": models.pop(), "score": _mean([s["score"] for s in valid]),
           "score_turn1": _mean([s["score"] for s in valid if s["turn"] == 1]),
           "score_turn2": _mean([s["score"] for s in valid if s["turn"] == 2]),
           "n_ratings": len(valid), "n_failed_ratings": len(single) - len(valid),
           "n_out_of_range": sum(not 1 <= s["score"] <= 10 for s in valid)}
    # ratings the benchmark asks for and the records lack: every turn of a missing question, and the turns a
    # record leaves out (FastChat judges turn 2 of each two-turn question)
    turns_of = {str(q["question_id"]): len(q["turns"]) for q in options.get("questions") or []}
    absent = sum(len(q["turns"]) for q in missing) + sum(
        max(0, turns_of.get(str(r["question_id"]), 0) - len(r["single"])) for r in records)
    absent_ratings = absent if single or not any(r["pairwise"] for r in records) else 0
    cover = {"score": coverage(len(single) + absent_ratings, len(single) - len(valid) + absent_ratings)}
    pairs = [p for r in records for p in r["pairwise"]]
    if options.get("baseline"):
        pairs = [p for p in pairs if p.get("baseline") == options["baseline"]]
    failed_games = 0
    if pairs:
        baselines = {p.get("baseline") for p in pairs}
        if len(baselines) > 1 and not options.get("all_opponents"):
            raise DataError(f"mt_bench: pairwise records against several baselines {sorted(map(str, baselines))}; "
                            "pass baseline=...")
        done = [p for p in pairs if p["g1_winner"] is not None and p["g2_winner"] is not None]
        failed_games = sum((p["g1_winner"] is None) + (p["g2_winner"] is None) for p in pairs)
        wins = sum(p["g1_winner"] == p["g2_winner"] == "model_1" for p in done)
        losses = sum(p["g1_winner"] == p["g2_winner"] == "model_2" for p in done)
        ties = len(done) - wins - losses  # a tie, or the two orders disagree
        n = len(done)
        out.update(wins=wins, losses=losses, ties=ties, n_pairs=n, n_failed_pairwise=len(pairs) - n,
                   # all_opponents (show_result.py's view of every model of a file, the shared baseline
                   # included): the games against every opponent counted together
                   baseline=baselines.pop() if len(baselines) == 1 else "all of " + ", ".join(sorted(map(str, baselines))),
                   win_rate=100.0 * wins / n if n else None,
                   win_rate_adjusted=100.0 * (wins + 0.5 * ties) / n if n else None)
        # a pairwise row counts only when both of its games have a verdict; missing turns are missing rows
        absent_pairs = sum(len(q["turns"]) for q in missing) + sum(
            max(0, turns_of.get(str(r["question_id"]), 0) - len({p["turn"] for p in r["pairwise"] if not options.get("baseline")
                                                                    or p.get("baseline") == options["baseline"]}))
            for r in records)
        cover["win_rate"] = cover["win_rate_adjusted"] = coverage(len(pairs) + absent_pairs,
                                                                  len(pairs) - n + absent_pairs)
        failed_games += 2 * absent_pairs
        pairs_expected = len(pairs) + absent_pairs
    else:
        pairs_expected = 0
        if any(r.get("pairwise_skipped") == "own baseline" for r in records):
            out.update(win_rate=None, win_rate_adjusted=None,
                       win_rate_reason=f"not applicable: {out['model']} is its own pairwise baseline (no games asked)")
    out["coverage"] = cover
    out.update(coverage(len(single) + absent_ratings + 2 * pairs_expected,
                        len(single) - len(valid) + absent_ratings + failed_games))
    return missing_note(out, missing)


def prompt_score(records: list[dict]) -> tuple[dict, int, set]:
    """Per question (sum of valid ratings, their count; both turns together), the failed ratings, no baseline."""
    out, failed = {}, 0
    for r in records:
        valid = [float(s["score"]) for s in r["single"] if s.get("score") is not None]
        failed += len(r["single"]) - len(valid)
        out[r["question_id"]] = (sum(valid), float(len(valid)))  # a question = both turns (clustered)
    return out, failed, set()


def prompt_win_rate(records: list[dict]) -> tuple[dict, int, set]:
    """Per question (wins, pairwise turns with both games judged), the failed turns, the baselines; a win
    needs both orders to name the model."""
    out, failed = {}, 0
    baselines = set()
    for r in records:
        done = [p for p in r["pairwise"] if p.get("g1_winner") is not None and p.get("g2_winner") is not None]
        failed += len(r["pairwise"]) - len(done)
        wins = sum(p["g1_winner"] == p["g2_winner"] == "model_1" for p in done)
        out[r["question_id"]] = (float(wins), float(len(done)))
        baselines |= {p.get("baseline") for p in r["pairwise"] if p.get("baseline")}
    return out, failed, baselines


# Table-1 metric -> (per-prompt extractor, scale): the score is scale * sum(num) / sum(den)
PROMPT_METRICS = {"MT-S": (prompt_score, 1.0), "MT-WR": (prompt_win_rate, 100.0)}


def summary_line(result: dict) -> str:
    """One line in the spirit of FastChat's show_result: score (turn 1, turn 2) and the pairwise W/L/T."""
    def num(x):
        return "n/a" if x is None else f"{x:.4f}"

    text = (f"{result.get('model', '?'):<40} score {num(result['score'])}  turn 1 {num(result['score_turn1'])}  "
            f"turn 2 {num(result['score_turn2'])}  ratings {result['n_ratings']}")
    if "wins" in result:
        text += (f"  | vs {result['baseline']}: win {result['wins']} loss {result['losses']} tie {result['ties']}  "
                 f"win_rate {num(result['win_rate'])}%  adjusted {num(result['win_rate_adjusted'])}%")
    if result.get("n_out_of_range"):
        text += f"  | {result['n_out_of_range']} rating(s) outside 1..10 kept (as FastChat keeps them)"
    if not result.get("complete", True):
        text += f"  | INCOMPLETE: {result['n_judged']}/{result['n_expected']} games judged"
    return text
