"""OpenAIJudge end to end against a REAL local OpenAI-compatible server (`transformers serve`).

The server serves a tiny random-init Llama built offline here, on 127.0.0.1 and a free port. Its
verdicts are gibberish, which is the point: the transport works, and unparseable text comes back as
text for the protocol to count as a parse failure. `transformers serve` ignores logprobs, so a reply to a
logprobs request is flagged ``missing_logprobs`` — the real-server form of that path.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from reproduce.judges.base import JudgeRequest
from reproduce.judges.openai_judge import OpenAIJudge

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


def _wait_ready(proc: subprocess.Popen, url: str, log_path) -> None:
    """Poll ``url`` until it answers 200, the process dies, or START_TIMEOUT_S passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"transformers serve not ready after {START_TIMEOUT_S}s:\n{log_path.read_text()[-3000:]}")


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
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


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
