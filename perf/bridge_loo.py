"""The bridge's leave-one-model-out error on the archived annotator pairs, and the default panel's cost per judge.

1. LOO error: each archived annotator config other than the retired AE2 judge plays the "current judge" on
   the panel models whose archives hold it (``reproduce bridge --replay``); the calibration is fitted on
   the other models and predicts the left-out model's retired win rate. Goal: within ~1 point (the retired
   win rate's own standard error) wherever at least two other models are there to learn from; the script
   says how many there were and how far off each prediction was.
2. Cost: every current judge file (kind openai, not retired) asked to judge the default panels of both
   bridges (AlpacaEval 2: the manifest's panel, one game per pair; Arena-Hard v0.1: two games per prompt):
   requests, prompt tokens (tiktoken when its file is cached, else characters / 4), the output-token upper
   bound (max_tokens per request) and the dollars at the judge file's list prices (an upper bound: Arena-Hard
   judges rarely use all 2048 output tokens). The retired gpt-4-1106-preview is priced too, for reference.

Needs the archived files (``$REPRODUCE_BENCHMARK_MIRROR`` with the archive, fixtures and benchmark folders);
no network, no key.

    python perf/bridge_loo.py [--json out.json] [--skip-cost]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reproduce.config import ROOT, load_config, load_yaml  # noqa: E402

GOAL_POINTS = 1.0
REPLAYS = ("alpaca_eval_cot_gpt4_turbo_fn", "alpaca_eval_gpt4_turbo_fn")


def loo_figures() -> list[dict]:
    """One row per (replayed annotator, left-out model)."""
    from reproduce.bridge.alpaca import bridge_alpaca
    from reproduce.bridge.archives import load_manifest

    man = load_manifest("alpaca_eval")
    bench = load_config({"preset": "paper"})["benchmarks"]["alpaca_eval2"]
    rows = []
    for annotator in REPLAYS:
        rep = bridge_alpaca(man, bench, annotator=annotator, rounds=200, log=lambda m: None)
        models = [r["model"] for r in rep["models"]]
        if not rep["loo"]:
            rows.append({"annotator": annotator, "model": models[0], "n_train_models": 0, "error": None,
                         "note": f"only {', '.join(models)} has this annotator's archive: nothing to leave out"})
        for r in rep["loo"]:
            rows.append({"annotator": annotator, **r, "within_goal": abs(r["error"]) <= GOAL_POINTS,
                         "goal_applies": r["n_train_models"] >= 2})
    return rows


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
        t0 = time.time()
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
        print(f"  ({bench_name}: rendered {len(judges)} x {n} requests in {time.time() - t0:.0f}s)", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    """Print both tables; exit 1 if a model with >= 2 others to learn from misses the 1-point goal."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--skip-cost", action="store_true", help="only the leave-one-model-out figures")
    args = ap.parse_args(argv)
    loo = loo_figures()
    print("Leave-one-model-out error (archived annotator as the current judge -> retired AE2 judge's win rate):")
    print(f"{'current (replayed)':<32} {'left out':<20} {'retired WR':>10} {'predicted':>9} {'error':>7} {'learned from':>12}")
    for r in loo:
        if r.get("error") is None:
            print(f"{r['annotator']:<32} {r['model']:<20} {'':>10} {'':>9} {'—':>7} {0:>12}  ({r['note']})")
            continue
        print(f"{r['annotator']:<32} {r['model']:<20} {r['actual']:>10.2f} {r['predicted']:>9.2f} {r['error']:>+7.2f} "
              f"{r['n_train_models']:>12}")
    applies = [r for r in loo if r.get("goal_applies")]
    if applies:
        print(f"goal (|error| <= {GOAL_POINTS:g} with >= 2 models to learn from): "
              f"{sum(r['within_goal'] for r in applies)}/{len(applies)} met")
    else:
        print(f"goal (|error| <= {GOAL_POINTS:g} with >= 2 models to learn from): not testable here - the archives "
              "hold a second annotator config for at most 2 models, so each prediction learns from 1 model; "
              "max |error| " + (f"{max(abs(r['error']) for r in loo if r.get('error') is not None):.2f} points"
                                if any(r.get("error") is not None for r in loo) else "n/a"))
    out = {"loo": loo}
    if not args.skip_cost:
        out["cost"] = cost_figures()
        print("\nDefault panel's cost per judge (nothing cached; output tokens and dollars are upper bounds):")
        print(f"{'judge':<22} {'benchmark':<13} {'requests':>8} {'prompt tok':>11} {'output tok <=':>13} {'$ <=':>8}")
        for r in out["cost"]:
            tag = " (retired; reference)" if r["retired"] else ""
            print(f"{r['judge']:<22} {r['benchmark']:<13} {r['requests']:>8} {r['prompt_tokens']:>11,} "
                  f"{r['output_tokens_max']:>13,} {r['cost_usd_max']:>8.2f}{tag}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 1 if any(not r["within_goal"] for r in applies) else 0


if __name__ == "__main__":
    sys.exit(main())
