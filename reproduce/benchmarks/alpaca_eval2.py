"""AlpacaEval 2 protocol (annotator ``weighted_alpaca_eval_gpt4_turbo``), scored with alpaca_eval's own metrics.

One judge game per instruction. The reference output is ``output_1`` and the model's ``output_2``; before
the judge sees them the pair is swapped by alpaca_eval's deterministic coin (seeded on the switch-column
name, the instruction and the annotator seed 0). The judge answers one token, ``m`` (first shown output
better) or ``M``; the preference is ``2 - p(m)`` from the top log-probs (alpaca_eval's own
``logprob_parser``), mapped back through the swap, so in every record ``preference`` 1 means the reference
won and 2 means the model won.

A judge without log-probs (its file says ``logprobs: false``: reasoning models, some servers) gets the same
prompt and gives the discrete verdict instead, as alpaca_eval's non-weighted annotators do: its one-token
answer ``m`` or ``M`` read as preference 1 or 2 (asked at temperature 0, so the answer is the judge's most
likely token, what the weighted annotator's binarised variant would read from the log-probs). A judge file
with ``verdict_regex`` (preference -> pattern) has its answer read by alpaca_eval's ``regex_parser`` with those
patterns instead, as that judge's annotator config does: the verdict is the one pattern found, and an answer
in which none, or more than one match, is found has no verdict (a parse failure, asked again like any other).
Records say which kind they hold (``preference_kind``), and the score says which was used (``preference``).

The game key says which order the judge saw: ``"unswitched"`` or ``"switched"`` (with ``":discrete"`` appended
for a judge without log-probs). Identical outputs are
not judged (``build_requests`` returns no game): the official annotator sets them to 1.5, and so does
:func:`make_record`.

Records follow the alpaca_eval ``annotations.json`` schema (``instruction``, ``output_1``/``generator_1`` =
reference, ``output_2``/``generator_2`` = model, ``preference``, ``raw_completion``, ``annotator``) plus
``question_id`` (the instruction's position in the official 805-item file) and ``is_switched_outputs``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

# leaderboard_rank is a protocol member (the score stage adds the rank); it lives beside the LC win rate
from reproduce.benchmarks.alpaca_lc import leaderboard_rank, length_controlled  # noqa: F401
from reproduce.benchmarks.completeness import WHERE, missing_note
from reproduce.benchmarks.coverage import coverage
from reproduce.benchmarks.protocol import JudgeReply, JudgeRequest, judge_decoding
from reproduce.benchmarks.templates import ALPACA_ANNOTATOR, alpaca_eval_prompt, optional_for_tiny
from reproduce.io import DataError, read_json, read_jsonl

log = logging.getLogger(__name__)

# alpaca_eval's pairwise annotators seed the order coin with seed 0 and the column "is_switched_outputs";
# checked against every row of the real annotation files in tests/test_alpaca_eval2.py.
SWITCH_SEED = 0
SWITCH_COLUMN = "is_switched_outputs"
GAMES = ("unswitched", "switched")

DEFAULT_DECODING = {"temperature": 1.0, "max_tokens": 1, "logprobs": True, "top_logprobs": 5}
REQUIRED = ("instruction", "output_1", "output_2", "generator_1", "generator_2", "preference")
MODEL_FIELD = "generator_2"  # the field naming the model a record judges


def load_templates(bench: dict, mirror=None) -> dict | None:
    """The annotator's chat prompt from the installed alpaca-eval wheel (None for a tiny bench without it)."""
    return optional_for_tiny(bench, alpaca_eval_prompt)


def is_switched(instruction: str, seed: int = SWITCH_SEED) -> bool:
    """alpaca_eval's order coin: True when the model's output is shown first (as ``m``)."""
    from alpaca_eval.utils import random_seeded_choice

    return random_seeded_choice(seed=SWITCH_COLUMN + instruction + str(seed), choices=[False, True])


WEIGHTED, DISCRETE = "weighted", "discrete"  # how a record's preference was read (the score's ``preference``)
VERDICT_TOKENS = {"m": 1, "M": 2}  # the prompt's answer tokens: m = the first output shown is better


