"""Judge agreement: how much a second judge changes the results of the same cached answers.

Per benchmark metric (the Table-1 columns): Spearman and Kendall rank correlation of the methods' scores
between the reference judge (the preset's table judge) and each other judge, and each method's score and
rank under both. Per benchmark: the per-item agreement rate of the two judges' verdicts on the same
(question, game/turn) — outcome agreement (which side won, or tie) for pairwise protocols, exact agreement
and mean absolute difference for MT-Bench ratings. Per judge and benchmark, its reliability
(:func:`judge_reliability`): the position-flip rate, the tie share and the length bias. Writes
``judge_agreement.{csv,md,json}``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from reproduce.config import ConfigError
from reproduce.io import DataError, atomic_write_json, atomic_write_text
from reproduce.paths import ResultPaths
from reproduce.benchmarks.alpaca_eval2 import model_result
from reproduce.benchmarks.arena_hard import MODEL_RESULT
from reproduce.report.provenance import load_score
from reproduce.report.table1 import COLUMNS, method_label


def _outcome(x) -> int | None:
    """-1 / 0 / +1 for AlpacaEval preferences (1 = output_1 better, 2 = output_2, 1.5 = tie)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return 0 if abs(float(x) - 1.5) < 1e-9 else (1 if float(x) > 1.5 else -1)


_AH_DIRECTION = {"A>>B": "A", "A>B": "A", "A=B": "=", "B>A": "B", "B>>A": "B"}


def item_verdicts(path: Path, protocol: str) -> dict[str, dict]:
    """Per-item verdicts of one judgments file: ``{kind: {item key: verdict}}``.

    kinds: ``outcome`` (pairwise: who won or tie, orientation as recorded — both judges see the same
    order), ``label`` (Arena-Hard's five-level verdict), ``rating`` (MT-Bench single grade).
    """
    out: dict[str, dict] = {"outcome": {}, "label": {}, "rating": {}}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        q = r["question_id"]
        if protocol == "alpaca_eval2":
            o = _outcome(r.get("preference"))
            if o is not None:
                out["outcome"][q] = o
        elif protocol == "arena_hard":
            for g, game in enumerate(r.get("games", [])):
                label = game.get("score")
                if label in _AH_DIRECTION:
                    out["label"][(q, g)] = label
                    out["outcome"][(q, g)] = _AH_DIRECTION[label]
        elif protocol == "mt_bench":
            for s in r.get("single", []):
                if s.get("score") is not None and s["score"] >= 0:
                    out["rating"][(q, s.get("turn"))] = float(s["score"])
            for p in r.get("pairwise", []):
                for g in ("g1_winner", "g2_winner"):
                    if p.get(g) not in (None, "error"):
                        out["outcome"][(q, p.get("turn"), g)] = p[g]
        else:
            raise DataError(f"{path}: unknown protocol '{protocol}'")
    return out


def _rank_corr(xs: list[float], ys: list[float]) -> tuple[float | None, float | None]:
    """Spearman rho and Kendall tau-b; None when undefined (fewer than 3 methods or a constant side)."""
    from scipy.stats import kendalltau, spearmanr

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None, None
    rho = spearmanr(xs, ys).statistic
    tau = kendalltau(xs, ys).statistic
    return (None if math.isnan(rho) else float(rho)), (None if math.isnan(tau) else float(tau))


def _ranks(values: list[float]) -> list[float]:
    from scipy.stats import rankdata

    return [float(r) for r in rankdata([-v for v in values], method="average")]  # 1 = best


