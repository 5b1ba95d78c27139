"""Arena-Hard v0.1 protocol: two judge games per prompt, scored like the v0.1 ``show_result.py``.

Game 1 shows the baseline as assistant A and the model as B; game 2 swaps them. A verdict is one of
``A>>B, A>B, A=B, B>A, B>>A``. Records use the official v0.1 ``model_judgment`` layout::

    {"question_id", "model", "judge", "baseline", "games": [{"score": label | None, "judgment": text}, x2]}

Scoring (same algorithm as the v0.1 show_result, lmarena/arena-hard-auto @ 0489bf3): every game becomes
battles baseline-vs-model (strong verdicts repeated ``weight`` = 3 times, a game without a valid verdict
contributes nothing); Bradley-Terry is fitted by unpenalised logistic regression without intercept on the
battles duplicated once (a tie counts as a win for A in the first copy and for B in the second), Elo =
400 * beta + 1000 shifted so the baseline is 1000; the score is the model's predicted win rate against
the baseline in percent. The 95% interval takes the 2.5/97.5 percentiles of the Elo of each model over
``bootstrap_rounds`` (100) resamples of the battle rows drawn from ``numpy.random.RandomState(seed=42)``
(the official script seeds numpy's global generator with 42 on import) and converts them to win rates.
Unlike the official script we always anchor the bootstrap fits on the actual baseline (the official one
anchors only a baseline named gpt-4-0314, the v0.1 default, which is the same thing for v0.1) and we
score one model at a time (the official script resamples all models' battles jointly; for a judgment
folder holding one model the numbers are identical). ``prompt_bootstrap=True`` resamples prompts
instead of battle rows, which keeps the two games and the repeated strong verdicts of a prompt together.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Any

from reproduce.benchmarks.completeness import WHERE, missing_note
from reproduce.benchmarks.coverage import coverage
from reproduce.benchmarks.protocol import JudgeReply, JudgeRequest, judge_decoding
from reproduce.benchmarks.templates import arena_hard_config, templates_from_file
from reproduce.io import DataError, read_jsonl

LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
# Verdict patterns: the double-bracket label, then the single-bracket fallback (current arena-hard-auto).
PATTERNS = (re.compile(r"\[\[([AB<>=]+)\]\]"), re.compile(r"\[([AB<>=]+)\]"))
DEFAULT_BASELINE = "gpt-4-0314"
# The pinned v0.1 judge_config.yaml asks for temperature 0 and max_tokens 2048.
DEFAULT_DECODING = {"temperature": 0.0, "max_tokens": 2048}
GAMES = ("game1", "game2")
MODEL_FIELD = "model"  # the field naming the model a record judges
# winner of a battle per game and label: game 1 has A = baseline, game 2 has A = model
_WINNER = {
    "game1": {"A>>B": "model_a", "A>B": "model_a", "A=B": "tie", "B>A": "model_b", "B>>A": "model_b"},
    "game2": {"A>>B": "model_b", "A>B": "model_b", "A=B": "tie", "B>A": "model_a", "B>>A": "model_a"},
}


def load_templates(bench: dict, mirror=None) -> dict | None:
    """System prompt and prompt template of the v0.1 judge config (None for a tiny bench without it)."""
    return templates_from_file(bench, "judge_config", arena_hard_config, mirror)


def build_requests(question: dict, answer: dict, reference: dict | None, bench: dict,
                   templates: dict | None) -> list[tuple[str, JudgeRequest]]:
    """game1 (A = baseline, B = model) and game2 (A = model, B = baseline)."""
    if reference is None:
        raise DataError(f"arena_hard: question {question['question_id']!r} has no baseline answer")
    prompt = question["turns"][0]
    base, model = reference["turns"][0], answer["turns"][0]
    out = []
    for game, (a, b) in (("game1", (base, model)), ("game2", (model, base))):
        messages = None
        if templates is not None:
            msgs = [{"role": "system", "content": templates["system_prompt"]}]
            for template in templates["prompt_template"]:
                msgs.append({"role": "user", "content": template.format(question_1=prompt, answer_1=a, answer_2=b)})
            messages = tuple(msgs)
        fields = {"kind": "pair", "question": prompt, "answer_a": a, "answer_b": b, "verdicts": "five_level",
                  "turn": 1}
        decoding = judge_decoding(bench, DEFAULT_DECODING)
        out.append((game, JudgeRequest(messages=messages, decoding=decoding, fields=fields)))
    return out


def parse_label(text: str | None) -> str | None:
    """Last bracketed label (double brackets first, then single), upper-cased; None unless one of the five."""
    if not text:
        return None
    upper = text.upper()
    for pattern in PATTERNS:
        matches = [m for m in pattern.findall(upper) if m != ""]
        if matches:
            label = matches[-1].strip("\n")
            return label if label in LABELS else None
    return None


def parse(game: str, reply: JudgeReply) -> Any | None:
    """The verdict label of one game, or None when no valid label is found."""
    if game not in GAMES:
        raise ValueError(f"arena_hard: unknown game '{game}'")
    return parse_label(reply.text)


def make_record(question, answer, reference, bench, judge_name: str, verdicts: dict, replies: dict) -> dict:
    """v0.1 model_judgment record of one prompt (a game's score is None when no verdict was obtained)."""
    games = []
    for game in GAMES:
        reply = replies.get(game)
        text = getattr(reply, "text", None) if not isinstance(reply, dict) else reply.get("text")
        games.append({"score": verdicts.get(game), "judgment": text})
    rec = {"question_id": str(question["question_id"]), "model": answer["model"], "judge": judge_name,
           "baseline": (reference or {}).get("model"), "games": games}
    n_tokens = ((answer.get("meta") or {}).get("n_tokens") or [None])[0]
    if isinstance(n_tokens, int):
        rec["answer_tokens"] = n_tokens  # the generating model's own count (for the average-tokens column)
    return rec


def read_judgments(path, fmt: str = "native") -> list[dict]:
    """Native records or an official v0.1 model_judgment JSONL (fmt "arena_hard"); both share the layout."""
    path = Path(path)
    if fmt not in ("native", "arena_hard"):
        raise DataError(f"{path}: unknown judgment format '{fmt}' (native, arena_hard)")
    out = []
    for i, row in read_jsonl(path, with_lines=True):
        for key in ("question_id", "model", "games"):
            if key not in row:
                raise DataError(f"{path}:{i}: record lacks '{key}' (expected the v0.1 'games' layout)")
        games = row["games"]
        if not isinstance(games, list) or len(games) != 2 or not all(isinstance(g, dict) for g in games):
            raise DataError(f"{path}:{i}: 'games' must be a list of two game objects")
        for key in ("question_id", "model"):
            if not isinstance(row[key], (str, int)) or isinstance(row[key], bool):
                raise DataError(f"{path}:{i}: key '{key}' must be a string, got {type(row[key]).__name__}")
        if row.get("baseline") is not None and not isinstance(row["baseline"], str):
            raise DataError(f"{path}:{i}: key 'baseline' must be a string, got {type(row['baseline']).__name__}")
        rec = dict(row)
        rec["model"] = str(row["model"])
        rec["question_id"] = str(row["question_id"])
        rec[WHERE] = f"{path}:{i}"
        # an official file may hold a label outside the five (or None after an API error): no verdict
        rec["games"] = [dict(g, score=g.get("score") if g.get("score") in LABELS else None) for g in games]
        out.append(rec)
    return out


def _battles(records: list[dict], baseline: str, weight: int, first_game_only: bool) -> list[dict]:
    """Battles in record order, game 1 then game 2, strong verdicts repeated ``weight`` times."""
    out = []
    for rec in records:
        for game, g in zip(GAMES, rec["games"][:1] if first_game_only else rec["games"]):
            label = g.get("score")
            if label not in LABELS:
                continue  # no verdict: this game contributes no battle (v0.1 show_result)
            n = weight if ">>" in label else 1
            out += [{"model_a": baseline, "model_b": rec["model"], "winner": _WINNER[game][label]}] * n
    return out


def _mle_elo(battles, baseline: str):
    """Bradley-Terry Elo by unpenalised logistic regression (v0.1 compute_mle_elo), baseline at 1000."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    models = pd.concat([battles["model_a"], battles["model_b"]]).unique()
    index = {m: i for i, m in enumerate(models)}
    df = pd.concat([battles, battles], ignore_index=True)
    n = len(df)
    X = np.zeros([n, len(models)])
    rows = np.arange(n)
    X[rows, [index[m] for m in df["model_a"]]] = +np.log(10)
    X[rows, [index[m] for m in df["model_b"]]] = -np.log(10)
    Y = np.zeros(n)
    Y[(df["winner"] == "model_a").to_numpy()] = 1.0
    # a tie is one win for each side: A wins it in the first copy, B in the second
    tie = ((df["winner"] == "tie") | (df["winner"] == "tie (bothbad)")).to_numpy().copy()
    tie[n // 2:] = False
    Y[tie] = 1.0
    if Y.min() == Y.max():
        # one side won every battle: the MLE is at infinity (the official script crashes here); report the
        # limit (baseline 1000, the other model +-inf) so tiny runs and degenerate resamples still give 0 / 100%
        a_won = Y[0] == 1.0
        return {m: 1000.0 if m == baseline else (np.inf if (m == battles["model_a"].iloc[0]) == a_won else -np.inf)
                for m in index}
    lr = LogisticRegression(fit_intercept=False, penalty=None, tol=1e-8)
    with warnings.catch_warnings():  # scikit-learn >= 1.8 deprecates penalty=None (one warning per fit, ~100
        warnings.simplefilter("ignore", FutureWarning)  # per score); kept: it is the official computation
        lr.fit(X, Y)
    elo = 400 * lr.coef_[0] + 1000
    if baseline in index:
        elo += 1000 - elo[index[baseline]]
    return {m: float(elo[i]) for m, i in index.items()}


def _win_rate(elo_model: float, elo_base: float) -> float:
    """Predicted win rate (percent) of the model against the baseline from their Elo ratings."""
    if elo_model == elo_base:  # also covers inf == inf
        return 50.0
    d = (elo_base - elo_model) / 400
    if d > 300 or d == float("inf"):
        return 0.0
    return 100.0 / (1 + 10**d)


def _percentile(values, q: float) -> float:
    """np.percentile (linear), except that infinite Elos (degenerate resamples) give their limit, not NaN."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    if np.isfinite(values).all():
        return float(np.percentile(values, q))  # the official computation, bit for bit
    v = np.sort(values)
    h = (len(v) - 1) * q / 100
    lo, hi = int(np.floor(h)), int(np.ceil(h))
    if v[lo] == v[hi] or h == lo:
        return float(v[lo])
    return float(v[hi] if not np.isfinite(v[hi]) else v[lo] if not np.isfinite(v[lo]) else
                 v[lo] + (v[hi] - v[lo]) * (h - lo))


def _bootstrap_elo(records: list[dict], battles, baseline: str, weight: int, first_only: bool, rounds: int, seed: int,
                   prompt_bootstrap: bool):
    """Elo fits (a DataFrame, one row per round) on battles resampled with replacement (v0.1), or on prompts
    resampled with replacement (``prompt_bootstrap``), from ``np.random.RandomState(seed)``."""
    import numpy as np
    import pandas as pd

    rng = np.random.RandomState(seed)
    boot = []
    for _ in range(rounds):
        if prompt_bootstrap:
            idx = rng.choice(len(records), size=len(records), replace=True)
            sample = pd.DataFrame(_battles([records[i] for i in idx], baseline, weight, first_only))
            if sample.empty:
                continue
        else:
            # what DataFrame.sample(frac=1, replace=True) draws from numpy's generator
            sample = battles.iloc[rng.choice(len(battles), size=len(battles), replace=True)]
        boot.append(_mle_elo(sample.reset_index(drop=True), baseline))
    return pd.DataFrame(boot)


def score(records: list[dict], bench: dict | None = None, **options) -> dict:
    """Win rate vs the baseline (percent) with its bootstrap 95% interval.

    options: ``baseline`` (default: the records' baseline, else bench.reference.name, else gpt-4-0314),
    ``weight`` (3), ``rounds`` (judging.bootstrap_rounds or 100), ``seed`` (judging.seed or 42),
    ``prompt_bootstrap`` (False), ``first_game_only`` (False), ``missing`` (the benchmark's prompts without
    a record: their games count as failed, so the score is marked incomplete).
    """
    import pandas as pd

    if not records:
        raise DataError("arena_hard: no records to score")
    models = {r["model"] for r in records}
    if len(models) != 1:
        raise DataError(f"arena_hard: records of several models {sorted(models)}; score one model at a time")
    model = models.pop()
    judging = (bench or {}).get("judging") or {}
    baselines = {r.get("baseline") for r in records if r.get("baseline")}
    if len(baselines) > 1:
        raise DataError(f"arena_hard: records judged against several baselines {sorted(baselines)}")
    if options.get("baseline") and baselines and options["baseline"] not in baselines:
        raise DataError(f"arena_hard: baseline '{options['baseline']}' is not the one these records were judged "
                        f"against ({', '.join(sorted(baselines))})")
    baseline = options.get("baseline") or (baselines.pop() if baselines else None) \
        or ((bench or {}).get("reference") or {}).get("name") or DEFAULT_BASELINE
    weight = int(options.get("weight", 3))
    rounds = int(options.get("rounds", judging.get("bootstrap_rounds", 100)))
    seed = int(options.get("seed", judging.get("seed", 42)))
    first_only = bool(options.get("first_game_only", False))
    prompt_bootstrap = bool(options.get("prompt_bootstrap", False))

    battles = pd.DataFrame(_battles(records, baseline, weight, first_only))
    if battles.empty:
        raise DataError("arena_hard: no game has a verdict; nothing to score")
    elo = _mle_elo(battles, baseline)

    boot = _bootstrap_elo(records, battles, baseline, weight, first_only, rounds, seed, prompt_bootstrap)
    lo = {m: _percentile(boot[m], 2.5) for m in (model, baseline)}
    hi = {m: _percentile(boot[m], 97.5) for m in (model, baseline)}

    played = [g for r in records for g in r["games"][: 1 if first_only else 2]]
    missing = options.get("missing") or []
    n_missing_games = len(missing) * (1 if first_only else 2)
    failed_games = sum(g.get("score") not in LABELS for g in played)
    failed_prompts = sum(any(g.get("score") not in LABELS for g in r["games"][: 1 if first_only else 2])
                         for r in records)
    tokens = [r["answer_tokens"] for r in records if isinstance(r.get("answer_tokens"), int)]
    return missing_note({"model": model, "score": _win_rate(elo[model], elo[baseline]),
            # as show_result: each bound is the win rate of the bound Elo against the baseline's same bound
            "ci_low": _win_rate(lo[model], lo[baseline]), "ci_high": _win_rate(hi[model], hi[baseline]),
            # one side won every battle: the Elo is infinite, which JSON cannot hold (the score is 0 or 100)
            "elo": elo[model] if math.isfinite(elo[model]) else None, "baseline": baseline, "n": len(records), "n_failed_games": failed_games,
            "n_failed_prompts": failed_prompts, "n_battles": len(battles), "bootstrap_rounds": rounds, "seed": seed,
            "ci_method": "prompt bootstrap" if prompt_bootstrap else "battle bootstrap (v0.1)",
            "avg_tokens": sum(tokens) / len(tokens) if len(tokens) == len(records) else None,
            **coverage(len(played) + n_missing_games, failed_games + n_missing_games)}, missing)


# show_result counts a strong verdict (A>>B, B>>A) as 3 battles
STRONG_WEIGHT = 3
MODEL_RESULT = {  # model-perspective result of a game: 1 model wins, 0.5 tie, 0 baseline wins
    "game1": {"A>>B": 0.0, "A>B": 0.0, "A=B": 0.5, "B>A": 1.0, "B>>A": 1.0},  # game 1: A = baseline
    "game2": {"A>>B": 1.0, "A>B": 1.0, "A=B": 0.5, "B>A": 0.0, "B>>A": 0.0},  # game 2: A = model
}


def prompt_win_rate(records: list[dict]) -> tuple[dict, int, set]:
    """Per prompt (weighted model wins + ties / 2, weighted battles): with one model against its baseline the
    Bradley-Terry fit's predicted win rate is their ratio summed over prompts; the failed games; the baselines."""
    out, failed = {}, 0
    for r in records:
        num = den = 0.0
        for game, g in zip(GAMES, r["games"]):
            label = g.get("score")
            if label not in MODEL_RESULT[game]:
                failed += 1
                continue
            w = STRONG_WEIGHT if ">>" in label else 1
            num += w * MODEL_RESULT[game][label]
            den += w
        out[r["question_id"]] = (num, den)
    return out, failed, {r.get("baseline") for r in records if r.get("baseline")}


# Table-1 metric -> (per-prompt extractor, scale): the score is scale * sum(num) / sum(den)
PROMPT_METRICS = {"AH": (prompt_win_rate, 100.0)}


def summary_line(result: dict) -> str:
    """One line in the style of the v0.1 show_result.py: score, 95% CI as (-x, +y), average #tokens."""
    lo, hi = result["ci_low"] - result["score"], result["ci_high"] - result["score"]
    interval = f"({lo:.1f}, +{hi:.1f})"
    tokens = "n/a" if result.get("avg_tokens") is None else f"{int(result['avg_tokens'])} (model tokenizer)"
    text = (f"{result.get('model', '?'):<40} | score: {result['score']:^5.1f} | 95% CI: {interval:^14} | "
            f"average #tokens: {tokens}")
    if not result.get("complete", True):
        text += f" | INCOMPLETE: {result['n_judged']}/{result['n_expected']} games judged"
    return text
