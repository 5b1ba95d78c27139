"""The stated defaults of the plan: each figure used when nothing measured is at hand, with its source.

A plan line built from one of these says so (its ``basis`` names the key), so a reader can tell an
assumption from a measurement. Measured figures replace them: the GPU benchmark's figures file (``gpu`` module),
answers already generated, judge replies already cached.
"""

from __future__ import annotations

from reproduce.judges import pricing as _pricing

from reproduce.judges.tokens import CHARS_PER_TOKEN  # noqa: F401 (stated here with the other defaults)

# ----- GPUs -----
# Dense bf16 peak of an H100 SXM (NVIDIA's datasheet: 989 TFLOP/s without sparsity); H200 has the same.
PEAK_FLOPS = 989e12
GPU_NAME = "H100-class (80 GB, 989 TFLOP/s dense bf16)"
GPU_MEMORY_GB = 80.0
# Model FLOPs utilisation of training when no GPU figures file is at hand, by the benchmark's definition: model
# FLOPs (6N per training token, 2N per reference/guide forward; gradient checkpointing's recomputation not
# counted) per second over the peak. A stated default in the range public FSDP runs of 2-8B models report
# (30-45%); not measured here.
DEFAULT_MFU = 0.35
# vLLM decode throughput of an 8B model on one H100 at large batch, output tokens/s; scaled by 8B/params
# for other sizes. A stated default, not a measurement (perf/gpu_train.py measures training, not vLLM).
DEFAULT_DECODE_TOKENS_PER_S_8B = 4000.0
# One vLLM start + weights load per generation job (seconds): stated default.
DEFAULT_MODEL_LOAD_S = 120.0
# vLLM reserves this fraction of the GPU's memory (its gpu_memory_utilization default).
VLLM_MEMORY_FRACTION = 0.9

# ----- training data -----
# Pairs per released preference set when no local copy is at hand: the recipes' "~468-step epoch" at an
# effective batch of 128 (config/recipes/*.yaml), i.e. about 60k UltraFeedback prompts.
DEFAULT_PAIRS = 59_904
# Tokens of one pair (prompt + chosen, prompt + rejected) when no local copy is at hand: UltraFeedback
# prompts of ~180 tokens and instruct-model answers of ~500 tokens; stated default.
DEFAULT_TOKENS_PER_PAIR = 1_360
# Characters per token when no tokenizer is at hand: CHARS_PER_TOKEN of the judges' token counter (4.0,
# OpenAI's rule of thumb for English; reproduce/judges/tokens.py), imported above.

# ----- answers -----
# Mean answer tokens per turn by protocol when no answers exist yet (capped by the benchmark's
# max_new_tokens): Llama-3-8B-Instruct-class answers on AlpacaEval 2 average ~1,900 characters (its
# leaderboard's avg_length), Arena-Hard answers run longer, MT-Bench turns shorter. Stated defaults.
DEFAULT_ANSWER_TOKENS = {"alpaca_eval2": 480, "arena_hard": 650, "mt_bench": 350}
DEFAULT_ANSWER_TOKENS_OTHER = 300

# ----- judges -----
# Judge completion tokens per request when nothing is cached, and the Batch API's price factor: stated in
# reproduce/judges/pricing.py and repeated here for the plan's readers.
DEFAULT_JUDGE_COMPLETION_TOKENS = _pricing.DEFAULT_JUDGE_COMPLETION_TOKENS
DEFAULT_JUDGE_COMPLETION_OTHER = _pricing.DEFAULT_JUDGE_COMPLETION_OTHER
# Judge latency model for wall time: a fixed part plus output tokens at a decode speed (stated defaults).
JUDGE_LATENCY_BASE_S = 0.6
JUDGE_OUTPUT_TOKENS_PER_S = 60.0
# OpenAI's Batch API bills half the standard price, within a 24-hour completion window.
BATCH_PRICE_FACTOR = _pricing.BATCH_PRICE_FACTOR
BATCH_WINDOW_H = 24.0

# ----- disk -----
BYTES_BF16 = 2
# A resumable training checkpoint: the weights and AdamW's two moments, all in the dtype the model trains in
# (bf16: the recipes load the model in bf16, so there are no fp32 master weights), 3 x 2 bytes/param; the
# same count reproduce/train/disk.py checks before training. The trainer keeps one (save_total_limit=1).
CHECKPOINT_BYTES_PER_PARAM = 3 * BYTES_BF16
# Training memory per parameter under FSDP full shard with bf16 mixed precision: fp32 params, fp32 grads,
# Adam's two fp32 moments (16 bytes), divided over the GPUs.
TRAIN_BYTES_PER_PARAM = 16