def _item_agreement(cfg: dict, results: Path, judge_a: str, judge_b: str) -> list[dict]:
    """Per benchmark and kind of verdict, how often the two judges give the same verdict on the same item."""
    items = []
    for bench, bc in cfg["benchmarks"].items():
        totals: dict[str, list] = {}
        for setting in cfg["settings"]:
            for method in cfg["methods"]:
                va, vb = [], []
                for judge, dest in ((judge_a, va), (judge_b, vb)):
                    path = Path(ResultPaths(results).judgments(bench, judge, setting, method))
                    if not path.exists():
                        raise DataError(f"judge agreement: missing judgments file {path}")
                    dest.append(item_verdicts(path, bc["protocol"]))
                for kind in ("outcome", "label", "rating"):
                    a, b = va[0][kind], vb[0][kind]
                    common = sorted(set(a) & set(b), key=str)
                    if not common:
                        continue
                    t = totals.setdefault(kind, [0, 0, 0.0])
                    t[0] += len(common)
                    t[1] += sum(a[k] == b[k] for k in common)
                    if kind == "rating":
                        t[2] += sum(abs(a[k] - b[k]) for k in common)
        for kind, (n, same, absdiff) in totals.items():
            items.append({"benchmark": bench, "verdict": {"outcome": "pairwise outcome (win/tie/loss)",
                                                          "label": "five-level verdict", "rating": "1-10 rating"}[kind],
                          "n_items": n, "agreement": same / n,
                          "mean_abs_diff": (absdiff / n) if kind == "rating" else None})
    return items


def judge_agreement(cfg: dict, results: Path, judge_a: str, judge_b: str) -> dict:
    """Everything the agreement report says about ``judge_b`` against ``judge_a`` (see module docstring).

    Raises ``DataError`` when a score or judgments file the comparison needs is missing: a correlation over
    fewer methods than the table has would be silently wrong.
    """
    results = Path(results)
    metrics, movement = [], []
    for col, _, protocol, key, _, _, header in COLUMNS:
        bench = next((b for b, bc in cfg["benchmarks"].items() if bc["protocol"] == protocol), None)
        if bench is None:
            continue
        xs, ys, labels = [], [], []
        for setting in cfg["settings"]:
            for method in cfg["methods"]:
                pair = []
                for judge in (judge_a, judge_b):
                    sc = load_score(results, cfg, bench, judge, setting, method)
                    if sc is None:
                        raise DataError(f"judge agreement: no score file for {bench} / {judge} / {setting} / {method} "
                                        f"(expected {ResultPaths(results).score(bench, judge, setting, method)}); "
                                        f"run the judge first (snakemake ... all)")
                    pair.append(sc.get(key))
                if None in pair:
                    continue  # e.g. LC unavailable under both judges: not a score, not a disagreement
                xs.append(float(pair[0]))
                ys.append(float(pair[1]))
                labels.append((setting, method))
        if not xs:
            continue
        rho, tau = _rank_corr(xs, ys)
        ra, rb = _ranks(xs), _ranks(ys)
        metrics.append({"benchmark": bench, "metric": col, "metric_name": header, "n_methods": len(xs),
                        "spearman": rho, "kendall": tau, "mean_abs_change": sum(abs(y - x) for x, y in zip(xs, ys)) / len(xs)})
        for (setting, method), x, y, a, b in zip(labels, xs, ys, ra, rb):
            movement.append({"benchmark": bench, "metric": col, "setting": setting,
                             "method": method_label(cfg, setting, method), judge_a: round(x, 3), judge_b: round(y, 3),
                             "change": round(y - x, 3), f"rank_{judge_a}": a, f"rank_{judge_b}": b})
    items = _item_agreement(cfg, results, judge_a, judge_b)
    return {"judge_a": judge_a, "judge_b": judge_b, "metrics": metrics, "items": items, "movement": movement}


_MT_MODEL_RESULT = {"model_1": 1.0, "tie": 0.5, "model_2": 0.0}


