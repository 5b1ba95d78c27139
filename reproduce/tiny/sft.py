"""Build the tiny preset's starting model: tokenizer -> random tiny Llama -> SFT on noisy demonstrations.

The SFT sequences are rendered with the tokenizer's chat template exactly as TRL's preference trainer
renders conversational pairs (prompt with generation prompt, then the assistant turn), so the tokens
trained here are the tokens DPO trains on and generation sees (a lesson of the tiny preset, docs/tiny.md).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from reproduce.io import atomic_write_json
from reproduce.tiny.task import AdditionTask
from reproduce.tiny.tokenizer import train_tokenizer


def render_pair(tokenizer, prompt: str, answer: str) -> tuple[list[int], int]:
    """Token ids of a (user prompt, assistant answer) conversation and the length of its prompt part."""
    user = [{"role": "user", "content": prompt}]
    prompt_ids = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=False)
    full_ids = tokenizer.apply_chat_template(
        user + [{"role": "assistant", "content": answer}], tokenize=True, return_dict=False
    )
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise ValueError(f"chat template: prompt {prompt!r} is not a token prefix of its conversation")
    return list(full_ids), len(prompt_ids)


def init_tiny_base(task: AdditionTask, out_dir: str | Path, rng: random.Random, vocab_size: int = 320,
                   corpus_size: int = 2000, seed: int = 0, **architecture):
    """Train the tokenizer on ChatML-rendered demonstrations (saved to ``out_dir``) and build a random tiny
    Llama for it (not saved); returns (tokenizer, model). ``architecture``: ``build_tiny_llama`` sizes."""
    from reproduce.tiny.model import build_tiny_llama

    # The template is fixed text, so the corpus can be rendered as plain strings.
    corpus = [
        f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n{task.demonstrate(p, rng)}<|im_end|>\n"
        for p in task.split("sft")[:corpus_size]
    ]
    tokenizer = train_tokenizer(corpus, vocab_size, out_dir)
    return tokenizer, build_tiny_llama(tokenizer, seed=seed, **architecture)


def build_base(task: AdditionTask, base_cfg: dict, out_dir: str | Path, seed: int = 0, log=print) -> dict:
    """Train tokenizer + SFT model into ``out_dir``; returns a summary (also written to ``sft_summary.json``)."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    prompts = task.split("sft")
    arch = base_cfg.get("architecture", {})
    tok_cfg = base_cfg.get("tokenizer", {})
    sft = base_cfg.get("sft", {})

    tokenizer, model = init_tiny_base(task, out_dir, rng, vocab_size=tok_cfg.get("vocab_size", 320),
                                      corpus_size=tok_cfg.get("corpus_size", 2000), seed=seed, **arch)

    # Every prompt has at most two demonstrations (right, carry dropped); render each once.
    rendered: dict[tuple[str, str], tuple[list[int], int]] = {}

    def example(p: str) -> tuple[list[int], int]:
        ans = task.demonstrate(p, rng)
        key = (p, ans)
        if key not in rendered:
            rendered[key] = render_pair(tokenizer, p, ans)
        return rendered[key]

    steps, bs = sft.get("steps", 1500), sft.get("batch_size", 128)
    lr, warmup = sft.get("learning_rate", 1e-3), sft.get("warmup_steps", 100)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, warmup)) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    pad = tokenizer.pad_token_id
    model.train()
    t0, log_every, history = time.time(), max(1, steps // 10), []
    for step in range(steps):
        batch = [example(rng.choice(prompts)) for _ in range(bs)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((bs, width), pad, dtype=torch.long)
        labels = torch.full((bs, width), -100, dtype=torch.long)
        attn = torch.zeros((bs, width), dtype=torch.long)
        for i, (ids, plen) in enumerate(batch):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            labels[i, plen : len(ids)] = torch.tensor(ids[plen:])
            attn[i, : len(ids)] = 1
        loss = model(input_ids=input_ids, attention_mask=attn, labels=labels).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"SFT: non-finite loss {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 5), "elapsed_s": round(time.time() - t0, 2)})
            log(f"sft step {step}/{steps} loss {loss.item():.4f}")
    model.eval()
    model.save_pretrained(str(out_dir))
    summary = {
        "steps": steps,
        "batch_size": bs,
        "learning_rate": lr,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "train_seconds": round(time.time() - t0, 1),
        "history": history,
    }
    atomic_write_json(out_dir / "sft_summary.json", summary)
    return summary


if __name__ == "__main__":  # pragma: no cover - manual smoke run
    import sys

    from reproduce.tiny.task import load_task

    print(json.dumps(build_base(load_task("addition"), {}, sys.argv[1]), indent=1))
