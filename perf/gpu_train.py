"""The paper's training path on one GPU: `reproduce train` as the workflow runs it, timed and tagged.

Builds Llama-3-shaped random-init model directories (Llama-3.2-1B and Llama-3-8B dimensions, an untied
128,256-token vocabulary, grouped-query attention with 8 KV heads) with a word-level tokenizer of that size and
Llama-3's chat template, and synthetic preference pairs of realistic length (a ~100-token prompt, answers of
~800 tokens). Per size, one short DPO warm-up run (so every method meets warm compile/autotune caches), then
each of ``--methods`` as one `reproduce train` process (bf16, gradient checkpointing as the paper recipes
unless ``--no-checkpointing``; ``--fsdp``: under ``accelerate launch`` with the project's FSDP config,
``config/accelerate/fsdp_full_shard.yaml``, on one process); ``--repeats 2`` runs them again in reverse order.
Per run it records:

- steady step seconds (median ``step_s`` of ``train_log.jsonl`` after the first two steps);
- non-pad tokens/s (median ``tokens_per_s``: attention-mask tokens over all ranks) and per GPU;
- MFU in model FLOPs: 6 * N * tokens/s per GPU / 989 TFLOP/s (N: all parameters; 989 TFLOP/s: H100/H200
  dense bf16, no sparsity). The recomputation of gradient checkpointing, the reference/guide forwards and
  attention FLOPs are not counted (hardware FLOPs would count them);
- set-up seconds: from the job's start to its first training step (model loads, weight hashes, the
  precompute), beside the precompute's own seconds and forward tokens/s (``train_summary.json``);
- peak GPU memory (torch's max allocated and reserved, in the training process);
- disk: free bytes before and after the run, and what the run left (model, caches, the trainer's copy of
  the pairs, checkpoints);
- wall seconds of the process; TGDPO/DPO and live/DPO ratios per size and configuration.

Each run is tagged with its configuration (size, parameters, method, gradient checkpointing, FSDP, processes,
batch) and the file with the versions used (torch, transformers, trl, accelerate, datasets, CUDA) and the GPU.
The figures file (``--json``; default on a GPU ``results/perf/gpu_train.json``, which ``reproduce plan``
reads; a committed copy lives in ``perf/figures/``) is rewritten after every run, so a timeout keeps what was
measured; ``--append`` adds to an existing file of the same GPU and versions (``perf/gpu_run.sh`` runs its
configurations one after another into one file). ``--tiny`` runs the same code on the CPU (a 2-layer model,
2,048-token vocabulary, short pairs, one run under FSDP with one process): CI runs it (scripts/test.sh).

    python perf/gpu_train.py --work /tmp/gpu_train [--sizes 1b,8b --pairs 64 --repeats 1]    # one GPU
    python perf/gpu_train.py --tiny                                                           # CPU
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORMAT = 2  # the figures file's layout (reproduce/plan/figures.py reads it)
PEAK_FLOPS = 989e12  # H100/H200 SXM dense bf16 (no sparsity)
MFU_DEFINITION = ("model FLOPs: 6 * N * non-pad training tokens/s per GPU / peak_flops (N = all parameters; "
                  "no recomputation, reference/guide forward or attention FLOPs)")
LLAMA3_VOCAB = 128256
# name: (hidden, intermediate, layers, heads, kv heads, head_dim, vocab)
SIZES = {
    "tiny": (64, 128, 2, 2, 1, 32, 2048),
    "1b": (2048, 8192, 16, 32, 8, 64, LLAMA3_VOCAB),
    "8b": (4096, 14336, 32, 32, 8, 128, LLAMA3_VOCAB),
}
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
METHODS = ("dpo", "tgdpo", "tgdpo_live", "simpo", "chosen_nll")
VERSIONED = ("torch", "transformers", "trl", "accelerate", "datasets")


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
    saved to ``out``; returns its parameter count. A complete directory already there is reused."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv, head_dim, vocab = SIZES[size]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim, rope_theta=500000.0,
                      max_position_embeddings=8192, tie_word_embeddings=False, bos_token_id=vocab - 5,
                      eos_token_id=vocab - 4)
    done = out / "params.json"  # written last: the directory is complete
    if done.is_file():
        return json.loads(done.read_text())["params"]
    build_tokenizer(vocab, out)
    torch.manual_seed(0)
    with torch.device("cuda" if on_gpu else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16 if on_gpu else torch.float32)
    model.save_pretrained(str(out))
    n = sum(p.numel() for p in model.parameters())
    del model
    if on_gpu:
        torch.cuda.empty_cache()
    done.write_text(json.dumps({"params": n}))
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


def method_config(name: str, batch: int, accumulation: int, max_steps: int, checkpointing: bool = True) -> dict:
    """The recipe entry of one benchmarked run (the paper recipes' training settings; no checkpoints)."""
    common = {"beta": 0.1, "learning_rate": 1e-6, "per_device_batch_size": batch, "gradient_accumulation_steps":
              accumulation, "max_length": 2048, "bf16": True, "gradient_checkpointing": checkpointing,
              "warmup_ratio": 0.1, "save_steps": 1_000_000, "max_steps": max_steps, "seed": 42}
    if name == "simpo":  # SimPO's documented Llama-3-8B-Instruct setting (config/recipes/llama3-8b-*.yaml)
        return {**common, "loss": "simpo", "beta": 2.5, "gamma": 1.375}
    if name in ("dpo", "chosen_nll"):
        return {**common, "loss": name}
    return {**common, "loss": "tgdpo", "alpha": 0.5, "guide": "base", "token_rewards": "live" if name == "tgdpo_live" else "precomputed"}


def fsdp_config(work: Path, on_gpu: bool) -> Path:
    """The project's FSDP accelerate config on one process (on the CPU with the settings FSDP needs there,
    as config/accelerate/rehearsal_cpu.yaml: accelerate then runs the launcher's path without sharding)."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "accelerate" / "fsdp_full_shard.yaml").read_text())
    cfg["num_processes"] = 1
    cfg["main_process_port"] = 0
    if not on_gpu:
        cfg.update(use_cpu=True, mixed_precision="no")
        cfg["fsdp_config"].update(fsdp_sync_module_states=False, fsdp_cpu_ram_efficient_loading=False)
    path = work / "fsdp_one_process.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def dir_bytes(*paths: Path) -> int:
    """Bytes of every file under ``paths``."""
    return sum(f.stat().st_size for p in paths if p.exists() for f in p.rglob("*") if f.is_file())


def run_train(work: Path, label: str, method: dict, base: Path, prefs: Path, threads: int,
              launcher: Path | None = None) -> dict:
    """One `reproduce train` process (under ``accelerate launch --config_file launcher`` when given); its
    figures from ``train_log.jsonl`` and ``train_summary.json``, and what it left on disk."""
    out, ckpt, cache = work / f"{label}-model", work / f"{label}-ckpt", work / f"{label}-cache"
    entry = ["-m", "accelerate.commands.launch", "--config_file", str(launcher), "-m"] if launcher else ["-m"]
    argv = [sys.executable, *entry, "reproduce.cli", "train", "--job", json.dumps({"method_config": method}),
            "--threads", str(threads), "--base", str(base), "--prefs", str(prefs), "--cache", str(cache),
            "--checkpoints", str(ckpt), "--out", str(out)]
    if method["loss"] == "tgdpo":
        argv += ["--guide", str(base)]
    free_before = shutil.disk_usage(work).free
    started = time.time()
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    try:
        _, err = proc.communicate()
    except BaseException:  # a deadline's SIGTERM: end the whole job (accelerate's workers too), keep the figures so far
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: reproduce train failed (rc {proc.returncode}):\n{err[-3000:]}")
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    summary = json.loads((out / "train_summary.json").read_text())
    steady = rows[2:] or rows
    processes = summary.get("processes", 1)
    tokens_per_s = statistics.median(r["tokens_per_s"] for r in steady)
    first = summary.get("first_step_at")
    disk = {"free_before": free_before, "free_after": shutil.disk_usage(work).free, "model": dir_bytes(out),
            "caches": dir_bytes(cache), "pairs_copy": dir_bytes(ckpt / "pairs"),  # the trainer's data copy and its cache
            "checkpoints_left": dir_bytes(ckpt) - dir_bytes(ckpt / "pairs")}
    result = {"wall_s": round(wall, 1), "setup_s": round(first - started, 2) if first else None,
              "train_s": summary["train_seconds"], "steps": summary["steps"], "processes": processes,
              "distributed_type": summary.get("distributed_type"),
              "step_s": round(statistics.median(r["step_s"] for r in steady), 4),
              "tokens_per_s": round(tokens_per_s, 1), "tokens_per_s_per_gpu": round(tokens_per_s / processes, 1),
              "precompute": summary.get("precompute"), "peak_gpu_bytes": summary.get("peak_gpu_bytes"), "disk": disk}
    shutil.rmtree(out), shutil.rmtree(ckpt, ignore_errors=True), shutil.rmtree(cache, ignore_errors=True)
    return result


def run_record(size: str, n_params: int, method: str, checkpointing: bool, fsdp: bool, shape: tuple, figures: dict) -> dict:
    """One run as the figures file holds it (reproduce/plan/figures.py reads it): its configuration, then
    ``run_train``'s figures, then its model-FLOP MFU. ``shape``: (per-device batch, accumulation, pairs)."""
    batch, accumulation, pairs = shape
    return {"size": size, "params": n_params, "method": method, "gradient_checkpointing": checkpointing, "fsdp": fsdp,
            "batch": batch, "accumulation": accumulation, "pairs": pairs, **figures,
            "mfu": round(6 * n_params * figures["tokens_per_s_per_gpu"] / PEAK_FLOPS, 6)}


def ratios(runs: list[dict]) -> dict:
    """Per size and configuration: TGDPO/DPO and live/DPO of step time, tokens/s, wall, set-up and peak
    memory (the first run of each method)."""
    out: dict = {}
    firsts: dict = {}
    for r in runs:
        firsts.setdefault((r["size"], r["gradient_checkpointing"], r["fsdp"], r["method"]), r)
    for (size, ckpt, fsdp, name), r in firsts.items():
        dpo = firsts.get((size, ckpt, fsdp, "dpo"))
        if name not in ("tgdpo", "tgdpo_live") or dpo is None:
            continue
        key = f"{size}{'' if ckpt else ' no-checkpointing'}{' fsdp' if fsdp else ''} {name}/dpo"
        out[key] = {k: round(r[k] / dpo[k], 3) for k in ("step_s", "tokens_per_s", "wall_s", "setup_s") if r[k] and dpo[k]}
        if dpo["peak_gpu_bytes"] and r["peak_gpu_bytes"]:
            out[key]["peak_allocated"] = round(r["peak_gpu_bytes"]["allocated"] / dpo["peak_gpu_bytes"]["allocated"], 3)
    return out


def versions(on_gpu: bool) -> dict:
    """The versions the runs used (the training processes share this interpreter's packages)."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    out = {"python": sys.version.split()[0], "cuda": torch.version.cuda if on_gpu else None}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def commit() -> str | None:
    """The repository's commit (None outside a git checkout)."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout.strip() or None


def start_figures(path: Path | None, append: bool, gpu: str, vers: dict) -> dict:
    """The figures file to write: a new one, or (``append``) the existing one when its GPU and versions match."""
    fresh = {"format": FORMAT, "gpu": gpu, "peak_flops": PEAK_FLOPS, "mfu_definition": MFU_DEFINITION,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), "commit": commit(),
             "versions": vers, "runs": [], "ratios": {}}
    if not (append and path and path.is_file()):
        return fresh
    old = json.loads(path.read_text())
    if old.get("format") != FORMAT or old.get("gpu") != gpu or old.get("versions") != vers:
        raise SystemExit(f"{path}: --append onto figures of another layout, GPU or versions "
                         f"({old.get('format')}, {old.get('gpu')}, {old.get('versions')}); write a new file")
    return old