def _answer_lengths(path: Path) -> dict[str, int]:
    """Characters of every answer (all turns) of an answers file, by question id."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            a = json.loads(line)
            out[str(a["question_id"])] = sum(len(t) for t in a.get("turns", []))
    return out


def _reliability_items(protocol: str, records: list[dict]) -> tuple[list[bool], list[bool], dict[str, float]]:
    """(per-prompt position flips, per-verdict ties, per-prompt model result 0..1) of one judgments file.

    A flip: the two orders of one prompt (Arena-Hard's two games, one MT-Bench pairwise turn's two games)
    give different results for the model (win / tie / loss). AlpacaEval judges each instruction once (its
    order is a coin flip), so it has no flips; its identical-output draws (set by rule, never judged) are
    not counted as ties.
    """
    flips, ties, result = [], [], {}
    for r in records:
        q = str(r["question_id"])
        if protocol == "alpaca_eval2":
            value = model_result(r.get("preference"))
            if value is None or (r.get("output_1") == r.get("output_2") and r.get("raw_completion") is None):
                continue
            ties.append(abs(value - 0.5) < 1e-9)
            result[q] = value
        elif protocol == "arena_hard":
            games = [(MODEL_RESULT[g][x.get("score")]) for g, x in zip(("game1", "game2"), r.get("games", []))
                     if x.get("score") in MODEL_RESULT[g]]
            ties += [v == 0.5 for v in games]
            if len(games) == 2:
                flips.append(games[0] != games[1])
            if games:
                result[q] = sum(games) / len(games)
        elif protocol == "mt_bench":
            rows = []
            for p in r.get("pairwise", []):
                gs = [p.get(k) for k in ("g1_winner", "g2_winner") if p.get(k) in _MT_MODEL_RESULT]
                ties += [g == "tie" for g in gs]
                if len(gs) == 2:
                    flips.append(gs[0] != gs[1])
                    # FastChat: a win needs both orders, a loss both, anything else is a tie
                    rows.append(1.0 if gs == ["model_1"] * 2 else 0.0 if gs == ["model_2"] * 2 else 0.5)
            if rows:
                result[q] = sum(rows) / len(rows)
        else:
            raise DataError(f"judge reliability: unknown protocol '{protocol}'")
    return flips, ties, result


def length_bias(results_by_prompt: list[tuple[float, float]]) -> tuple[float | None, float | None]:
    """(Pearson r, least-squares slope in win-rate points per 100 characters) of the model's per-prompt
    result (0 loss .. 1 win) against its answer's length minus the baseline's; None when undefined."""
    import numpy as np

    if len(results_by_prompt) < 3:
        return None, None
    x = np.array([d for d, _ in results_by_prompt], dtype=float)
    y = 100.0 * np.array([w for _, w in results_by_prompt], dtype=float)
    if x.std() == 0 or y.std() == 0:
        return None, None
    r = float(np.corrcoef(x, y)[0, 1])
    slope = float(np.cov(x, y, bias=True)[0, 1] / x.var()) * 100
    return r, slope


def judge_reliability(cfg: dict, results: Path, judge: str) -> list[dict]:
    """Per benchmark, how reliable ``judge`` is, pooled over every (setting, method) of the preset:

    ``flip_rate`` (share of prompts whose result for the model changes when the two answers swap places;
    None for a protocol without swapped games), ``tie_share`` (share of the judge's verdicts that are
    ties), ``length_r`` and ``length_slope`` (Pearson r and the least-squares slope, in win-rate points per
    100 characters, of the per-prompt result against the answer's length minus the baseline answer's).
    Raises ``DataError`` naming a missing judgments file; without an answers file the length bias is None
    and ``note`` names the file.
    """
    results = Path(results)
    paths = ResultPaths(results)
    out = []
    for bench, bc in cfg["benchmarks"].items():
        protocol = bc["protocol"]
        flips, ties, pairs, notes, no_length = [], [], [], [], []
        for setting in cfg["settings"]:
            for method in cfg["methods"]:
                path = Path(paths.judgments(bench, judge, setting, method))
                if not path.exists():
                    raise DataError(f"judge reliability: missing judgments file {path}")
                records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
                f, t, res = _reliability_items(protocol, records)
                flips += f
                ties += t
                if not res:
                    continue
                if protocol == "alpaca_eval2":  # the judged texts are in the records
                    lengths = {str(r["question_id"]): len(r.get("output_2") or "") - len(r.get("output_1") or "")
                               for r in records}
                else:
                    answers, reference = Path(paths.answers(bench, setting, method)), Path(paths.baseline_answers(bench, setting, bc))
                    absent = [str(p) for p in (answers, reference) if not p.exists()]
                    if absent:
                        # never a length bias from part of the prompts: none at all, saying why
                        no_length.append(f"no length bias: missing answers file {absent[0]}")
                        continue
                    mine, base = _answer_lengths(answers), _answer_lengths(reference)
                    lost = [q for q in res if q not in mine or q not in base]
                    if lost:
                        raise DataError(f"judge reliability: {path} judges question {lost[0]!r}, which {answers} or "
                                        f"{reference} does not answer")
                    lengths = {q: mine[q] - base[q] for q in res}
                pairs += [(lengths[q], w) for q, w in res.items() if q in lengths]
        if protocol == "alpaca_eval2":
            notes.append("one game per instruction (order by coin flip): no position flips to count")
        if protocol == "mt_bench" and not ties:
            notes.append("single grading only: no pairwise games, so no flips, ties or win-vs-length")
        r, slope = length_bias(pairs) if not no_length else (None, None)
        notes += no_length[:1]
        out.append({"judge": judge, "benchmark": bench, "protocol": protocol,
                    "flip_rate": (sum(flips) / len(flips)) if flips else None, "n_flip_items": len(flips),
                    "tie_share": (sum(ties) / len(ties)) if ties else None, "n_verdicts": len(ties),
                    "length_r": r, "length_slope": slope, "n_length": 0 if no_length else len(pairs), "note": "; ".join(notes)})
    return out


def _fmt(x, nd=2) -> str:
    return "—" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def render_markdown(reports: list[dict], cfg: dict) -> str:
    """The agreement report(s) as Markdown."""
    lines = ["# Judge agreement", "",
             "Same cached answers, judged again by another judge. Rank correlations are over the (setting, method) "
             "scores of each metric (undefined, '—', with fewer than 3 methods or when one judge gives every method "
             "the same score); item agreement compares the two judges' verdicts on the same question and game/turn."]
    for rep in reports:
        a, b = rep["judge_a"], rep["judge_b"]
        versions = ", ".join(f"{k} {v.get('version')}" for k, v in cfg["benchmarks"].items())
        lines += ["", f"## {b} vs {a}", "", f"Benchmarks: {versions}.", "",
                  "| benchmark | metric | methods | Spearman ρ | Kendall τ | mean abs. score change |", "|---|---|---|---|---|---|"]
        for m in rep["metrics"]:
            lines.append(f"| {m['benchmark']} | {m['metric']} | {m['n_methods']} | {_fmt(m['spearman'])} | "
                         f"{_fmt(m['kendall'])} | {_fmt(m['mean_abs_change'])} |")
        lines += ["", "| benchmark | verdict | items | agreement | mean abs. rating difference |", "|---|---|---|---|---|"]
        for it in rep["items"]:
            lines.append(f"| {it['benchmark']} | {it['verdict']} | {it['n_items']} | {100 * it['agreement']:.1f}% | "
                         f"{_fmt(it['mean_abs_diff'])} |")
        lines += ["", f"How each method's score moves ({a} → {b}; rank 1 = best):", "",
                  f"| benchmark | metric | setting | method | {a} | {b} | change | rank {a} → {b} |",
                  "|---|---|---|---|---|---|---|---|"]
        for mv in rep["movement"]:
            lines.append(f"| {mv['benchmark']} | {mv['metric']} | {mv['setting']} | {mv['method']} | {_fmt(mv[a])} | "
                         f"{_fmt(mv[b])} | {mv['change']:+.2f} | {mv[f'rank_{a}']:g} → {mv[f'rank_{b}']:g} |")
    return "\n".join(lines) + "\n"


def render_reliability(rows: list[dict]) -> str:
    """The judge-reliability section (Markdown)."""
    pct = lambda x: "—" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    lines = ["", "## Judge reliability", "",
             "Per judge and benchmark, pooled over every setting and method: the position-flip rate (share of prompts "
             "whose result for the model changes when the two answers swap places: Arena-Hard's two games, MT-Bench "
             "pairwise's two orders), the share of verdicts that are ties, and the length bias: Pearson r and the "
             "least-squares slope (win-rate points per 100 characters) of the per-prompt result (loss 0, tie 0.5, "
             "win 1) against the answer's length minus the baseline answer's.", "",
             "| judge | benchmark | position flips | tie share | length r | slope (points / 100 chars) | note |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        of = lambda x, n: "—" if x is None else f"{pct(x)} of {n}"  # noqa: E731
        slope = "—" if r["length_slope"] is None else f"{r['length_slope']:+.1f} (n={r['n_length']})"
        lines.append(f"| {r['judge']} | {r['benchmark']} | {of(r['flip_rate'], r['n_flip_items'])} | "
                     f"{of(r['tie_share'], r['n_verdicts'])} | {_fmt(r['length_r'])} | {slope} | {r['note'] or ''} |")
    return "\n".join(lines) + "\n"


def build_agreement(cfg: dict, results: Path, out_dir: Path, judges: list[str] | None = None, log=print) -> list[dict]:
    """Compare every judge with the reference judge (first of ``judges``, default the table judge) and write
    ``judge_agreement.{json,csv,md}``; needs at least two judges."""
    judges = list(judges or [cfg["table_judge"], *[j for j in cfg["judges"] if j != cfg["table_judge"]]])
    unknown = [j for j in judges if j not in cfg["judges"]]
    if unknown:
        raise ConfigError(f"--judges: {unknown} not judges of preset '{cfg['preset']}' (judges: {', '.join(cfg['judges'])})")
    if len(judges) < 2:
        raise ConfigError(f"judge agreement needs at least two judges; preset '{cfg['preset']}' has {judges} "
                          "(add a second judge to its 'judges', e.g. verifier-lenient for the tiny preset)")
    reports = [judge_agreement(cfg, results, judges[0], j) for j in judges[1:]]
    reliability = [row for j in judges for row in judge_reliability(cfg, results, j)]
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "judge_agreement.json", {"reports": reports, "reliability": reliability})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["judge_a", "judge_b", "benchmark", "kind", "metric_or_verdict", "n", "spearman", "kendall",
                "agreement", "mean_abs_diff", "value"])
    for rep in reports:
        for m in rep["metrics"]:
            w.writerow([rep["judge_a"], rep["judge_b"], m["benchmark"], "scores", m["metric"], m["n_methods"],
                        m["spearman"], m["kendall"], "", m["mean_abs_change"]])
        for it in rep["items"]:
            w.writerow([rep["judge_a"], rep["judge_b"], it["benchmark"], "items", it["verdict"], it["n_items"], "", "",
                        it["agreement"], it["mean_abs_diff"]])
    for r in reliability:  # one judge each: judge_b empty, the number in "value"
        for name, key, n in (("position-flip rate", "flip_rate", "n_flip_items"), ("tie share", "tie_share", "n_verdicts"),
                             ("length r", "length_r", "n_length"), ("length slope per 100 chars", "length_slope", "n_length")):
            w.writerow([r["judge"], "", r["benchmark"], "reliability", name, r[n], "", "", "", "", r[key]])
    atomic_write_text(out_dir / "judge_agreement.csv", buf.getvalue())
    md = render_markdown(reports, cfg) + render_reliability(reliability)
    atomic_write_text(out_dir / "judge_agreement.md", md)
    log(md)
    return reports
