"""Peak host memory of TGDPO training against DPO training: same model, data, batch and processes (CPU).

Runs ``reproduce train`` for DPO (precomputed reference) and TGDPO (precomputed reference + guidance
log-probs) one after the other, under ``accelerate launch`` with config/accelerate/rehearsal_cpu.yaml
(``--processes 2``, the rehearsal's launcher) or as one plain process (``--processes 1``), sampling the
summed RSS of the launcher and all its ranks every 50 ms. Prints both peaks and TGDPO/DPO (goal <= 1.05:
the guide is freed once its log-probs are cached and no reference copy is kept).

    python perf/train_memory.py [--hidden 512 --layers 8 --pairs 64 --steps 8 --processes 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_step import build_fixture  # noqa: E402  (the step benchmark's model, guide and pairs)


def tree_rss(proc) -> dict[int, int]:
    """Bytes resident now in ``proc`` and each of its descendants, by pid."""
    import psutil

    out = {}
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return out
    for p in procs:
        try:
            out[p.pid] = p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return out


def run_peak(argv: list[str], log: Path) -> dict:
    """Run ``argv``; returns its peak summed RSS, the peak of each process (launcher and ranks) and the
    wall seconds. Fails with the log tail on error."""
    import psutil

    t0 = time.monotonic()
    peak, per_pid = 0, {}
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            now = tree_rss(ps)
            peak = max(peak, sum(now.values()))
            for pid, rss in now.items():
                per_pid[pid] = max(per_pid.get(pid, 0), rss)
            time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:6]}... failed (rc {proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
    return {"peak": peak, "per_process": sorted(per_pid.values(), reverse=True), "wall_s": time.monotonic() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--processes", type=int, default=2, choices=[1, 2])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base, guide, prefs = build_fixture(work, args.hidden, args.layers, n_pairs=args.pairs)
        common = {"beta": 0.1, "learning_rate": 1e-5, "per_device_batch_size": 2, "gradient_accumulation_steps": 2,
                  "max_length": 64, "max_steps": args.steps, "save_steps": 10_000}
        methods = {"dpo": {**common, "loss": "dpo"}, "tgdpo": {**common, "loss": "tgdpo", "alpha": 0.5, "guide": "g"}}
        launcher = ([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                     str(ROOT / "config/accelerate/rehearsal_cpu.yaml"), "-m", "reproduce.cli"]
                    if args.processes == 2 else [sys.executable, "-m", "reproduce.cli"])
        runs = {}
        for name, method in methods.items():
            argv = [*launcher, "train", "--job", json.dumps({"method_config": method}), "--threads", "2",
                    "--base", str(base), "--prefs", str(prefs), "--cache", str(work / f"cache-{name}"),
                    "--checkpoints", str(work / f"ckpt-{name}"), "--out", str(work / f"model-{name}")]
            if name == "tgdpo":
                argv += ["--guide", str(guide)]
            runs[name] = run_peak(argv, work / f"{name}.log")
    mib = lambda b: round(b / 2**20, 1)  # noqa: E731
    ratio = runs["tgdpo"]["peak"] / runs["dpo"]["peak"]
    print(json.dumps({"config": vars(args), "peak_rss_mib": {k: mib(r["peak"]) for k, r in runs.items()},
                      "peak_rss_mib_per_process": {k: [mib(b) for b in r["per_process"][:4]] for k, r in runs.items()},
                      "wall_s": {k: round(r["wall_s"], 1) for k, r in runs.items()},
                      "tgdpo_over_dpo": round(ratio, 3)}, indent=2))
    print(f"peak RSS, {args.processes} process(es) summed: DPO {mib(runs['dpo']['peak'])} MiB, "
          f"TGDPO {mib(runs['tgdpo']['peak'])} MiB; TGDPO/DPO {ratio:.3f} (goal <= 1.05)")
    return 0 if ratio <= 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
