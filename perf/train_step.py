"""Per-step training cost of the shared trainer on one tiny model, batch and data (CPU).

Prints the median forward+backward time of a step for DPO (precomputed reference), TGDPO (precomputed
reference + guidance token log-probs) and TGDPO live (three models in memory), and the two ratios the
training issue sets goals for: TGDPO/DPO <= 1.05 and live/precomputed >= 1.4.

    python perf/train_step.py [--hidden 256 --layers 4 --batch 16 --steps 30]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


def build_fixture(work: Path, hidden: int, layers: int, n_pairs: int) -> tuple[Path, Path, Path]:
    """A tiny model, a perturbed copy as guidance model, and preference pairs."""
    import torch

    from reproduce.data.prefs import write_pairs
    from reproduce.tiny.sft import init_tiny_base
    from reproduce.tiny.task import load_task

    task = load_task("addition")
    base, guide = work / "base", work / "guide"
    tok, model = init_tiny_base(task, base, random.Random(0), vocab_size=320, corpus_size=500,
                                hidden_size=hidden, num_layers=layers, head_dim=64)
    model.save_pretrained(str(base))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(str(guide))
    tok.save_pretrained(str(guide))
    pairs = []
    for i, p in enumerate(task.split("prefs")[:n_pairs]):
        right = str(task.solve(p))
        pairs.append({"pair_id": f"p{i}", "prompt": [{"role": "user", "content": p}],
                      "chosen": [{"role": "assistant", "content": right}],
                      "rejected": [{"role": "assistant", "content": right[::-1] + "0" * (i % 3)}]})
    prefs = work / "prefs.jsonl"
    write_pairs(pairs, {"pairs": len(pairs)}, prefs)
    return base, guide, prefs


def time_interleaved(trainers: dict, batch_size: int, steps: int) -> dict[str, float]:
    """Median seconds of one forward+backward step per trainer. Steps of the trainers alternate, so load
    from other processes on a loaded machine affects them alike; 3 warm-up rounds are not counted."""
    batches = {}
    for name, tr in trainers.items():
        tr.model.train()
        batches[name] = [tr.data_collator([tr.train_dataset[(i * batch_size + j) % len(tr.train_dataset)]
                                           for j in range(batch_size)]) for i in range(steps + 3)]
    times = {name: [] for name in trainers}
    for i in range(steps + 3):
        for name, tr in trainers.items():
            t0 = time.perf_counter()
            loss = tr.compute_loss(tr.model, batches[name][i])
            loss.backward()
            tr.model.zero_grad(set_to_none=True)
            if i >= 3:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from reproduce.train.run import build_trainer

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base, guide, prefs = build_fixture(work, args.hidden, args.layers, n_pairs=args.batch * 8)
        common = {"beta": 0.1, "learning_rate": 1e-5, "per_device_batch_size": args.batch, "max_length": 64}
        runs = {
            "dpo_precomputed": {**common, "loss": "dpo"},
            "tgdpo_precomputed": {**common, "loss": "tgdpo", "alpha": 0.5, "guide": "g"},
            "tgdpo_live": {**common, "loss": "tgdpo", "alpha": 0.5, "guide": "g", "token_rewards": "live"},
        }
        trainers = {name: build_trainer(method, base, prefs, work / f"ckpt-{name}",
                                        guide_dir=guide if method["loss"] == "tgdpo" else None,
                                        cache_dir=work / "cache")[0] for name, method in runs.items()}
        seconds = time_interleaved(trainers, args.batch, args.steps)
    ratio = seconds["tgdpo_precomputed"] / seconds["dpo_precomputed"]
    speedup = seconds["tgdpo_live"] / seconds["tgdpo_precomputed"]
    result = {"config": vars(args), "median_step_s": {k: round(v, 5) for k, v in seconds.items()},
              "tgdpo_over_dpo": round(ratio, 3), "live_over_precomputed": round(speedup, 3)}
    print(json.dumps(result, indent=2))
    print(f"TGDPO (precomputed) / DPO (precomputed ref) per step: {ratio:.3f} (goal <= 1.05)")
    print(f"TGDPO live / precomputed per step: {speedup:.2f}x (goal >= 1.4x)")
    return 0 if ratio <= 1.05 and speedup >= 1.4 else 1


if __name__ == "__main__":
    sys.exit(main())
