"""The machine side of the preflight: free disk at ``results/`` and the hub cache against the plan's
needs, GPUs (here, or on the SLURM partition through ``sinfo``) against the plan's peak, and SLURM itself.

Needs come from the plan (``reproduce/plan/build.py:model_stages``): the trained models, their resumable
checkpoints and TGDPO's log-prob caches go to ``results/``; the base models go to the hub cache (the base
job links them from there). Jobs already done need nothing more.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from reproduce.doctor.hub import cached
from reproduce.doctor.result import FAIL, OK, WARN, Check

COMMAND_TIMEOUT_S = 15  # sinfo / nvidia-smi answer in well under a second when they answer at all
GRES_GPU = re.compile(r"gpu(?::([A-Za-z0-9_.-]+))?:(\d+)")


def existing_ancestor(path: Path) -> Path:
    """The nearest existing folder at or above ``path`` (whose filesystem a new folder would land on)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return path


def hub_cache() -> Path:
    """Where huggingface_hub keeps downloads (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ~/.cache)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def disk_needs(cfg: dict, stages: list[dict]) -> tuple[float, float, list[str]]:
    """(GB for results/, GB for the hub cache, notes) of the jobs not yet done."""
    results_gb = sum(s["disk_gb"] or 0 for s in stages if s["stage"] == "train" and not s["done"])
    cache_gb, notes, seen = 0.0, [], set()
    for s in stages:
        base = cfg["settings"][s["setting"]].get("base") or {}
        if s["stage"] != "base" or s["done"] or base.get("kind") != "hf" or base.get("local_dir"):
            continue
        key = (base["model"], str(base.get("revision") or "main"))
        if key in seen:
            continue
        seen.add(key)
        if cached("model", *key):
            notes.append(f"{key[0]} already cached")
        else:
            cache_gb += s["disk_gb"] or 0
    unknown = [s for s in stages if s["stage"] in ("base", "train") and not s["done"] and s.get("disk_gb") is None]
    if unknown:
        notes.append(f"{len(unknown)} jobs of unknown size not counted")
    return results_gb, cache_gb, notes


def disk_checks(cfg: dict, stages: list[dict], results: Path) -> list[Check]:
    """Free space at results/ and the hub cache (together when they share a filesystem) against the needs."""
    cache = hub_cache()
    results_gb, cache_gb, notes = disk_needs(cfg, stages)
    places = {"results": (existing_ancestor(results), results_gb), "hub cache": (existing_ancestor(cache), cache_gb)}
    by_device: dict[int, list[str]] = {}
    for name, (path, _) in places.items():
        by_device.setdefault(os.stat(path).st_dev, []).append(name)
    checks = []
    for names in by_device.values():
        path = places[names[0]][0]
        need = sum(places[n][1] for n in names)
        free = shutil.disk_usage(path).free / 1e9
        where = " and ".join(f"{n} ({results if n == 'results' else cache})" for n in names)
        detail = (f"{free:,.0f} GB free on {path}, {need:,.0f} GB needed by the jobs not done "
                  f"(the plan's figures){'; ' + '; '.join(notes) if notes else ''}")
        name = f"disk: {' + '.join(names)}"
        if free < need:
            checks.append(Check(FAIL, name, f"{detail}; free space for {where} (or set HF_HOME / HF_HUB_CACHE "
                                            "to a larger filesystem for the base models)"))
        else:
            checks.append(Check(OK, name, detail))
    return checks


def run_command(argv: list[str]) -> tuple[int | None, str]:
    """(exit status or None when the program is missing or hangs, its output or why it did not run)."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except FileNotFoundError:
        return None, f"{argv[0]} not found"
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} did not answer in {COMMAND_TIMEOUT_S} s"
    return out.returncode, (out.stdout if out.returncode == 0 else (out.stderr or out.stdout)).strip()


