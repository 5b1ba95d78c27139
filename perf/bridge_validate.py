"""Validation of the bridge on real archived verdicts: leave-one-model-out error, interval width and coverage.

Every (current judge, model) pair the archives allow: each AlpacaEval 2 annotator config other than the
retired judge whose published leaderboard is listed in ``evals/archives/alpaca_eval.yaml`` plays the current
judge. Per method (the per-item calibration where that annotator's per-item verdicts are archived beside the
retired judge's, and each model-level map form over the two leaderboards) and per judge, each model is left
out, predicted from the others, and checked against its archived retired win rate: the error, the 95%
prediction interval's half-width (in points, half of high - low) and whether the archived value fell inside.
"default" is the method each report would pick (smallest LOO RMSE among those with intervals).

Benchmarks (printed, not enforced): coverage over all real pairs of the default >= 90% at nominal 95%; median
half-width <= 6 points; LOO RMSE with gpt-5-nano as the current judge <= 3.0 points. Arena-Hard cannot be
validated here: no current judge's scores on its archived answers are archived.

Needs the archived files (``$REPRODUCE_BENCHMARK_MIRROR``); no network, no key.

    python perf/bridge_validate.py [--json out.json] [--cost]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reproduce.config import ROOT, load_config, load_yaml  # noqa: E402

BENCHMARKS = {"coverage": 0.90, "median_half_width": 6.0, "gpt5_nano_rmse": 3.0}
NANO = "weighted_alpaca_eval_gpt5_nano"


def judge_methods(annotator: str, man, bench) -> list:
    """Every method that ``annotator`` as the current judge allows, validated LOO (``reproduce.bridge.methods``)."""
    from reproduce.bridge.alpaca import bridge_alpaca
    from reproduce.bridge.leaderboards import board_points, read_board, reference_length
    from reproduce.bridge.methods import model_level

    if any(man.has(m, annotator) for m in man.models):
        rep = bridge_alpaca(man, bench, annotator=annotator, rounds=50, log=lambda m: None)
        return rep["_methods"]
    retired = read_board(man.leaderboard(man.retired_judge["annotator"]))
    board = read_board(man.leaderboard(annotator))
    return model_level(board_points(board, retired, man.reference_model),
                       reference_length([board, retired], man.reference_model),
                       f"published leaderboards {annotator} and {man.retired_judge['annotator']}")


def summarise(rows: list[dict]) -> dict:
    """LOO RMSE, max |error|, median half-width and coverage of LOO rows."""
    errs = [r["error"] for r in rows]
    with_pi = [r for r in rows if r.get("low") is not None]
    hw = [(r["high"] - r["low"]) / 2 for r in with_pi]
    return {"n": len(rows), "rmse": math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else None,
            "max_abs": max(map(abs, errs)) if errs else None, "n_interval": len(with_pi),
            "median_half_width": statistics.median(hw) if hw else None,
            "covered": sum(bool(r["inside"]) for r in with_pi)}


def validate() -> dict:
    """Rows per (judge, method) plus the pooled figures and the benchmarks' verdicts."""
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.methods import choose_default

    man = load_manifest("alpaca_eval")
    bench = load_config({"preset": "paper"})["benchmarks"]["alpaca_eval2"]
    table, pooled = [], {}
    for annotator in man.leaderboards:
        if annotator == man.retired_judge["annotator"]:
            continue
        methods = judge_methods(annotator, man, bench)
        default = choose_default(methods)
        for m, name in [(m, m.name) for m in methods] + [(default, "default: " + default.name)]:
            rows = [{**r, "judge": annotator} for r in m.loo]
            table.append({"judge": annotator, "method": name, "models": m.n_models, "loo": rows, **summarise(rows)})
            pooled.setdefault("default" if name.startswith("default: ") else name, []).extend(rows)
    totals = {k: summarise(v) for k, v in pooled.items()}
    nano = next((t for t in table if t["judge"] == NANO and t["method"].startswith("default")), None)
    d = totals["default"]
    verdicts = {
        "coverage": (d["covered"] / d["n_interval"] if d["n_interval"] else None, BENCHMARKS["coverage"]),
        "median_half_width": (d["median_half_width"], BENCHMARKS["median_half_width"]),
        "gpt5_nano_rmse": (nano["rmse"] if nano else None, BENCHMARKS["gpt5_nano_rmse"]),
    }
    return {"table": table, "totals": totals, "benchmarks": verdicts}


