"""GPU time, memory and disk of the training and generation jobs.

Training time has two sources, never mixed in one figure:

- **measured** (the GPU benchmark's figures file, ``perf/gpu_train.py``): GPU-seconds = training tokens ÷ the
  run's non-pad tokens/s per GPU, plus the precompute's forwarded tokens ÷ its measured forward tokens/s. A
  run of the job's size (within 5% of its parameters) is used as it is; another size is converted through
  the run's model-FLOP MFU (6·N·tokens/s ÷ peak), i.e. tokens/s scaled by N_run / N. Each line says which.
- **stated FLOP model** (no figures file): model FLOPs only, 6N per training token for the policy and 2N per
  token per extra model forwarded (DPO's reference; TGDPO's reference and guide; once for a precomputed
  cache, every epoch live), at the stated model-FLOP MFU ``assumptions.DEFAULT_MFU`` of the peak. The
  recomputation of gradient checkpointing is a hardware FLOP and is not counted: like a measured MFU, the
  stated one already pays for it.

The figures file is ``--throughput FILE``, else ``results/perf/gpu_train.json`` when it exists, else a
committed ``perf/figures/gpu_train_<gpu>.json`` (``--gpu`` picks which; a GPU other than the file's is
converted through the file's MFU at ``assumptions.PEAK_FLOPS``, and says so).
"""

from __future__ import annotations

from pathlib import Path

from reproduce.paths import repo_path
from reproduce.plan import assumptions as A
from reproduce.plan.figures import SAME_SIZE, GpuFigures, method_of

DEFAULT_THROUGHPUT_FILE = "results/perf/gpu_train.json"
COMMITTED_FIGURES = "perf/figures"  # gpu_train_<gpu>.json, one per GPU measured
EXTRA_FORWARDS = {"dpo": 1, "tgdpo": 2, "simpo": 0, "chosen_nll": 0}  # models read besides the policy


def find_figures(path: str | Path | None, gpu: str | None) -> tuple[Path | None, str]:
    """(figures file, why) for ``--throughput`` / ``--gpu``: the given file, the workflow's own
    ``results/perf/gpu_train.json``, the committed file of ``gpu``, or the one committed file."""
    if path:
        return Path(path), "given"
    if Path(DEFAULT_THROUGHPUT_FILE).is_file():
        return Path(DEFAULT_THROUGHPUT_FILE), "the benchmark's default output"
    committed = sorted(repo_path(COMMITTED_FIGURES).glob("gpu_train_*.json"))
    wanted = [f for f in committed if gpu and f.stem.removeprefix("gpu_train_") == gpu.lower()]
    if wanted or len(committed) == 1:
        return (wanted or committed)[0], "committed"
    return None, f"{len(committed)} committed figures files and no --gpu naming one" if committed else "none"