def without_logprobs(bench: dict, judge_config: dict | None = None) -> dict:
    """The benchmark as judged by a judge that gives no log-probs: discrete verdicts, asked greedily, read with
    the judge file's ``verdict_regex`` where it has one (kept in ``judging.verdict_regex`` for :func:`parser`)."""
    judging = dict(bench.get("judging") or {})
    judging.update(logprobs=False, preference=DISCRETE, temperature=0.0)
    judging.pop("top_logprobs", None)
    if (judge_config or {}).get("verdict_regex"):
        judging["verdict_regex"] = dict(judge_config["verdict_regex"])
    return {**bench, "judging": judging}


def preference_kind(bench: dict) -> str:
    """``discrete`` when the bench was adapted to a judge without log-probs, else ``weighted``."""
    return DISCRETE if (bench.get("judging") or {}).get("preference") == DISCRETE else WEIGHTED


def _game(switched: bool, bench: dict) -> str:
    """The game key: the order shown, plus ``:discrete`` when the verdict is read from the answer's text."""
    order = "switched" if switched else "unswitched"
    return f"{order}:{DISCRETE}" if preference_kind(bench) == DISCRETE else order


def _decoding(bench: dict) -> dict:
    if preference_kind(bench) == DISCRETE:
        judging = bench.get("judging") or {}
        return {"temperature": judging.get("temperature", 0.0), "max_tokens": judging.get("max_tokens", 1),
                "logprobs": False}
    out = judge_decoding(bench, DEFAULT_DECODING)
    if not out["logprobs"]:  # the preference is read from log-probs; without them nothing can be parsed
        raise DataError(f"{bench.get('_file', 'alpaca_eval2')}: judging.logprobs must be true for AlpacaEval 2")
    return out


def _reference(question: dict, reference: dict | None) -> tuple[str, str]:
    """(reference output, its generator): the given reference answer, else the question's own reference."""
    if reference is not None:
        return reference["turns"][0], reference.get("model", "reference")
    if question.get("reference"):
        return question["reference"][0], question.get("reference_generator") or "reference"
    raise DataError(f"alpaca_eval2: question {question['question_id']!r} has no reference output")


def build_requests(question: dict, answer: dict, reference: dict | None, bench: dict,
                   templates: dict | None) -> list[tuple[str, JudgeRequest]]:
    """The single judge game of one instruction, in the order alpaca_eval's coin picks."""
    instruction = question["turns"][0]
    ref_text, _ = _reference(question, reference)
    model_text = answer["turns"][0]
    if ref_text == model_text:
        return []  # official rule: identical outputs are a draw (1.5), never sent to the judge
    switched = is_switched(instruction)
    first, second = (model_text, ref_text) if switched else (ref_text, model_text)
    messages = None
    if templates is not None:
        import pandas as pd
        from alpaca_eval.utils import make_prompts, prompt_to_chatml

        # alpaca_eval's own formatting (first-occurrence replacement) and ChatML -> messages conversion
        row = pd.DataFrame([{"instruction": instruction, "output_1": first, "output_2": second}])
        prompt = make_prompts(row, templates["prompt_template"])[0][0]
        messages = tuple(prompt_to_chatml(prompt))
    fields = {"kind": "preference", "question": instruction, "answer_a": first, "answer_b": second}
    game = _game(switched, bench)
    return [(game, JudgeRequest(messages=messages, decoding=_decoding(bench), fields=fields))]


def preference_from_logprobs(top_logprobs: dict[str, float] | None) -> float | None:
    """``2 - p(m)`` with p(m) normalised over {m, M}, computed by alpaca_eval's own ``logprob_parser`` with the
    annotator's parser settings (a missing token has log-prob -inf); None when neither token is there."""
    if not top_logprobs:
        return None
    from alpaca_eval.completion_parsers import logprob_parser

    kwargs = _parser_kwargs()
    if not any(t in kwargs["denominator_tokens"] for t in top_logprobs):
        return None  # logprob_parser would warn with the whole completion and return NaN
    completion = {"logprobs": {"content": [{"top_logprobs": [{"token": t, "logprob": lp}
                                                             for t, lp in top_logprobs.items()]}]}}
    (pref,) = logprob_parser(completion, numerator_token=kwargs["numerator_token"],
                             denominator_tokens=list(kwargs["denominator_tokens"]),
                             is_binarize=kwargs.get("is_binarize", False), log_prob_index=0)
    return float(pref)


