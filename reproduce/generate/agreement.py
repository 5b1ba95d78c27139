"""Run one backend greedily on a model and prompts, timed, and compare two runs token for token.

vLLM may start worker processes (on GPUs; on CPU it runs in process, ``VLLMBackend``), so it must run from
a ``__main__`` guard, one backend per process; this module is that entry point for the vLLM test and
``perf/generation_throughput.py``:

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m reproduce.generate.agreement \\
        --backend vllm --model DIR --prompts prompts.json --max-new-tokens 16 --out vllm.json

``prompts.json`` is a JSON list of user messages. The output holds each answer's token ids and the
generation time of the timed call (after one untimed warm-up call on a few prompts; model loading is
not counted), from which prompts/s and output tokens/s follow.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psutil


def run_backend(kind: str, model_dir: str, prompts: list[str], max_new_tokens: int, batch_size: int = 64,
                threads: int | None = None, questions: list[dict] | None = None, answers_out: str | None = None,
                answers_max_new_tokens: int | None = None) -> dict:
    """Greedy answers (token ids) of ``prompts`` with backend ``kind`` and the timed call's throughput.

    With ``questions`` and ``answers_out`` the same loaded backend then answers them through
    ``generate_answers`` (greedy, ``answers_max_new_tokens``), exercising multi-turn prompts and the context policy.
    """
    convs = [[{"role": "user", "content": p}] for p in prompts]
    t_load = time.time()
    if kind == "hf":
        from reproduce.generate.hf import HFBackend

        backend = HFBackend(model_dir, batch_size=batch_size, threads=threads)
    elif kind == "vllm":
        from reproduce.generate.vllm_backend import VLLMBackend

        backend = VLLMBackend(model_dir, dtype="float32", max_num_seqs=batch_size)
    else:
        raise ValueError(f"--backend: unknown backend {kind!r} (known: hf, vllm)")
    load_s = time.time() - t_load
    backend.generate(convs[:4], temperature=0.0, max_new_tokens=max_new_tokens)  # warm-up, untimed
    t0 = time.time()
    outs = backend.generate(convs, temperature=0.0, max_new_tokens=max_new_tokens)
    seconds = time.time() - t0
    ids = [o[0].token_ids for o in outs]
    n_tok = sum(len(x) for x in ids)
    # processes the backend started and still runs (vLLM's engine core and workers, when not in process)
    children = len(psutil.Process().children(recursive=True))
    if questions is not None and answers_out:
        from reproduce.generate.run import generate_answers

        generate_answers(questions, backend, {"temperature": 0.0, "max_new_tokens": answers_max_new_tokens or max_new_tokens, "seed": 0}, kind,
                         str(model_dir), answers_out, batch_size=batch_size, log=lambda m: None, progress=False)
    return {"backend": kind, "model": str(model_dir), "prompts": len(prompts), "max_new_tokens": max_new_tokens,
            "batch_size": batch_size, "load_seconds": round(load_s, 2), "seconds": round(seconds, 3),
            "output_tokens": n_tok, "prompts_per_s": round(len(prompts) / seconds, 2),
            "output_tokens_per_s": round(n_tok / seconds, 1), "token_ids": ids,
            "texts": [o[0].text for o in outs], "child_processes": children}


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    """Fraction of prompts whose two answers are identical token for token, and where others diverge."""
    if len(a) != len(b):
        raise ValueError(f"runs differ in length: {len(a)} vs {len(b)} answers")
    diverge = []
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            k = next((j for j, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y)))
            diverge.append({"prompt": i, "at_token": k, "len_a": len(x), "len_b": len(y)})
    n = len(a)
    return {"prompts": n, "identical": n - len(diverge), "fraction": (n - len(diverge)) / n if n else None,
            "mean_answer_tokens": sum(len(x) for x in a) / n if n else None, "divergences": diverge}


def main(argv: list[str] | None = None) -> None:
    """Command line: run one backend and write its JSON result."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", required=True, choices=["hf", "vllm"])
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", required=True, help="JSON list of user messages")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--questions", help="JSON list of questions {question_id, category, turns} to answer as well")
    p.add_argument("--answers-out", help="answers JSONL for --questions")
    p.add_argument("--answers-max-new-tokens", type=int, help="token limit for --questions (default --max-new-tokens)")
    args = p.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with open(args.prompts, encoding="utf-8") as fh:
        prompts = json.load(fh)
    questions = None
    if args.questions:
        with open(args.questions, encoding="utf-8") as fh:
            questions = json.load(fh)
    result = run_backend(args.backend, args.model, prompts, args.max_new_tokens, args.batch_size, args.threads,
                         questions, args.answers_out, args.answers_max_new_tokens)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main()