def cost_figures() -> list[dict]:
    """One row per (judge, benchmark): requests, tokens, dollars of the default panel (nothing cached)."""
    from reproduce.benchmarks import alpaca_eval2, arena_hard
    from reproduce.bridge.alpaca import load_panel
    from reproduce.bridge.arena import arena_jobs
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.rejudge import alpaca_job, cost, render
    from reproduce.judges.openai_judge import OpenAIJudge

    cfg = load_config({"preset": "paper"})
    judges = {}
    for path in sorted((ROOT / "evals" / "judges").glob("*.yaml")):
        jc = load_yaml(path)
        if jc.get("kind") == "openai" and not path.stem.startswith("standin") and path.stem != "local-vllm" and \
                (not jc.get("retired") or path.stem == "gpt-4-1106-preview"):
            judges[path.stem] = OpenAIJudge(path.stem, jc, require_key=False)
    rows = []
    for bench_name, manifest in (("alpaca_eval2", "alpaca_eval"), ("arena_hard", "arena_hard_v0.1")):
        bench = cfg["benchmarks"][bench_name]
        man = load_manifest(manifest)
        if bench_name == "alpaca_eval2":
            jobs = [alpaca_job(m, items, man.reference_model)
                    for m, items in load_panel(man, bench, man.panel, None, None).items()]
            templates = alpaca_eval2.load_templates(bench)
        else:
            jobs = arena_jobs(man, bench, man.panel)
            templates = arena_hard.load_templates(bench)
        for name, judge in judges.items():
            n, todo = render(bench, judge, jobs, None, templates)  # per judge: its decoding overrides count
            rows.append({"benchmark": bench_name, "panel": len(man.panel), **cost(judge, n, todo),
                         "retired": bool(judge.config.get("retired"))})
    return rows


def _f(x, nd=2) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def print_table(out: dict) -> None:
    """The validation table (markdown, as docs/bridge.md shows it) and the benchmarks."""
    print("| current judge (annotator) | method | models | LOO RMSE | max abs error | median half-width | coverage |")
    print("|---|---|---|---|---|---|---|")
    for t in out["table"]:
        cov = f"{t['covered']}/{t['n_interval']}" if t["n_interval"] else "no interval (< 3 models)"
        print(f"| {t['judge']} | {t['method']} | {t['models']} | {_f(t['rmse'])} | {_f(t['max_abs'], 1)} | "
              f"{_f(t['median_half_width'])} | {cov} |")
    print("\nPooled over all judges:")
    print("| method | pairs | LOO RMSE | median half-width | coverage |")
    print("|---|---|---|---|---|")
    for k, t in out["totals"].items():
        cov = f"{t['covered']}/{t['n_interval']} ({100 * t['covered'] / t['n_interval']:.1f}%)" if t["n_interval"] else "—"
        print(f"| {k} | {t['n']} | {_f(t['rmse'])} | {_f(t['median_half_width'])} | {cov} |")
    b = out["benchmarks"]
    cov, goal = b["coverage"]
    print(f"\ncoverage of the default over all real pairs: {_f(100 * cov if cov is not None else None, 1)}% "
          f"(benchmark >= {100 * goal:.0f}%): {'met' if cov is not None and cov >= goal else 'NOT met'}")
    hw, goal = b["median_half_width"]
    print(f"median half-width of the default: {_f(hw)} points (benchmark <= {goal:g}): "
          f"{'met' if hw is not None and hw <= goal else 'NOT met'}")
    rmse, goal = b["gpt5_nano_rmse"]
    print(f"LOO RMSE with gpt-5-nano as the current judge (default method): {_f(rmse)} points (benchmark <= {goal:g}): "
          + ("met" if rmse is not None and rmse <= goal else f"NOT met, {_f(rmse - goal if rmse else None)} points off"))
    print("Arena-Hard: not validated here (no current judge's scores of its archived answers are archived).")


def main(argv=None) -> int:
    """Print the validation table (and with ``--cost`` the default panel's cost per judge)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--cost", action="store_true", help="also price the default panels for every judge file")
    args = ap.parse_args(argv)
    out = validate()
    print_table(out)
    if args.cost:
        out["cost"] = cost_figures()
        print("\nDefault panel's cost per judge (nothing cached; output tokens and dollars are upper bounds):")
        print(f"{'judge':<22} {'benchmark':<13} {'requests':>8} {'prompt tok':>11} {'output tok <=':>13} {'$ <=':>8}")
        for r in out["cost"]:
            tag = " (retired; reference)" if r["retired"] else ""
            print(f"{r['judge']:<22} {r['benchmark']:<13} {r['requests']:>8} {r['prompt_tokens']:>11,} "
                  f"{r['output_tokens_max']:>13,} {r['cost_usd_max']:>8.2f}{tag}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