def line(r: dict) -> str:
    """One printed row of figures."""
    pre = r["precompute"] or {}
    pre_txt = (f"precompute {pre['seconds']:.1f} s at {pre['forward_tokens_per_s']:.0f} fwd tok/s"
               if "seconds" in pre else "precompute none" if not pre else "precompute cached")
    mem = r["peak_gpu_bytes"]
    mem_txt = f"peak GPU {mem['allocated'] / 1e9:.1f}/{mem['reserved'] / 1e9:.1f} GB alloc/reserved" if mem else "peak GPU n/a"
    setup = f"set-up {r['setup_s']:.1f} s" if r["setup_s"] is not None else "set-up n/a"
    tag = f"{r['size']:>4} {r['method']:<10}{'' if r['gradient_checkpointing'] else ' no-ckpt'}{' fsdp' if r['fsdp'] else ''}"
    left = sum(r["disk"][k] for k in ("model", "caches", "pairs_copy", "checkpoints_left"))
    return (f"{tag} step {r['step_s']:.3f} s  {r['tokens_per_s']:.0f} tok/s  MFU {100 * r['mfu']:.1f}%  {setup}  "
            f"{pre_txt}  {mem_txt}  disk left {left / 1e6:.1f} MB  wall {r['wall_s']:.0f} s")