def _parser_kwargs() -> dict:
    """The annotator's completion_parser_kwargs from the wheel (numerator m, denominators m/M, not binarised)."""
    global _PARSER_KWARGS
    if _PARSER_KWARGS is None:
        from reproduce.benchmarks.templates import alpaca_eval_prompt

        _PARSER_KWARGS = alpaca_eval_prompt()["completion_parser_kwargs"]
    return _PARSER_KWARGS


_PARSER_KWARGS: dict | None = None


def discrete_preference(text: str | None) -> float | None:
    """The verdict of a judge answered without log-probs: ``m`` -> 1, ``M`` -> 2 (the whole answer, spaces
    stripped: the prompt asks for one token), anything else None."""
    return float(VERDICT_TOKENS[text.strip()]) if isinstance(text, str) and text.strip() in VERDICT_TOKENS else None


def regex_preference(text: str | None, verdict_regex: dict) -> float | None:
    """The verdict of a judge file with ``verdict_regex`` ({"1": pattern, "2": pattern}), read by alpaca_eval's
    own ``regex_parser`` (successive earliest matches of any pattern, each scan resuming after the last match):
    the preference of the single match, None when no pattern matches or more than one match is found (as the
    annotator does, which sets an answer with other than one match to no verdict), or the answer is empty."""
    if not isinstance(text, str) or not text:
        return None  # regex_parser raises on an empty completion; the annotator records no verdict
    from alpaca_eval.completion_parsers import regex_parser

    # a fresh dict per call: regex_parser compiles its patterns into the dict it is given
    matches = regex_parser(text, {float(k): v for k, v in verdict_regex.items()})
    return matches[0] if len(matches) == 1 else None


def parser(bench: dict):
    """``parse`` for ``bench`` as :func:`without_logprobs` adapted it: with the judge's ``verdict_regex`` bound
    when it has one (the judge loop calls ``parser(bench)(game, reply)``)."""
    verdict_regex = (bench.get("judging") or {}).get("verdict_regex")
    if not verdict_regex:
        return parse
    return lambda game, reply: parse(game, reply, verdict_regex=verdict_regex)


def parse(game: str, reply: JudgeReply, verdict_regex: dict | None = None) -> Any | None:
    """Preference in the official orientation (1 = reference wins, 2 = model wins), or None. A ``:discrete``
    game (a judge without log-probs) is read from the answer's text (by ``verdict_regex`` when given, else the
    whole answer must be ``m`` or ``M``); any other from the log-probs (a reply without them has no verdict)."""
    order, _, mode = game.partition(":")
    if order not in GAMES or mode not in ("", DISCRETE):
        raise ValueError(f"alpaca_eval2: unknown game '{game}'")
    if mode == DISCRETE:
        pref = regex_preference(reply.text, verdict_regex) if verdict_regex else discrete_preference(reply.text)
    else:
        pref = preference_from_logprobs(reply.top_logprobs)
    if pref is None or math.isnan(pref):
        return None
    # the same un-switch as alpaca_eval's (3 - x), so the floats agree bit for bit
    return 3 - pref if order == "switched" else pref


def _reply_dict(reply) -> dict | None:
    if reply is None:
        return None
    return reply.to_dict() if hasattr(reply, "to_dict") else dict(reply)


def make_record(question, answer, reference, bench, judge_name: str, verdicts: dict, replies: dict) -> dict:
    """alpaca_eval annotation row of one instruction (preference None when the judge gave no verdict)."""
    ref_text, ref_gen = _reference(question, reference)
    model_text = answer["turns"][0]
    switched = is_switched(question["turns"][0])
    if ref_text == model_text:
        preference, raw = 1.5, None
    else:
        game = _game(switched, bench)
        preference = verdicts.get(game)
        reply = _reply_dict(replies.get(game))
        raw = None if reply is None else {"text": reply.get("text"), "top_logprobs": reply.get("top_logprobs")}
    return {"question_id": str(question["question_id"]), "instruction": question["turns"][0],
            "dataset": question.get("category"), "output_1": ref_text, "generator_1": ref_gen,
            "output_2": model_text, "generator_2": answer["model"], "annotator": judge_name,
            "annotator_config": ALPACA_ANNOTATOR, "is_switched_outputs": switched,
            "preference": preference, "preference_kind": preference_kind(bench), "raw_completion": raw}