def local_gpus() -> tuple[list[tuple[str, float]] | None, str]:
    """([(name, memory GB)] of the GPUs this machine sees, or None, why not) via nvidia-smi."""
    rc, text = run_command(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    if rc != 0:
        return None, text.splitlines()[0] if text else f"nvidia-smi exited {rc}"
    gpus = []
    for line in text.splitlines():
        name, _, mib = line.rpartition(",")
        gpus.append((name.strip(), float(mib) * 2**20 / 1e9))
    return gpus, ""


def needs_per_gpu(stages: list[dict]) -> tuple[float | None, float | None]:
    """(training's peak GB per GPU, the largest model's bf16 weights in GB) of the jobs not done."""
    peaks = [s["peak_gpu_gb"] for s in stages if s["stage"] == "train" and not s["done"] and s.get("peak_gpu_gb")]
    weights = [s["disk_gb"] for s in stages if s["stage"] == "base" and s.get("disk_gb")]
    return (max(peaks) if peaks else None), (max(weights) if weights else None)


def gpu_check_local(stages: list[dict], training_gpus: int) -> Check:
    """GPUs on this machine: as many as a training job starts processes on, each holding the plan's peak."""
    from reproduce.plan.assumptions import VLLM_MEMORY_FRACTION

    peak, weights = needs_per_gpu(stages)
    gpus, why = local_gpus()
    if gpus is None:
        return Check(FAIL, "GPUs (this machine)", f"none visible ({why}); the preset trains on {training_gpus} "
                                                  "GPUs (with SLURM, pass --slurm to check the partition instead)")
    smallest = min(mem for _, mem in gpus)
    seen = f"{len(gpus)} x {gpus[0][0]} ({smallest:,.0f} GB)"
    problems = []
    if len(gpus) < training_gpus:
        problems.append(f"a training job starts {training_gpus} processes (the accelerate config's num_processes)")
    if peak is not None and smallest < peak:
        problems.append(f"training's planned peak is {peak:,.0f} GB per GPU")
    if weights is not None and smallest * VLLM_MEMORY_FRACTION < weights:
        problems.append(f"generation loads {weights:,.0f} GB of weights into {VLLM_MEMORY_FRACTION:.0%} of one GPU")
    need = f"plan: training peak {peak or 0:,.0f} GB per GPU on {training_gpus}, largest model {weights or 0:,.0f} GB"
    if problems:
        return Check(FAIL, "GPUs (this machine)", f"{seen}; {'; '.join(problems)}")
    return Check(OK, "GPUs (this machine)", f"{seen}; {need}")


def slurm_checks(stages: list[dict], training_gpus: int, partition: str | None) -> list[Check]:
    """SLURM answering, the partition existing, and its nodes' GPUs (``sinfo``'s generic resources) against a
    training job's GPUs; the memory of a partition's GPUs is not something sinfo reports."""
    rc, text = run_command(["sinfo", "-h", "-o", "%P|%G|%D|%a"] + (["-p", partition] if partition else []))
    if rc != 0:
        return [Check(FAIL, "SLURM", f"sinfo failed: {text or rc} (is this a submit host of the cluster?)")]
    rows = [line.split("|") for line in text.splitlines() if line.count("|") == 3]
    if not rows:
        return [Check(FAIL, "SLURM", f"sinfo lists no partition{' ' + partition if partition else ''} "
                                     "(give it with --default-resources slurm_partition=NAME)")]
    names = sorted({r[0].rstrip("*") for r in rows})
    checks = [Check(OK, "SLURM", f"sinfo answers; partition {', '.join(names)}"
                                 f"{'' if partition else ' (no slurm_partition given: the default partition)'}")]
    if not partition:
        rows = [r for r in rows if r[0].endswith("*")] or rows
    per_node = []
    for _, gres, nodes, _ in rows:
        for m in GRES_GPU.finditer(gres):
            per_node.append((int(m.group(2)), m.group(1) or "gpu", int(nodes) if nodes.isdigit() else 0))
    peak, weights = needs_per_gpu(stages)
    name = f"GPUs (partition {partition or names[0]})"
    if not per_node:
        return checks + [Check(FAIL, name, f"no GPU in its generic resources ({', '.join(sorted({r[1] for r in rows}))})")]
    most = max(n for n, _, _ in per_node)
    kinds = ", ".join(sorted({f"{nodes} node(s) x {n} {kind}" for n, kind, nodes in per_node}))
    memory = (f"memory per GPU not reported by sinfo: the plan needs {peak or 0:,.0f} GB per GPU for training and "
              f"{weights or 0:,.0f} GB of weights for generation (ask for such GPUs with slurm_extra)")
    if most < training_gpus:
        return checks + [Check(FAIL, name, f"{kinds}; a training job needs {training_gpus} GPUs on one node")]
    return checks + [Check(WARN, name, f"{kinds}; {memory}")]
