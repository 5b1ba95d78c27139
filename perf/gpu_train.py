"""The paper's training path on one GPU: DPO, TGDPO (precomputed) and TGDPO live, as `reproduce train` runs them.

Builds Llama-3-shaped random-init model directories (Llama-3.2-1B and Llama-3-8B dimensions, an untied
128,256-token vocabulary, grouped-query attention with 8 KV heads) with a word-level tokenizer of that size and
Llama-3's chat template, and synthetic preference pairs of realistic length (a ~100-token prompt, answers of
~800 tokens). Per size, one short DPO warm-up run, then DPO, TGDPO (precomputed, guide = the base model: the
same compute as any guide) and TGDPO live, each one `reproduce train` process (bf16, gradient checkpointing,
as the paper recipes), so every method meets warm compile/autotune caches; ``--repeats 2`` runs them again in
reverse order. Prints per method and size:

- steady step seconds (median ``step_s`` of ``train_log.jsonl`` after the first two steps);
- non-pad tokens/s (median ``tokens_per_s``: attention-mask tokens over all ranks);
- MFU = 6 * N * tokens/s / 989 TFLOP/s (N: all parameters; 989 TFLOP/s: H100/H200 dense bf16, no
  sparsity; the recomputation of gradient checkpointing and attention FLOPs are not counted);
- precompute seconds and forward tokens/s (``train_summary.json``);
- peak GPU memory (torch's max allocated and reserved, in the training process);
- disk written (model + cache + anything left in the checkpoint directory, after the run);
- wall seconds of the process, and the TGDPO/DPO and live/DPO ratios of each.

On a GPU the figures go to a JSON file (``--json``, default ``gpu_train.json`` in ``--work``), rewritten after
every run so a timeout keeps what was measured. ``--tiny`` runs the same code on the CPU in about a minute
(a 2-layer model, 2,048-token vocabulary, short pairs): CI runs it (scripts/test.sh).

    python perf/gpu_train.py --work /tmp/gpu_train [--sizes 1b,8b --pairs 64 --repeats 1]    # one GPU
    python perf/gpu_train.py --tiny                                                           # CPU
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEAK_FLOPS = 989e12  # H100/H200 SXM dense bf16 (no sparsity)
LLAMA3_VOCAB = 128256
# name: (hidden, intermediate, layers, heads, kv heads, head_dim, vocab)
SIZES = {
    "tiny": (64, 128, 2, 2, 1, 32, 2048),
    "1b": (2048, 8192, 16, 32, 8, 64, LLAMA3_VOCAB),
    "8b": (4096, 14336, 32, 32, 8, 128, LLAMA3_VOCAB),
}
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
METHODS = ("dpo", "tgdpo", "tgdpo_live")


def build_tokenizer(vocab: int, out: Path):
    """A word-level tokenizer of exactly ``vocab`` tokens (words ``w0``..., then Llama-3's special tokens),
    no pad token (as Llama-3), Llama-3's chat template: every generated word is one token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from reproduce.rehearsal.models import LLAMA3_TEMPLATE

    words = {f"w{i}": i for i in range(vocab - len(SPECIALS) - 1)}
    words["<unk>"] = len(words)
    for s in SPECIALS:
        words[s] = len(words)
    tok = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>",
                                   unk_token="<unk>", additional_special_tokens=SPECIALS[2:])
    fast.chat_template = LLAMA3_TEMPLATE
    fast.save_pretrained(str(out))
    return fast