def read_judgments(path, fmt: str = "native") -> list[dict]:
    """Native records (JSON list or JSONL), or an official ``annotations.json`` (fmt "alpaca_eval").

    Each record keeps its place in the file under ``_where``; the preference must be a number in [1, 2]
    (0 too, alpaca_eval's "no preference") or null/NaN (alpaca_eval's failed annotation: no verdict).
    """
    path = Path(path)
    if fmt == "native" and path.suffix == ".jsonl":
        rows = [(f"{path}:{line}", row) for line, row in read_jsonl(path, with_lines=True)]
    elif fmt in ("native", "alpaca_eval"):
        data = read_json(path)
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of annotations")
        rows = [(f"{path}: record {i}", row) for i, row in enumerate(data)]
    else:
        raise DataError(f"{path}: unknown judgment format '{fmt}' (native, alpaca_eval)")
    out, nan_rows = [], []
    for i, (where, row) in enumerate(rows):
        if not isinstance(row, dict):
            raise DataError(f"{where}: is not an object")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise DataError(f"{where}: lacks {', '.join(missing)}")
        for key in ("instruction", "output_1", "output_2", "generator_2"):
            if not isinstance(row[key], str):
                raise DataError(f"{where}: key '{key}' must be a string, got {type(row[key]).__name__}")
        pref = row["preference"]
        if isinstance(pref, bool) or (pref is not None and not isinstance(pref, (int, float))):
            try:
                pref = float(pref)
            except (TypeError, ValueError):
                raise DataError(f"{where}: key 'preference' is not a number ({str(pref)[:40]!r})") from None
        if pref is not None and math.isnan(pref):
            nan_rows.append(where)
            pref = None  # what alpaca_eval writes for a failed annotation: no verdict
        if pref is not None and not (pref == 0 or 1 <= pref <= 2):
            raise DataError(f"{where}: key 'preference' is {pref}, outside [1, 2]")
        rec = dict(row)
        rec["preference"] = pref
        # official files are in the order of the 805 instructions: position = question id (the CLI maps
        # an official file's instructions to the benchmark's ids instead, so a file missing rows is caught)
        rec.setdefault("question_id", str(i))
        rec["question_id"] = str(rec["question_id"])
        rec[WHERE] = where
        out.append(rec)
    if nan_rows:
        log.warning("%s: %d record(s) have no preference (NaN: a failed annotation), e.g. %s; they count as "
                    "failed and the score is marked incomplete", path, len(nan_rows), nan_rows[0])
    return out


def ids_from_instructions(records: list[dict], questions: list[dict], benchmark: str) -> list[dict]:
    """Records with ``question_id`` set from their instruction (an official annotations file is keyed by the
    instruction, not by position, so a file with rows left out or reordered keeps the right ids); an
    instruction the benchmark does not have is an error naming the record."""
    by_text = {q["turns"][0]: str(q["question_id"]) for q in questions}
    out = []
    for rec in records:
        qid = by_text.get(rec["instruction"])
        if qid is None:
            raise DataError(f"{rec.get(WHERE, 'alpaca_eval2')}: instruction {rec['instruction'][:50]!r} is not one of "
                            f"benchmark {benchmark}'s {len(by_text)} instructions; annotations of another benchmark?")
        out.append({**rec, "question_id": qid})
    return out


