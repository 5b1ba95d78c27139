"""GPU time, memory and disk of the training and generation jobs: a FLOP and bandwidth model whose
rates come from the GPU benchmark's JSON when present, else from the stated defaults (``assumptions``).

Training FLOPs per token: 6N for the policy's forward and backward, 2N more for the forward gradient
checkpointing repeats, and 2N per extra model read once per token (DPO's reference; TGDPO's reference and
guide, precomputed or live; SimPO has none). GPU-seconds = FLOPs / (peak x MFU).

The benchmark JSON (``--throughput FILE``; by default ``results/perf/gpu_train.json`` when it exists) may
hold ``{"gpu": ..., "peak_flops": ..., "runs": [{"method": "dpo", "mfu": 0.41, ...}, ...]}``; the mean
``mfu`` of the runs of a method (of any method when that one has none) replaces ``DEFAULT_MFU``.
"""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.plan import assumptions as A

DEFAULT_THROUGHPUT_FILE = "results/perf/gpu_train.json"
EXTRA_FORWARDS = {"dpo": 1, "tgdpo": 2, "simpo": 0}  # models read besides the policy, one forward per token


class Rates:
    """Peak FLOP/s and MFU per method: measured (benchmark JSON) or the stated defaults."""

    def __init__(self, path: str | Path | None = None):
        self.peak = A.PEAK_FLOPS
        self.gpu = A.GPU_NAME
        self.mfu: dict[str, float] = {}
        self.source = (f"stated defaults (MFU {A.DEFAULT_MFU:.0%} of {A.PEAK_FLOPS / 1e12:.0f} TFLOP/s; "
                       f"no GPU benchmark JSON at {path or DEFAULT_THROUGHPUT_FILE})")
        p = Path(path or DEFAULT_THROUGHPUT_FILE)
        if p.is_file():
            data = json.loads(p.read_text())
            runs = data.get("runs", []) if isinstance(data, dict) else data
            by_method: dict[str, list[float]] = {}
            for r in runs if isinstance(runs, list) else []:
                if isinstance(r, dict) and isinstance(r.get("mfu"), (int, float)) and r["mfu"] > 0:
                    by_method.setdefault(str(r.get("method", "any")), []).append(float(r["mfu"]))
            self.mfu = {m: sum(v) / len(v) for m, v in by_method.items()}
            if isinstance(data, dict):
                self.peak = float(data.get("peak_flops", self.peak))
                self.gpu = str(data.get("gpu", self.gpu))
            if self.mfu:
                self.source = f"measured MFU from {p} ({', '.join(f'{m} {v:.0%}' for m, v in sorted(self.mfu.items()))})"

    def mfu_for(self, loss: str) -> float:
        """The MFU of a loss's training: its own measured figure, any measured one, or the default."""
        if loss in self.mfu:
            return self.mfu[loss]
        if self.mfu:
            return sum(self.mfu.values()) / len(self.mfu)
        return A.DEFAULT_MFU


def train_estimate(method: dict, params: float | None, pairs: int, tokens_per_pair: float, gpus: int,
                   rates: Rates, vocab: int | None) -> dict:
    """GPU-hours, wall hours on ``gpus`` GPUs, peak GPU memory (GB per GPU) and disk of one training job."""
    loss = method.get("loss", "dpo")
    epochs = float(method.get("epochs", 1))
    tokens = pairs * tokens_per_pair * epochs
    if params is None:
        return {"tokens": tokens, "gpu_hours": None, "wall_hours": None, "peak_gpu_gb": None, "disk_gb": None}
    per_token = 6 + (2 if method.get("gradient_checkpointing") else 0) + 2 * EXTRA_FORWARDS.get(loss, 1)
    flops = per_token * params * tokens
    gpu_s = flops / (rates.peak * rates.mfu_for(loss))
    # memory per GPU: sharded states + the fp32 logits of one micro-batch (chosen and rejected, x2 for the
    # log-softmax) + a live reference/guide copy when not precomputed
    batch = int(method.get("per_device_batch_size", 1)) * 2
    seq = int(method.get("max_length", 2048))
    logits = batch * seq * (vocab or 0) * 4 * 2
    live = method.get("token_rewards") == "live" and loss != "simpo"
    mem = A.TRAIN_BYTES_PER_PARAM * params / gpus + logits + (EXTRA_FORWARDS.get(loss, 1) * 2 * params / gpus if live else 0)
    disk = A.BYTES_BF16 * params + A.CHECKPOINT_BYTES_PER_PARAM * params
    if loss == "tgdpo" and not live:  # per-token log-probs of reference and guide, float32, over every pair
        disk += pairs * tokens_per_pair * 4 * 2
    return {"tokens": tokens, "flops": flops, "gpu_hours": gpu_s / 3600, "wall_hours": gpu_s / 3600 / gpus,
            "peak_gpu_gb": mem / 1e9, "disk_gb": disk / 1e9, "mfu": rates.mfu_for(loss)}


def generate_estimate(params: float | None, output_tokens: float, prompt_tokens: float) -> dict:
    """GPU-hours and peak memory of one generation job (one GPU): weights load, prefill at the training
    model's FLOP rate, decode at the stated tokens/s scaled by size."""
    if params is None:
        return {"gpu_hours": None, "peak_gpu_gb": None}
    decode_tps = A.DEFAULT_DECODE_TOKENS_PER_S_8B * 8e9 / params
    prefill_s = 2 * params * prompt_tokens / (A.PEAK_FLOPS * A.DEFAULT_MFU)
    seconds = A.DEFAULT_MODEL_LOAD_S + prefill_s + output_tokens / decode_tps
    return {"gpu_hours": seconds / 3600, "peak_gpu_gb": max(A.VLLM_MEMORY_FRACTION * A.GPU_MEMORY_GB,
                                                             A.BYTES_BF16 * params / 1e9),
            "decode_tokens_per_s": decode_tps}
