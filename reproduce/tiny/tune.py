"""Choose a tiny setting's training hyperparameters on its preference split, never on the evaluation prompts.

The preference split's prompts are divided once, by a hash of the prompt, into *fit* (4 in 5) and *dev*
(1 in 5). For every method of the recipe and every learning rate of the grid, the shared trainer
(``reproduce.train.run.train_method``, exactly as the workflow runs it) trains from the setting's starting
model on the on-policy pairs of the fit prompts only; the trained model then answers every dev prompt
greedily and the task's verifier counts the right answers. TGDPO is guided by the DPO model trained with
the same learning rate on the same fit pairs. Per method the learning rate with the highest dev accuracy
wins (ties: the smaller rate). The evaluation split (the benchmarks' questions) is never read.

    snakemake --cores all -d WORK results/data/tiny-carry/prefs.jsonl --config preset=tiny-carry
    python -m reproduce.tiny.tune --preset tiny-carry --workdir WORK

prints one line per (method, learning rate) and the choice, and writes ``WORK/tune/<setting>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from reproduce.config import ConfigError, load_config
from reproduce.io import DataError, atomic_write_json, atomic_write_jsonl, read_jsonl
from reproduce.paths import RESULTS, ResultPaths

LEARNING_RATES = (1.0e-6, 3.0e-6, 1.0e-5, 3.0e-5, 1.0e-4)  # the grid behind config/recipes/tiny-carry.yaml
DEV_EVERY = 5  # one prompt in five is a dev prompt


def is_dev(prompt: str) -> bool:
    """Whether a preference-split prompt is held out for choosing hyperparameters (fixed by its text)."""
    return int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % DEV_EVERY == 0


def dev_accuracy(model_dir: Path, task, prompts: list[str], max_new_tokens: int, threads: int) -> float:
    """Share of ``prompts`` a model answers right, greedily (the task's verifier)."""
    from reproduce.generate.backends import make_backend

    backend = make_backend({"backend": "hf", "batch_size": 400}, str(model_dir), threads=threads)
    outs = backend.generate([[{"role": "user", "content": p}] for p in prompts], temperature=0.0,
                            max_new_tokens=max_new_tokens)
    return sum(task.is_correct(p, o[0].text) for p, o in zip(prompts, outs)) / len(prompts)


def tune(preset: str, workdir: Path, learning_rates=LEARNING_RATES, threads: int = 2, log=print) -> dict:
    """Train every (method, learning rate) on the fit pairs, score each on the dev prompts; returns
    ``{"setting", "fit_pairs", "dev_prompts", "runs": [...], "chosen": {method: learning rate}}``."""
    from reproduce.tiny.task import load_task
    from reproduce.train.run import train_method

    cfg = load_config({"preset": preset})
    setting = next(iter(cfg["settings"]))
    recipe = cfg["settings"][setting]
    task = load_task(recipe["base"]["task"])
    rp = ResultPaths(Path(workdir) / RESULTS)
    base, prefs = Path(rp.model_dir(setting, "sft")), Path(rp.prefs(setting))
    if not (base / "config.json").exists() or not prefs.exists():
        raise DataError(f"tune: needs {base} and {prefs}; build them first (snakemake -d {workdir} {prefs.relative_to(workdir)} "
                        f"--config preset={preset})")
    dev = [p for p in task.split("prefs") if is_dev(p)]
    fit_pairs = [r for r in read_jsonl(prefs) if not is_dev(r["prompt"][-1]["content"])]
    out = Path(workdir) / "tune" / setting
    fit_file = out / "fit_prefs.jsonl"
    atomic_write_jsonl(fit_file, fit_pairs)
    max_new = recipe["preference_data"].get("max_new_tokens", 16)
    methods = [m for m in cfg["methods"] if m != "sft"]  # the first training seed's (the recipe's) settings
    runs = [{"method": "sft", "learning_rate": None, "dev_accuracy": dev_accuracy(base, task, dev, max_new, threads)}]
    log(f"tune {setting}: {len(fit_pairs)} fit pairs, {len(dev)} dev prompts; sft dev accuracy {runs[0]['dev_accuracy']:.3f}")
    order = sorted(methods, key=lambda m: recipe["methods"][m]["loss"] == "tgdpo")  # guides first
    for m in methods:
        if recipe["methods"][m].get("guide") not in (None, *methods):
            raise DataError(f"tune: {m}'s guide '{recipe['methods'][m]['guide']}' is not one of the preset's methods")
    for lr in learning_rates:
        for m in order:
            mcfg = {**recipe["methods"][m], "learning_rate": lr}
            guide = recipe["methods"][m].get("guide")
            model_dir = out / f"{m}-lr{lr:g}"
            t0 = time.time()
            if not (model_dir / "train_summary.json").exists():
                train_method(mcfg, base, fit_file, model_dir, guide_dir=out / f"{guide}-lr{lr:g}" if guide else None,
                             cache_dir=out / "cache", checkpoint_dir=out / "checkpoints" / model_dir.name, threads=threads,
                             log=lambda msg: None)
            acc = dev_accuracy(model_dir, task, dev, max_new, threads)
            runs.append({"method": m, "learning_rate": lr, "dev_accuracy": acc, "seconds": round(time.time() - t0, 1)})
            log(f"  {m:<11} lr {lr:<8g} dev accuracy {acc:.3f}  ({runs[-1]['seconds']} s)")
    chosen = {}
    for m in methods:
        best = max((r for r in runs if r["method"] == m), key=lambda r: (r["dev_accuracy"], -r["learning_rate"]))
        chosen[m] = best["learning_rate"]
    summary = {"setting": setting, "preset": preset, "fit_pairs": len(fit_pairs), "dev_prompts": len(dev),
               "rule": "per method, the learning rate with the highest greedy dev accuracy (ties: the smaller)",
               "runs": runs, "chosen": chosen}
    atomic_write_json(Path(workdir) / "tune" / f"{setting}.json", summary)
    log("chosen: " + ", ".join(f"{m} lr {lr:g}" for m, lr in chosen.items()))
    return summary


def main(argv=None) -> int:
    """Command line: ``python -m reproduce.tiny.tune --preset tiny-carry --workdir WORK``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny-carry")
    ap.add_argument("--workdir", required=True, help="the Snakemake working directory holding the base model and pairs")
    ap.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    try:
        summary = tune(args.preset, Path(args.workdir), args.learning_rates, args.threads,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary["chosen"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
