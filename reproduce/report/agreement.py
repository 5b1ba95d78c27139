"""Judge agreement: how much a second judge changes the results of the same cached answers.

Per benchmark metric (the Table-1 columns): Spearman and Kendall rank correlation of the methods' scores
between the reference judge (the preset's table judge) and each other judge, and each method's score and
rank under both. Per benchmark: the per-item agreement rate of the two judges' verdicts on the same
(question, game/turn) — outcome agreement (which side won, or tie) for pairwise protocols, exact agreement
and mean absolute difference for MT-Bench ratings. Writes ``judge_agreement.{csv,md,json}``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from reproduce.config import ConfigError
from reproduce.io import DataError, atomic_write_json, atomic_write_text
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


def judge_agreement(cfg: dict, results: Path, judge_a: str, judge_b: str) -> dict:
    """Everything the agreement report says about ``judge_b`` against ``judge_a`` (see module docstring).

    Raises ``DataError`` when a score or judgments file the comparison needs is missing: a correlation over
    fewer methods than the table has would be silently wrong.
    """
    results = Path(results)
    metrics, items, movement = [], [], []
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
                                        f"(expected {results}/scores/{bench}/{judge}/{setting}/{method}.json); "
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
    for bench, bc in cfg["benchmarks"].items():
        totals: dict[str, list] = {}
        for setting in cfg["settings"]:
            for method in cfg["methods"]:
                va, vb = [], []
                for judge, dest in ((judge_a, va), (judge_b, vb)):
                    path = results / "judgments" / bench / judge / setting / f"{method}.jsonl"
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
    return {"judge_a": judge_a, "judge_b": judge_b, "metrics": metrics, "items": items, "movement": movement}


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
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "judge_agreement.json", {"reports": reports})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["judge_a", "judge_b", "benchmark", "kind", "metric_or_verdict", "n", "spearman", "kendall",
                "agreement", "mean_abs_diff"])
    for rep in reports:
        for m in rep["metrics"]:
            w.writerow([rep["judge_a"], rep["judge_b"], m["benchmark"], "scores", m["metric"], m["n_methods"],
                        m["spearman"], m["kendall"], "", m["mean_abs_change"]])
        for it in rep["items"]:
            w.writerow([rep["judge_a"], rep["judge_b"], it["benchmark"], "items", it["verdict"], it["n_items"], "", "",
                        it["agreement"], it["mean_abs_diff"]])
    atomic_write_text(out_dir / "judge_agreement.csv", buf.getvalue())
    md = render_markdown(reports, cfg)
    atomic_write_text(out_dir / "judge_agreement.md", md)
    log(md)
    return reports