def build_model(size: str, out: Path, on_gpu: bool) -> int:
    """A random-init LlamaForCausalLM of ``size``'s dimensions (untied head; bf16 on a GPU) and its tokenizer,
    saved to ``out``; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv, head_dim, vocab = SIZES[size]
    build_tokenizer(vocab, out)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim, rope_theta=500000.0,
                      max_position_embeddings=8192, tie_word_embeddings=False, bos_token_id=vocab - 5,
                      eos_token_id=vocab - 4)
    torch.manual_seed(0)
    with torch.device("cuda" if on_gpu else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16 if on_gpu else torch.float32)
    model.save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    del model
    if on_gpu:
        torch.cuda.empty_cache()
    return n


def synthetic_pairs(n: int, vocab: int, prompt_tokens: int, answer_tokens: int, out: Path, seed: int = 0) -> None:
    """``n`` pairs of random words: prompts of ~``prompt_tokens`` and answers of ~``answer_tokens`` tokens
    (each +-20%, so batches carry padding as real data does)."""
    from reproduce.data.prefs import write_pairs

    rng = random.Random(seed)
    top = vocab - len(SPECIALS) - 1

    def text(mean: int) -> str:
        return " ".join(f"w{rng.randrange(top)}" for _ in range(max(1, int(mean * rng.uniform(0.8, 1.2)))))

    pairs = [{"pair_id": f"p{i}", "prompt": [{"role": "user", "content": text(prompt_tokens)}],
              "chosen": [{"role": "assistant", "content": text(answer_tokens)}],
              "rejected": [{"role": "assistant", "content": text(answer_tokens)}]} for i in range(n)]
    write_pairs(pairs, {"pairs": n, "synthetic": True}, out)


def method_config(name: str, batch: int, accumulation: int, max_steps: int) -> dict:
    """The recipe entry of one benchmarked run (the paper recipes' training settings; no checkpoints)."""
    common = {"beta": 0.1, "learning_rate": 1e-6, "per_device_batch_size": batch, "gradient_accumulation_steps":
              accumulation, "max_length": 2048, "bf16": True, "gradient_checkpointing": True, "warmup_ratio": 0.1,
              "save_steps": 1_000_000, "max_steps": max_steps, "seed": 42}
    if name == "dpo":
        return {**common, "loss": "dpo"}
    return {**common, "loss": "tgdpo", "alpha": 0.5, "guide": "base", "token_rewards": "live" if name == "tgdpo_live" else "precomputed"}


def dir_bytes(*paths: Path) -> int:
    """Bytes of every file under ``paths``."""
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file())


def run_train(work: Path, label: str, method: dict, base: Path, prefs: Path, threads: int) -> dict:
    """One `reproduce train` process; its figures from ``train_log.jsonl`` and ``train_summary.json``."""
    out, ckpt, cache = work / f"{label}-model", work / f"{label}-ckpt", work / f"{label}-cache"
    argv = [sys.executable, "-m", "reproduce.cli", "train", "--job", json.dumps({"method_config": method}),
            "--threads", str(threads), "--base", str(base), "--prefs", str(prefs), "--cache", str(cache),
            "--checkpoints", str(ckpt), "--out", str(out)]
    if method["loss"] == "tgdpo":
        argv += ["--guide", str(base)]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: reproduce train failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    summary = json.loads((out / "train_summary.json").read_text())
    steady = rows[2:] or rows
    result = {"wall_s": round(wall, 1), "train_s": summary["train_seconds"], "steps": summary["steps"],
              "step_s": round(statistics.median(r["step_s"] for r in steady), 4),
              "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in steady), 1),
              "precompute": summary.get("precompute"), "peak_gpu_bytes": summary.get("peak_gpu_bytes"),
              "disk_bytes": dir_bytes(out, ckpt, cache)}
    shutil.rmtree(out), shutil.rmtree(ckpt, ignore_errors=True), shutil.rmtree(cache, ignore_errors=True)
    return result


def ratios(runs: dict) -> dict:
    """TGDPO/DPO and live/DPO for step time, tokens/s, peak memory and wall seconds."""
    out = {}
    dpo = runs.get("dpo")
    for name in ("tgdpo", "tgdpo_live"):
        r = runs.get(name)
        if not (dpo and r):
            continue
        out[f"{name}/dpo"] = {k: round(r[k] / dpo[k], 3) for k in ("step_s", "tokens_per_s", "wall_s")}
        if dpo["peak_gpu_bytes"] and r["peak_gpu_bytes"]:
            out[f"{name}/dpo"]["peak_allocated"] = round(r["peak_gpu_bytes"]["allocated"] / dpo["peak_gpu_bytes"]["allocated"], 3)
    return out


def mfu_runs(figures: dict) -> list[dict]:
    """The runs as ``reproduce plan`` reads them (``{"method", "size", "mfu"}``, MFU by the formula of
    ``line``); the live TGDPO variant is left out, since the workflow precomputes the guide."""
    runs = []
    for size, entry in figures["sizes"].items():
        for r in entry.get("all_runs", []):
            if r["method"] in ("dpo", "tgdpo"):
                runs.append({"method": r["method"], "size": size,
                             "mfu": 6 * entry["params"] * r["tokens_per_s"] / figures["peak_flops"]})
    return runs


