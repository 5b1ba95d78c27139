"""Per-token log-prob paths with a Llama-3-sized vocabulary (128,256 tokens) and a small hidden size (CPU).

One training micro-step of the policy (forward, loss, backward) on the same batch, four ways:

- ``trl_dpo``: TRL 1.16's DPO path: its fused LM head (``fused_lm_head=True``, tiled projection, no
  [batch, length, vocab] logits) summed per sequence, sigmoid DPO against precomputed reference sums;
- ``ours_dpo`` / ``ours_tgdpo``: this harness's path (the same fused head, per-token tensors into the
  registered loss, per-token reference and, for TGDPO, guide log-probs as the precompute caches them);
- ``materialised``: the path to avoid: full float32 logits, ``log_softmax``, ``gather`` (TGDPO's loss).

Prints the median step seconds (steps interleaved, so load from other processes hits every path alike) and
each path's peak extra host memory (the RSS peak of a fresh process running only that path, minus that of
one that only builds the model and batch), and the ratios to ``trl_dpo``. Goals: ours_tgdpo / trl_dpo
<= 1.05 in time and <= 1.02 in memory.

    python perf/logprob_path.py [--vocab 128256 --hidden 64 --layers 2 --pairs 2 --length 256 --steps 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

PATHS = ("trl_dpo", "ours_dpo", "ours_tgdpo", "materialised")


def build(args):
    """A random-init Llama with the given vocabulary (untied head, as Llama-3), with TRL's fused head,
    and a batch of ``pairs`` pairs (chosen rows, then rejected) whose second half is the completion."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                      num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 64),
                      num_key_value_heads=max(1, args.hidden // 64), head_dim=64, tie_word_embeddings=False,
                      max_position_embeddings=max(2048, args.length))
    model = LlamaForCausalLM(cfg).train()
    add_fused_lm_head(model)
    rows = 2 * args.pairs
    ids = torch.randint(0, args.vocab, (rows, args.length))
    completion = torch.zeros(rows, args.length, dtype=torch.long)
    completion[:, args.length // 2:] = 1
    width = args.length - 1
    extra = {src: -torch.rand(rows, width) * 12 for src in ("ref", "guide")}  # per-token log-probs, as cached
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion, **extra}


def step(path: str, model, batch, beta: float = 0.1, alpha: float = 0.5) -> float:
    """One forward + loss + backward of ``path``; returns the loss."""
    import torch
    import torch.nn.functional as F

    from reproduce.train.losses import get_loss

    mask = batch["completion_mask"][:, 1:].float()
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    if path == "materialised":
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
        logps = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, batch["input_ids"][:, 1:, None])[..., 0] * mask
    else:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                    fused_lm_head=True, use_cache=False)
        logps = out.log_probs
    ref = batch["ref"] * mask
    if path == "trl_dpo":
        seq, ref_seq = logps.sum(-1), ref.sum(-1)
        pc, pr = seq.chunk(2)
        rc, rr = ref_seq.chunk(2)
        loss = -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()
    else:
        pc, pr = logps.chunk(2)
        mc, mr = mask.chunk(2)
        kw = dict(policy_chosen_logps=pc, policy_rejected_logps=pr, chosen_mask=mc, rejected_mask=mr, beta=beta)
        kw["ref_chosen_logps"], kw["ref_rejected_logps"] = ref.chunk(2)
        if path == "ours_dpo":
            loss = get_loss("dpo")(**kw)[0].mean()
        else:
            kw["guide_chosen_logps"], kw["guide_rejected_logps"] = (batch["guide"] * mask).chunk(2)
            loss = get_loss("tgdpo")(**kw, alpha=alpha)[0].mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return float(loss.detach())


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, which a fresh exec starts anew (``ru_maxrss`` would carry
    the forking parent's peak over to the child)."""
    for line in open("/proc/self/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def peak_rss_child(args, path: str | None) -> int:
    """Peak RSS bytes of a fresh process that builds the model and batch and runs ``path`` twice (None: builds only)."""
    argv = [sys.executable, __file__, "--child", path or "none", *sys.argv[1:]]
    argv = [a for a in argv if a != "--no-memory"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--child", choices=[*PATHS, "none"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    model, batch = build(args)
    if args.child:
        if args.child != "none":
            for _ in range(2):
                step(args.child, model, batch)
        print(peak_rss())
        return 0
    times = {p: [] for p in PATHS}
    losses = {}
    for i in range(args.steps + 2):
        for p in PATHS[i % len(PATHS):] + PATHS[:i % len(PATHS)]:  # each path takes each place in turn
            t0 = time.perf_counter()
            losses[p] = step(p, model, batch)
            if i >= 2:  # two warm-up rounds
                times[p].append(time.perf_counter() - t0)
    base = peak_rss_child(args, None)
    extra = {p: peak_rss_child(args, p) - base for p in PATHS}
    med = {p: statistics.median(t) for p, t in times.items()}
    mib = lambda b: round(b / 2**20, 1)  # noqa: E731
    result = {"config": {k: v for k, v in vars(args).items() if k != "child"},
              "tokens_per_step": 2 * args.pairs * args.length,
              "median_step_s": {p: round(v, 4) for p, v in med.items()},
              "peak_extra_rss_mib": {p: mib(v) for p, v in extra.items()},
              "time_over_trl_dpo": {p: round(med[p] / med["trl_dpo"], 3) for p in PATHS},
              "memory_over_trl_dpo": {p: round(extra[p] / max(extra["trl_dpo"], 1), 3) for p in PATHS},
              "loss": {p: round(v, 6) for p, v in losses.items()}}
    print(json.dumps(result, indent=2))
    print(f"ours_tgdpo / trl_dpo: time {result['time_over_trl_dpo']['ours_tgdpo']:.3f} (goal <= 1.05), "
          f"peak extra memory {result['memory_over_trl_dpo']['ours_tgdpo']:.3f} (goal <= 1.02); materialised logits: "
          f"time {result['time_over_trl_dpo']['materialised']:.2f}x, memory {result['memory_over_trl_dpo']['materialised']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
