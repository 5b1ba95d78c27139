"""The items behind every number of one (benchmark, setting): what the HTML report's drill-down shows.

For every question: its text and category, the baseline's answer, each method's answer with its length,
and for each judge and method the verdict as the judge gave it, game by game (the order the judge saw,
the verdict, the judge's explanation or the log-probs it answered with), the position-flip result and the
item's contribution to each Table-1 metric (the per-prompt values the paired bootstrap of
:mod:`reproduce.report.differences` resamples, so the page's per-item numbers add up to the table's).

Only files the workflow wrote are read (answers, judgments); the questions come from the benchmark's own
files through :func:`reproduce.benchmarks.questions.load_questions`. A missing file is not an error here:
the item data says what is missing, so one absent judge does not hide the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.io import DataError, read_jsonl
from reproduce.paths import ResultPaths
from reproduce.benchmarks.arena_hard import MODEL_RESULT
from reproduce.report.differences import METRICS, metrics_for, prompt_stats, read_records

# the judge-facing order of each protocol's games (who was shown as A / first)
_AE_ORDER = {False: "reference shown first (output m), model second", True: "model shown first (output m), reference second"}
_AH_ORDER = {"game1": "A = baseline, B = model", "game2": "A = model, B = baseline"}
_MT_ORDER = {"g1": "A = model, B = baseline", "g2": "A = baseline, B = model"}
_MT_WINNER = {"model_1": "model", "model_2": "baseline", "tie": "tie", None: "no verdict"}


def _answer_index(path: Path) -> dict[str, dict]:
    """question_id -> answer record of one answers file ({} when the file is absent)."""
    if not path.exists():
        return {}
    return {str(r["question_id"]): r for r in read_jsonl(path)}


def _n_tokens(answer: dict | None) -> list | None:
    return ((answer or {}).get("meta") or {}).get("n_tokens")


def _ae_games(rec: dict) -> tuple[list[dict], str, str]:
    raw = rec.get("raw_completion") or {}
    pref = rec.get("preference")
    # alpaca_eval's rule: identical outputs are a draw (1.5) never sent to the judge. Told by comparing the
    # outputs, not by a missing raw completion: imported annotations carry real ties without one.
    if pref == 1.5 and rec.get("output_1") is not None and rec.get("output_1") == rec.get("output_2"):
        return [], "identical outputs: not judged (tie, 1.5)", "n/a"
    who = "failed" if pref is None else ("model" if pref > 1.5 else "reference" if pref < 1.5 else "tie")
    game = {"name": "switched" if rec.get("is_switched_outputs") else "unswitched",
            "order": _AE_ORDER[bool(rec.get("is_switched_outputs"))],
            "verdict": "no verdict" if pref is None else
            f"preference {pref:.3f} ({rec.get('preference_kind') or 'weighted'}; {who} preferred)",
            "text": raw.get("text"), "logprobs": raw.get("top_logprobs")}
    return [game], ("no verdict" if pref is None else f"{who} ({pref:.3f})"), "one game (alpaca_eval judges one order)"


def _ah_games(rec: dict) -> tuple[list[dict], str, str]:
    games, results = [], []
    for name, g in zip(("game1", "game2"), rec.get("games", [])):
        label = g.get("score")
        res = MODEL_RESULT[name].get(label)
        results.append(res)
        who = "no verdict" if res is None else {1.0: "model", 0.5: "tie", 0.0: "baseline"}[res]
        games.append({"name": name, "order": _AH_ORDER[name], "verdict": f"{label or '—'} ({who})",
                      "text": g.get("judgment")})
    labels = " / ".join(g.get("score") or "—" for g in rec.get("games", []))
    if None in results:
        flip = "incomplete (a game has no verdict)"
    else:
        flip = "consistent" if results[0] == results[1] else "position flip (the two orders disagree)"
    return games, labels, flip


def _mt_games(rec: dict) -> tuple[list[dict], str, str]:
    games, ratings, flips = [], [], []
    for s in rec.get("single", []):
        ratings.append("—" if s.get("score") is None else f"{s['score']:g}")
        games.append({"name": f"single turn {s.get('turn')}", "order": "one answer graded", "verdict":
                      "no rating" if s.get("score") is None else f"rating {s['score']:g}", "text": s.get("judgment")})
    for p in rec.get("pairwise", []):
        t = p.get("turn")
        for g in ("g1", "g2"):
            games.append({"name": f"pair turn {t} game {g[1]}", "order": _MT_ORDER[g],
                          "verdict": _MT_WINNER.get(p.get(f"{g}_winner"), str(p.get(f"{g}_winner"))),
                          "text": p.get(f"{g}_judgment")})
        a, b = p.get("g1_winner"), p.get("g2_winner")
        flips.append(f"turn {t}: " + ("incomplete" if a is None or b is None else
                                      "consistent" if a == b else "position flip (counts as a tie)"))
    summary = "ratings " + ", ".join(ratings) if ratings else ""
    if rec.get("pairwise"):
        pw = [_MT_WINNER.get(p.get("g1_winner")) if p.get("g1_winner") == p.get("g2_winner") else "tie"
              for p in rec["pairwise"] if p.get("g1_winner") and p.get("g2_winner")]
        summary += ("; " if summary else "") + "pairwise " + (", ".join(pw) or "—")
    return games, summary, "; ".join(flips) or "single grading only (no order)"


def _record_games(rec: dict) -> tuple[list[dict], str, str]:
    """A protocol without its own view here: the record itself, as JSON."""
    return [{"name": "record", "order": "as recorded", "verdict": "see the record",
             "text": json.dumps(rec, indent=1, ensure_ascii=False)}], "record", "n/a"


# per protocol: (games for display, verdict summary, position-flip result) of one record
_GAMES = {"alpaca_eval2": _ae_games, "arena_hard": _ah_games, "mt_bench": _mt_games}


def _per_prompt_values(records: list[dict], protocol: str, source: str) -> dict[str, dict[str, float | None]]:
    """question_id -> {metric: the item's value on that metric's scale, None when it has no verdict}."""
    out: dict[str, dict[str, float | None]] = {}
    for metric in metrics_for(protocol, records):
        st = prompt_stats(records, protocol, metric, source=source)
        for q, n, d in zip(st.question_ids, st.num, st.den):
            out.setdefault(q, {})[metric] = round(st.scale * float(n) / float(d), 4) if d > 0 else None
    return out


def bench_items(cfg: dict, results: Path, bench: str, setting: str, questions: list[dict] | None,
                questions_error: str | None = None) -> dict:
    """Everything the drill-down shows for one benchmark and setting (layout in the module docstring).

    ``questions``: the benchmark's questions (None when they could not be loaded; ``questions_error`` says
    why and the page shows it). Returns ``{"bench", "setting", "protocol", "methods", "judges", "metrics",
    "baseline", "missing": [...], "items": [{"id", "cat", "q", "ref", "ref_len", "ans": {method: {"t", "n",
    "chars"}}, "v": {judge: {method: {"sum", "flip", "games", "m": {metric: value}}}}}]}``.
    """
    results = Path(results)
    P = ResultPaths(results)
    protocol = cfg["benchmarks"][bench]["protocol"]
    methods, judges = list(cfg["methods"]), list(cfg["judges"])
    missing: list[str] = []
    ref_path = Path(P.baseline_answers(bench, setting, cfg["benchmarks"][bench]))
    refs = _answer_index(ref_path)
    if not refs:
        missing.append(f"baseline answers {ref_path}")
    answers = {}
    for m in methods:
        path = Path(P.answers(bench, setting, m))
        answers[m] = _answer_index(path)
        if not answers[m]:
            missing.append(f"answers {path}")
    verdicts: dict[str, dict[str, dict[str, dict]]] = {}
    baseline = None
    for j in judges:
        for m in methods:
            path = Path(P.judgments(bench, j, setting, m))
            if not path.exists():
                missing.append(f"judgments {path}")
                continue
            records = read_records(path, protocol)
            values = _per_prompt_values(records, protocol, str(path))
            for r in records:
                q = str(r["question_id"])
                games, summary, flip = _GAMES.get(protocol, _record_games)(r)
                baseline = baseline or r.get("baseline") or r.get("generator_1") or next(
                    (p.get("baseline") for p in r.get("pairwise", []) if p.get("baseline")), None)
                verdicts.setdefault(q, {}).setdefault(j, {})[m] = {
                    "sum": summary, "flip": flip, "games": games, "m": values.get(q, {})}
    qlist = questions if questions is not None else [
        {"question_id": q, "turns": [], "category": ""} for q in sorted({*verdicts, *refs})]
    items = []
    for q in qlist:
        qid = str(q["question_id"])
        ref = refs.get(qid)
        ans = {}
        for m in methods:
            a = answers[m].get(qid)
            if a is not None:
                ans[m] = {"t": a.get("turns", []), "n": _n_tokens(a), "chars": sum(len(t) for t in a.get("turns", []))}
        if not ans and qid not in verdicts:
            continue  # a question the run did not answer (a preset's n smaller than the file)
        items.append({"id": qid, "cat": q.get("category") or "", "q": q.get("turns", []),
                      "ref": (ref or {}).get("turns", []), "ref_len": _n_tokens(ref),
                      "ref_chars": sum(len(t) for t in (ref or {}).get("turns", [])),
                      "ans": ans, "v": verdicts.get(qid, {})})
    if not items and (any(answers.values()) or verdicts):  # files exist, yet none of their ids is a question
        raise DataError(f"report html: no item of {bench}/{setting} matches the benchmark's question ids")
    return {"bench": bench, "setting": setting, "protocol": protocol, "methods": methods, "judges": judges,
            "metrics": [m for m, v in METRICS.items() if v[0] == protocol], "baseline": baseline,
            "missing": missing, "questions_error": questions_error, "items": items}