def line(size: str, name: str, r: dict, n_params: int) -> str:
    """One printed row of figures."""
    mfu = 6 * n_params * r["tokens_per_s"] / PEAK_FLOPS
    pre = r["precompute"] or {}
    pre_txt = (f"precompute {pre['seconds']:.1f} s at {pre['forward_tokens_per_s']:.0f} fwd tok/s"
               if "seconds" in pre else "precompute none" if not pre else "precompute cached")
    mem = r["peak_gpu_bytes"]
    mem_txt = f"peak GPU {mem['allocated'] / 1e9:.1f}/{mem['reserved'] / 1e9:.1f} GB alloc/reserved" if mem else "peak GPU n/a"
    return (f"{size:>4} {name:<10} step {r['step_s']:.3f} s  {r['tokens_per_s']:.0f} tok/s  MFU {100 * mfu:.1f}%  "
            f"{pre_txt}  {mem_txt}  disk {r['disk_bytes'] / 1e6:.1f} MB  wall {r['wall_s']:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the same code on the CPU at toy size (CI)")
    ap.add_argument("--sizes", default="1b,8b", help="comma-separated among " + ", ".join(SIZES))
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch", default="1b:8x2,8b:4x1", help="per size: per-device batch x gradient accumulation")
    ap.add_argument("--prompt-tokens", type=int, default=100)
    ap.add_argument("--answer-tokens", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=1, help="2: the methods again, in reverse order")
    ap.add_argument("--work", help="scratch directory (default: a temporary one)")
    ap.add_argument("--json", help="figures file (default on a GPU: results/perf/gpu_train.json, which "
                                   "`reproduce plan` reads)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    import torch

    on_gpu = torch.cuda.is_available()
    if args.tiny:
        args.sizes, args.pairs, args.batch, args.prompt_tokens, args.answer_tokens = "tiny", 8, "tiny:2x1", 8, 16
        args.threads = min(args.threads, 2)
    elif not on_gpu:
        raise SystemExit("gpu_train: no GPU here; run with --tiny on a CPU")
    batches = {k: tuple(int(x) for x in v.split("x")) for k, v in (kv.split(":") for kv in args.batch.split(","))}
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_train-"))
    work.mkdir(parents=True, exist_ok=True)
    # Not inside a temporary --work (removed at the end): where `reproduce plan` looks for measured MFU.
    json_path = Path(args.json) if args.json else (ROOT / "results" / "perf" / "gpu_train.json" if on_gpu else None)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    figures = {"gpu": device, "peak_flops": PEAK_FLOPS, "runs": [],
               "mfu": "6 * N * non-pad tokens/s / peak_flops, N = all parameters", "config": vars(args), "sizes": {}}
    try:
        for size in args.sizes.split(","):
            batch, accum = batches[size]
            base, prefs = work / f"{size}-base", work / f"{size}-prefs.jsonl"
            t0 = time.monotonic()
            n_params = build_model(size, base, on_gpu)
            synthetic_pairs(args.pairs, SIZES[size][-1], args.prompt_tokens, args.answer_tokens, prefs)
            entry = figures["sizes"][size] = {"params": n_params, "build_s": round(time.monotonic() - t0, 1),
                                              "batch": batch, "accumulation": accum, "runs": {}, "all_runs": []}
            steps = max(1, args.pairs // (batch * accum))
            run_train(work, f"{size}-warmup", method_config("dpo", batch, accum, min(steps, 3)), base, prefs, args.threads)
            order = [*METHODS, *reversed(METHODS)] * ((args.repeats + 1) // 2)
            for name in order[:len(METHODS) * args.repeats]:
                r = run_train(work, f"{size}-{name}", method_config(name, batch, accum, steps), base, prefs, args.threads)
                entry["all_runs"].append({"method": name, **r})
                entry["runs"].setdefault(name, r)  # the first run of each method is the one printed
                print(line(size, name, r, n_params), flush=True)
                entry["ratios"] = ratios(entry["runs"])
                figures["runs"] = mfu_runs(figures)
                if json_path:
                    json_path.write_text(json.dumps(figures, indent=2))
            for key, val in entry["ratios"].items():
                print(f"{size:>4} {key}: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()), flush=True)
            shutil.rmtree(base)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))
        print(f"figures: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