def parse_args(argv=None):
    """The command line (``--tiny`` sets the CPU toy sizes)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the same code on the CPU at toy size (CI)")
    ap.add_argument("--sizes", default="1b,8b", help="comma-separated among " + ", ".join(SIZES))
    ap.add_argument("--methods", help="comma-separated among " + ", ".join(METHODS) + " (default dpo,tgdpo,tgdpo_live)")
    ap.add_argument("--no-checkpointing", action="store_true", help="train without gradient checkpointing")
    ap.add_argument("--fsdp", action="store_true", help="under accelerate launch with the project's FSDP config, one process")
    ap.add_argument("--no-warmup", action="store_true", help="skip the DPO warm-up run (the caches are already warm)")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch", default="1b:8x2,8b:4x1", help="per size: per-device batch x gradient accumulation")
    ap.add_argument("--prompt-tokens", type=int, default=100)
    ap.add_argument("--answer-tokens", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=1, help="2: the methods again, in reverse order")
    ap.add_argument("--work", help="scratch directory (default: a temporary one); built models are reused from it")
    ap.add_argument("--json", help="figures file (default on a GPU: results/perf/gpu_train.json, which "
                                   "`reproduce plan` reads)")
    ap.add_argument("--append", action="store_true", help="add to --json's runs (same GPU and versions)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    """Build, run and record; returns the exit code."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a deadline's TERM ends the running job too
    import torch

    on_gpu = torch.cuda.is_available()
    tiny_fsdp = None
    if args.tiny:  # toy sizes on the CPU; by default (CI) three methods plainly, then one under FSDP on one process
        args.sizes, args.pairs, args.batch, args.prompt_tokens, args.answer_tokens = "tiny", 8, "tiny:2x1", 8, 16
        args.no_warmup, args.threads = True, min(args.threads, 2)
        tiny_fsdp = None if args.methods or args.fsdp else "tgdpo"
    elif not on_gpu:
        raise SystemExit("gpu_train: no GPU here; run with --tiny on a CPU")
    methods = (args.methods or "dpo,tgdpo,tgdpo_live").split(",")
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; known: {', '.join(METHODS)}")
    batches = {k: tuple(int(x) for x in v.split("x")) for k, v in (kv.split(":") for kv in args.batch.split(","))}
    work = Path(args.work or tempfile.mkdtemp(prefix="gpu_train-"))
    work.mkdir(parents=True, exist_ok=True)
    # Not inside a temporary --work (removed at the end): where `reproduce plan` looks for measured rates.
    json_path = Path(args.json) if args.json else (ROOT / "results" / "perf" / "gpu_train.json" if on_gpu else None)
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
    figures = start_figures(json_path, args.append, torch.cuda.get_device_name(0) if on_gpu else "cpu", versions(on_gpu))
    checkpointing = not args.no_checkpointing
    try:
        for size in args.sizes.split(","):
            batch, accum = batches[size]
            base, prefs = work / f"{size}-base", work / f"{size}-prefs-{args.pairs}.jsonl"
            n_params = build_model(size, base, on_gpu)
            if not prefs.is_file():
                synthetic_pairs(args.pairs, SIZES[size][-1], args.prompt_tokens, args.answer_tokens, prefs)
            steps = max(1, args.pairs // (batch * accum))
            launcher = fsdp_config(work, on_gpu) if args.fsdp or tiny_fsdp else None
            if not args.no_warmup:
                run_train(work, f"{size}-warmup", method_config("dpo", batch, accum, min(steps, 3), checkpointing),
                          base, prefs, args.threads, launcher if args.fsdp else None)
            order = [*methods, *reversed(methods)] * ((args.repeats + 1) // 2)
            plan = [(name, args.fsdp) for name in order[:len(methods) * args.repeats]]
            plan += [(tiny_fsdp, True)] if tiny_fsdp else []
            for name, fsdp in plan:
                r = run_train(work, f"{size}-{name}", method_config(name, batch, accum, steps, checkpointing), base,
                              prefs, args.threads, launcher if fsdp else None)
                run = run_record(size, n_params, name, checkpointing, fsdp, (batch, accum, args.pairs), r)
                figures["runs"].append(run)
                figures["ratios"] = ratios(figures["runs"])
                print(line(run), flush=True)
                if json_path:
                    json_path.write_text(json.dumps(figures, indent=2))
            for key, val in figures["ratios"].items():
                if key.startswith(f"{size} "):
                    print(f"{key}: " + ", ".join(f"{k} {v:.3f}" for k, v in val.items()), flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))
        print(f"figures: {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
