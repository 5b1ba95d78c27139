"""The GPU benchmark's figures file (``perf/gpu_train.py``, layout ``format: 2``) as the plan reads it: the
measured runs, each tagged with its configuration, and the pick of the run that prices a training job.

The file holds ``{"format": 2, "gpu", "peak_flops", "mfu_definition", "date", "versions", "runs": [...]}``;
a run holds ``size``, ``params``, ``method`` (``dpo``, ``tgdpo``, ``tgdpo_live``, ``simpo``, ``chosen_nll``),
``gradient_checkpointing``, ``fsdp``, ``processes``, ``tokens_per_s_per_gpu`` (non-pad training tokens),
``mfu`` (6·N·tokens/s per GPU over ``peak_flops``: model FLOPs) and ``precompute`` (``seconds``, ``tokens``,
``forward_tokens_per_s``: tokens times models forwarded, per second, over all ranks; absent when none ran).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from reproduce.io import DataError

FORMAT = 2
SAME_SIZE = 0.05  # a run prices a job "of the same size" when their parameter counts differ by at most 5%
RUN_KEYS = {"method": str, "params": (int, float), "tokens_per_s_per_gpu": (int, float),
            "gradient_checkpointing": bool, "fsdp": bool}


def method_of(loss: str, token_rewards: str | None) -> str:
    """The benchmark's method name of a recipe entry (TGDPO's live variant is a method of its own)."""
    return "tgdpo_live" if loss == "tgdpo" and token_rewards == "live" else loss


class GpuFigures:
    """The runs of one figures file, checked on load (a bad file is an error naming the file and key)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as e:
            raise DataError(f"{self.path}: not a readable JSON figures file ({e})") from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"{self.path}: 'format' is {got!r}, the plan reads format {FORMAT} "
                            "(rerun perf/gpu_train.py to write it)")
        for key, kind in (("gpu", str), ("peak_flops", (int, float)), ("runs", list)):
            if not isinstance(data.get(key), kind):
                raise DataError(f"{self.path}: key '{key}' missing or not a {getattr(kind, '__name__', 'number')}")
        self.gpu, self.peak = data["gpu"], float(data["peak_flops"])
        self.date, self.versions = data.get("date"), data.get("versions") or {}
        self.runs = []
        for i, run in enumerate(data["runs"]):
            for key, kind in RUN_KEYS.items():
                if not isinstance(run, dict) or not isinstance(run.get(key), kind):
                    raise DataError(f"{self.path}: runs[{i}] key '{key}' missing or of the wrong type")
            if run["tokens_per_s_per_gpu"] <= 0 or run["params"] <= 0:
                raise DataError(f"{self.path}: runs[{i}] has no positive 'tokens_per_s_per_gpu' and 'params'")
            self.runs.append(run)
        if not self.runs:
            raise DataError(f"{self.path}: 'runs' is empty")

    def mfu(self, run: dict) -> float:
        """The run's model-FLOP MFU: 6·N·tokens/s per GPU over the file's peak."""
        return 6 * run["params"] * run["tokens_per_s_per_gpu"] / self.peak

    def pick(self, method: str, params: float, checkpointing: bool, fsdp: bool) -> tuple[dict, bool, str]:
        """(run, same size, why) for a training job: the job's own method, else DPO's (the nearest
        compute: one policy, precomputed reference); among those the run of the same size, else the
        nearest size; then the same gradient checkpointing, then the same FSDP setting."""
        pool = ([r for r in self.runs if r["method"] == method] or [r for r in self.runs if r["method"] == "dpo"]
                or self.runs)

        def distance(r):
            return (abs(math.log(r["params"] / params)), r["gradient_checkpointing"] != checkpointing, r["fsdp"] != fsdp)

        run = min(pool, key=distance)
        same = abs(run["params"] / params - 1) <= SAME_SIZE
        return run, same, "" if run["method"] == method else f"no {method} run, so {run['method']}'s; "

    def precompute_rate(self, params: float, method: str) -> tuple[float, dict] | None:
        """(forward tokens/s per GPU, run) of the measured precompute nearest in size, ``method``'s own
        first among runs of one size; None when no run measured one."""
        measured = [r for r in self.runs if isinstance(r.get("precompute"), dict)
                    and (r["precompute"].get("forward_tokens_per_s") or 0) > 0]
        if not measured:
            return None
        run = min(measured, key=lambda r: (abs(math.log(r["params"] / params)), r["method"] != method))
        return run["precompute"]["forward_tokens_per_s"] / run.get("processes", 1), run