def score(records: list[dict], bench: dict | None = None, **options) -> dict:
    """Win rate, standard error, counts (alpaca_eval.metrics.get_winrate), avg_length and the LC win rate.

    options: ``lc_dir`` (folder with df_gamed.csv), ``lc_revision`` (pinned hub revision to download),
    ``length_controlled`` (False to skip), ``missing`` (the benchmark's questions without a record: each
    counts as a failed game, so the score is marked incomplete).
    """
    import pandas as pd
    from alpaca_eval.metrics import get_winrate

    if not records:
        raise DataError("alpaca_eval2: no records to score")
    models = {r["generator_2"] for r in records}
    if len(models) != 1:
        raise DataError(f"alpaca_eval2: records of several models {sorted(models)}; score one model at a time")
    missing = options.get("missing") or []
    df = pd.DataFrame(records).drop(columns=[WHERE], errors="ignore")
    df["preference"] = df["preference"].astype(float)  # None -> NaN, which alpaca_eval drops
    n_failed = int(df["preference"].isna().sum())
    valid = df[df["preference"].notna()]
    if valid.empty:
        raise DataError("alpaca_eval2: every record failed; nothing to score")
    m = get_winrate(valid)
    kinds = sorted({_record_kind(r) for r in records})
    out = {"model": models.pop(), "preference": kinds[0] if len(kinds) == 1 else "mixed", "win_rate": float(m["win_rate"]), "standard_error": float(m["standard_error"]),
           "n_wins": int(m["n_wins"]), "n_wins_base": int(m["n_wins_base"]), "n_draws": int(m["n_draws"]),
           "n_total": int(m["n_total"]), "discrete_win_rate": float(m["discrete_win_rate"]),
           # alpaca_eval's avg_length: mean character length of the model's outputs, truncated to int
           "avg_length": int(df["output_2"].str.len().mean()),
           # one game per instruction (identical outputs are a draw by rule and count as judged)
           **coverage(len(df) + len(missing), n_failed + len(missing))}
    want_lc = options.get("length_controlled", ((bench or {}).get("judging") or {}).get("length_controlled", True))
    if want_lc and ((bench or {}).get("questions") or {}).get("task"):
        # the GLM's instruction difficulties exist for the 805 AlpacaEval instructions only (df_gamed.csv)
        lc, lc_se, reason = None, None, (f"not applicable: length control is fitted on the 805 AlpacaEval "
                                         f"instructions, and these questions are the task "
                                         f"'{bench['questions']['task']}'")
    elif want_lc:  # alpaca_eval's GLM drops failed (NaN) games itself, as for the raw win rate
        lc, lc_se, reason = length_controlled(df, options)
    else:
        lc, lc_se, reason = None, None, "length control disabled (judging.length_controlled: false)"
    out["length_controlled_winrate"] = lc
    out["lc_standard_error"] = lc_se
    if reason:
        out["length_controlled_reason"] = reason
    return missing_note(out, missing)


def _record_kind(record: dict) -> str:
    """How a record's preference was read: its ``preference_kind``, else (official annotation files) from the
    annotator's name - alpaca_eval's weighted_* annotators read log-probs, the others give 1 or 2."""
    if record.get("preference_kind"):
        return record["preference_kind"]
    annotator = str(record.get("annotator_config") or record.get("annotator") or "")
    return WEIGHTED if annotator.startswith("weighted_") else DISCRETE


def model_result(preference) -> float | None:
    """The model's result in one record, 0 (reference wins) .. 1 (model wins); None when failed.

    alpaca_eval's win rate is 100 times its mean; a preference of 0 is the legacy draw code (1.5)."""
    if preference is None or (isinstance(preference, float) and math.isnan(preference)):
        return None
    return 0.5 if float(preference) == 0 else float(preference) - 1


def prompt_win_rate(records: list[dict]) -> tuple[dict, int, set]:
    """Per instruction (numerator, denominator) of the win rate, the failed games, the baselines (none)."""
    out, failed = {}, 0
    for r in records:
        value = model_result(r.get("preference"))
        failed += value is None
        out[r["question_id"]] = (0.0, 0.0) if value is None else (value, 1.0)
    return out, failed, set()


# Table-1 metric -> (per-prompt extractor, scale): the score is scale * sum(num) / sum(den)
PROMPT_METRICS = {"AE-WR": (prompt_win_rate, 100.0)}


def summary_line(result: dict) -> str:
    """One line in alpaca_eval's leaderboard style: LC, WR, SE, n, average length, leaderboard rank."""
    lc = result.get("length_controlled_winrate")
    text = (f"{result.get('model', '?'):<40} LC {'n/a' if lc is None else f'{lc:.2f}':>6}  "
            f"WR {result['win_rate']:6.2f}  SE {'n/a' if result['standard_error'] is None else format(result['standard_error'], '.2f')}  n {result['n_total']}  "
            f"avg length {result['avg_length']}")
    if result.get("preference") not in (None, WEIGHTED):
        text += f"  | {result['preference']} verdicts (no log-probs)"
    rank = result.get("leaderboard_rank")
    if rank:
        text += (f"  | rank {rank['rank']} of {rank['of']} by {'LC' if rank['by'].startswith('length') else 'WR'} on "
                 "the AlpacaEval 2 leaderboard in the alpaca-eval wheel")
    if not result.get("complete", True):
        text += f"  | INCOMPLETE: {result['n_judged']}/{result['n_expected']} games judged"
    return text