class Rates:
    """The training rates of a plan: a measured figures file, or the stated FLOP model."""

    def __init__(self, path: str | Path | None = None, gpu: str | None = None):
        found, why = find_figures(path, gpu)
        self.figures = GpuFigures(found) if found is not None else None
        self.peak, self.gpu = A.PEAK_FLOPS, A.GPU_NAME
        # another GPU than the file's: its measured MFU at the planned GPU's peak
        self.convert_gpu = bool(self.figures and gpu and gpu.lower() not in self.figures.gpu.lower())
        if self.figures is None:
            self.source = (f"stated FLOP model: model FLOPs (6N per training token, 2N per extra forward) at MFU "
                           f"{A.DEFAULT_MFU:.0%} of {A.PEAK_FLOPS / 1e12:.0f} TFLOP/s (assumptions.DEFAULT_MFU; "
                           f"no GPU figures file: {why})")
        else:
            f = self.figures
            self.gpu = f"{gpu} (converted from {f.gpu}'s figures)" if self.convert_gpu else f.gpu
            self.source = (f"measured on {f.gpu} ({f.path}, {f.date}, torch {f.versions.get('torch')}, "
                           f"transformers {f.versions.get('transformers')}): tokens ÷ measured tokens/s per GPU"
                           + (f"; converted to {gpu} through the runs' 6·N MFU at {A.PEAK_FLOPS / 1e12:.0f} TFLOP/s"
                              if self.convert_gpu else ""))

    def train_seconds(self, method: dict, params: float, train_tokens: float, forward_tokens: float,
                      fsdp: bool) -> tuple[float, str, float | None]:
        """(GPU-seconds, basis, model-FLOP MFU) of training ``train_tokens`` and forwarding ``forward_tokens``
        (extra models' tokens: precompute or live) for one recipe entry."""
        loss = method.get("loss", "dpo")
        if self.figures is None:
            extra = EXTRA_FORWARDS.get(loss, 1)
            flops = 6 * params * train_tokens + 2 * params * forward_tokens * extra
            return flops / (A.PEAK_FLOPS * A.DEFAULT_MFU), "stated FLOP model", A.DEFAULT_MFU
        f = self.figures
        name = method_of(loss, method.get("token_rewards"))
        run, same, why = f.pick(name, params, bool(method.get("gradient_checkpointing")), fsdp)
        tag = (f"{run['method']} {run['params'] / 1e9:.2g}B{'' if run['gradient_checkpointing'] else ' no-checkpointing'}"
               f"{' FSDP' if run['fsdp'] else ''} run")
        mfu = f.mfu(run)
        if self.convert_gpu:
            train_s = 6 * params * train_tokens / (A.PEAK_FLOPS * mfu)
            basis = f"{why}converted from the {tag} through its 6·N MFU {mfu:.1%} at the planned GPU's peak"
        elif same:
            train_s = train_tokens / run["tokens_per_s_per_gpu"]
            basis = f"{why}measured: the {tag}, {run['tokens_per_s_per_gpu']:,.0f} tokens/s per GPU"
        else:
            train_s = 6 * params * train_tokens / (f.peak * mfu)
            basis = f"{why}converted from the {tag} through its 6·N MFU {mfu:.1%}"
        pre_s = 0.0
        if forward_tokens and run["method"] != "tgdpo_live":  # a live run's rate holds its forwards already
            rate = f.precompute_rate(params, name)
            extra = EXTRA_FORWARDS.get(loss, 1)
            if rate is None:  # forwards at the training run's own model-FLOP MFU (2N per token and model)
                pre_s = 2 * params * forward_tokens * extra / (f.peak * mfu)
                basis += "; reference/guide forwards at that run's MFU (2N per token and model; no precompute measured)"
            else:
                tps, pre_run = rate
                same_pre = abs(pre_run["params"] / params - 1) <= SAME_SIZE
                pre_s = forward_tokens * extra / tps * (1.0 if same_pre else params / pre_run["params"])
                basis += (f"; reference/guide forwards at the {pre_run['method']} {pre_run['params'] / 1e9:.2g}B run's "
                          f"{tps:,.0f} forward tokens/s per GPU" + ("" if same_pre else ", scaled by N_run / N"))
        return train_s + pre_s, basis, mfu


def train_estimate(method: dict, params: float | None, pairs: int, tokens_per_pair: float, gpus: int,
                   rates: Rates, vocab: int | None, fsdp: bool = False) -> dict:
    """GPU-hours, wall hours on ``gpus`` GPUs (GPU-hours ÷ GPUs: linear scaling, stated), peak GPU memory
    (GB per GPU) and disk of one training job."""
    loss = method.get("loss", "dpo")
    epochs = float(method.get("epochs", 1))
    tokens = pairs * tokens_per_pair * epochs
    if params is None:
        return {"tokens": tokens, "gpu_hours": None, "wall_hours": None, "peak_gpu_gb": None, "disk_gb": None,
                "rate_basis": "unknown model size"}
    live = method.get("token_rewards") == "live" and loss != "simpo"
    forward_tokens = (tokens if live else pairs * tokens_per_pair) if EXTRA_FORWARDS.get(loss, 1) else 0.0
    gpu_s, rate_basis, mfu = rates.train_seconds(method, params, tokens, forward_tokens, fsdp)
    # memory per GPU: sharded states + the fp32 logits of one micro-batch (chosen and rejected, x2 for the
    # log-softmax) + a live reference/guide copy when not precomputed
    batch = int(method.get("per_device_batch_size", 1)) * 2
    seq = int(method.get("max_length", 2048))
    logits = batch * seq * (vocab or 0) * 4 * 2
    mem = A.TRAIN_BYTES_PER_PARAM * params / gpus + logits + (EXTRA_FORWARDS.get(loss, 1) * 2 * params / gpus if live else 0)
    disk = A.BYTES_BF16 * params + A.CHECKPOINT_BYTES_PER_PARAM * params
    if loss == "tgdpo" and not live:  # per-token log-probs of reference and guide, float32, over every pair
        disk += pairs * tokens_per_pair * 4 * 2
    return {"tokens": tokens, "gpu_hours": gpu_s / 3600, "wall_hours": gpu_s / 3600 / gpus,
            "peak_gpu_gb": mem / 1e9, "disk_gb": disk / 1e9, "mfu": mfu, "rate_basis": rate_basis}


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
