"""The rehearsal's assets: the Llama-3- and Gemma-2-shaped model directories and the stand-in judge server.

The models are checked for the shape features the paper path must cope with (pad token, end-of-turn vs
EOS, stop ids, system role), for determinism (a seed fixes weights and tokenizer, in another process too),
for the context fitting every official prompt, and for TRL's fused LM head agreeing with Gemma-2's
soft-capped logits. The judge server is driven through the project's judge path (OpenAIJudge, the openai
SDK) with the official judge prompts of the three protocols, and through the raw openai client for the
model list and the 404 of an unknown model. vLLM on these models: tests/test_rehearsal_vllm.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import official_benchmark

ROOT = Path(__file__).resolve().parent.parent
JUDGE_MODELS = ["gpt-4-1106-preview", "gpt-4"]


@pytest.fixture(scope="module")
def shaped(tmp_path_factory) -> dict:
    """Both shapes built with seed 0 from the default corpus: ``{shape: (dir, build record)}``."""
    from reproduce.rehearsal.models import build_shaped_model

    root = tmp_path_factory.mktemp("shaped")
    return {s: (root / s, build_shaped_model(s, root / s, seed=0)) for s in ("llama3", "gemma2")}


def _load(model_dir: Path):
    from transformers import AutoTokenizer, GenerationConfig

    return AutoTokenizer.from_pretrained(str(model_dir)), GenerationConfig.from_pretrained(str(model_dir))


CONV = [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Seven."},
        {"role": "user", "content": "Another one?"}]


@pytest.mark.slow
def test_llama3_shape(shaped):
    model_dir, record = shaped["llama3"]
    tok, gen = _load(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    eot, eos = tok.convert_tokens_to_ids("<|eot_id|>"), tok.convert_tokens_to_ids("<|end_of_text|>")
    assert tok.pad_token is None and tok.pad_token_id is None
    assert tok.eos_token == "<|end_of_text|>" and eot != eos and eot != tok.unk_token_id
    assert gen.eos_token_id == [eos, eot] and record["tokens"]["stop_ids"] == [eos, eot]
    assert config["architectures"] == ["LlamaForCausalLM"] and config["head_dim"] == 64
    assert config["num_key_value_heads"] < config["num_attention_heads"]  # grouped-query attention
    assert config["tie_word_embeddings"] is False and config["max_position_embeddings"] == 8192
    # Llama-3's special tokens follow the BPE vocabulary at its offsets
    bos = tok.convert_tokens_to_ids("<|begin_of_text|>")
    assert (eos - bos, tok.convert_tokens_to_ids("<|start_header_id|>") - bos, eot - bos) == (1, 6, 9)
    text = tok.apply_chat_template([{"role": "system", "content": "Be brief."}, *CONV], add_generation_prompt=True,
                                   tokenize=False)
    assert text.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>")
    assert text.endswith("Another one?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = tok.apply_chat_template(CONV, add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids[0] == bos and ids.count(bos) == 1 and ids.count(eot) == 3
    assert tok("hello").input_ids[0] == bos  # the tokenizer itself adds BOS, as Llama-3's does


def test_gemma2_shape(shaped):
    from jinja2.exceptions import TemplateError

    model_dir, record = shaped["gemma2"]
    tok, gen = _load(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")}
    assert list(ids.values()) == [0, 1, 2, 3, 106, 107]  # Gemma-2's ids
    assert tok.pad_token == "<pad>" and tok.pad_token_id == 0 and tok.eos_token == "<eos>"
    assert gen.eos_token_id == [1, 107] and gen.pad_token_id == 0
    assert config["architectures"] == ["Gemma2ForCausalLM"] and config["final_logit_softcapping"] == 30.0
    assert config["head_dim"] == 64 and config["tie_word_embeddings"] is True
    with pytest.raises(TemplateError, match="System role not supported"):
        tok.apply_chat_template([{"role": "system", "content": "Be brief."}, *CONV], tokenize=False)
    with pytest.raises(TemplateError, match="alternate"):
        tok.apply_chat_template([CONV[0], CONV[0]], tokenize=False)
    text = tok.apply_chat_template(CONV, add_generation_prompt=True, tokenize=False)
    assert text == ("<bos><start_of_turn>user\nName a prime.<end_of_turn>\n<start_of_turn>model\nSeven.<end_of_turn>\n"
                    "<start_of_turn>user\nAnother one?<end_of_turn>\n<start_of_turn>model\n")


@pytest.mark.slow
def test_build_is_deterministic_in_another_process(shaped, tmp_path):
    """The CLI in a fresh process (its own hash seeds) rebuilds the same tokenizer and weights from seed 0;
    another seed changes the weights only."""
    import torch
    from transformers import AutoModelForCausalLM

    from reproduce.rehearsal.models import SHAPES, build_model, weights_hash

    model_dir, record = shaped["llama3"]
    out = tmp_path / "again"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-m", "reproduce.rehearsal.models", "--shape", "llama3", "--out", str(out),
                           "--seed", "0"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((out / "rehearsal_build.json").read_text())
    assert again == record and json.loads(proc.stdout) == record
    assert (out / "tokenizer.json").read_bytes() == (model_dir / "tokenizer.json").read_bytes()
    loaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    assert weights_hash(loaded) == record["weights_sha256"]  # what was saved is what was hashed
    tok, _ = _load(model_dir)
    assert weights_hash(build_model(SHAPES["llama3"], tok, seed=0)) == record["weights_sha256"]
    assert weights_hash(build_model(SHAPES["llama3"], tok, seed=1)) != record["weights_sha256"]
    assert not (tmp_path / "again.building").exists()


@pytest.mark.slow
def test_build_without_official_files(tmp_path):
    """No mirror, an empty cache and no network (downloads go to a proxy address nothing listens on): the
    model still builds, its tokenizer trained on the fallback corpus (README + the tiny task's splits)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k not in ("REPRODUCE_BENCHMARK_MIRROR", "no_proxy", "NO_PROXY")}
    env.update(TOKENIZERS_PARALLELISM="false", REPRODUCE_CACHE=str(tmp_path / "cache"), https_proxy=dead,
               http_proxy=dead)
    out = tmp_path / "gemma2"
    proc = subprocess.run([sys.executable, "-m", "reproduce.rehearsal.models", "--shape", "gemma2", "--out", str(out),
                           "--seed", "0"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((out / "rehearsal_build.json").read_text())
    assert "official benchmark files not obtainable" in json.dumps(record)
    tok, _ = _load(out)
    assert tok.apply_chat_template([{"role": "user", "content": "12+34="}], add_generation_prompt=True, tokenize=False)


def test_cli_rejects_an_unknown_shape(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reproduce.rehearsal.models", "--shape", "mistral", "--out",
                           str(tmp_path / "m")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'mistral'" in proc.stderr and not (tmp_path / "m").exists()


@pytest.mark.parametrize("shape", ["llama3", "gemma2"])
def test_generation_prompt_tokens_are_a_prefix_of_prompt_plus_answer(shaped, shape):
    """TRL trains on tokenize(prompt + answer) split at len(tokenize(prompt)): the prompt's closing tokens
    (Llama-3's "<|end_header_id|>\n\n", Gemma-2's "model\n") must not merge with the answer's first
    characters, or the model is trained on a context it never sees at inference (GPT-2's byte-level split
    tokenizes a trailing "\n\n" as one chunk but "\n\nThe" as three)."""
    tok, _ = _load(shaped[shape][0])
    question = [{"role": "user", "content": "Sort 3, 1, 2.\n\n"}]
    prompt = tok.apply_chat_template(question, add_generation_prompt=True, tokenize=False)
    prompt_ids = tok(prompt, add_special_tokens=False).input_ids
    for answer in ("The answer is 1, 2, 3.", "\n\nSorted: 1 2 3", " 1, 2, 3", "123\n\nDone"):
        full = tok.apply_chat_template(question + [{"role": "assistant", "content": answer}], tokenize=False)
        assert full.startswith(prompt)
        ids = tok(full, add_special_tokens=False).input_ids
        assert ids[:len(prompt_ids)] == prompt_ids, (shape, answer, tok.convert_ids_to_tokens(ids[len(prompt_ids) - 2:len(prompt_ids) + 2]))


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["llama3", "gemma2"])
def test_every_official_prompt_fits_the_context(shaped, shape):
    """AlpacaEval's 805, Arena-Hard v0.1's 500 and MT-Bench's 80 (turn 2 after a 1024-token turn-1 answer,
    FastChat's budget) leave at least 1024 tokens for an answer."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.commands import load_benchmark

    official_benchmark("alpaca_eval2", "arena_hard", "mt_bench")
    model_dir, record = shaped[shape]
    tok, _ = _load(model_dir)
    answer = tok.decode(list(range(200, 200 + 1024)))  # some 1024 tokens of text
    longest = Counter()
    for name in ("alpaca_eval2", "arena_hard", "mt_bench"):
        questions = load_questions(load_benchmark(name))
        assert len(questions) == {"alpaca_eval2": 805, "arena_hard": 500, "mt_bench": 80}[name]
        for q in questions:
            conv = []
            for turn in q["turns"]:
                conv.append({"role": "user", "content": turn})
                n = len(tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=False))
                longest[name] = max(longest[name], n)
                conv.append({"role": "assistant", "content": answer})
    print(f"\n{shape}: longest prompt in tokens {dict(longest)} (context {record['max_position_embeddings']})")
    assert max(longest.values()) + 1024 <= record["max_position_embeddings"]
    assert longest["arena_hard"] > 1000  # the long prompts really are long: the check is not vacuous


@pytest.mark.parametrize("shape", ["gemma2", "llama3"])
def test_trl_fused_lm_head_matches_the_models_own_log_probs(shaped, shape):
    """TRL's fused head (the trainer's per-token log-probs) equals log_softmax of the model's own logits,
    Gemma-2's final-logit soft-capping included (logits scaled up so the cap bends them)."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model_dir, _ = shaped[shape]
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        model.model.norm.weight.fill_(40.0 if shape == "gemma2" else 20.0)
    ids = torch.randint(5, 3000, (2, 24), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :6] = -100
    with torch.no_grad():
        logits = model(input_ids=ids).logits
        own = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
        add_fused_lm_head(model)
        fused = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs
    if shape == "gemma2":
        assert logits.abs().max() > 20  # in the bent part of 30 * tanh(x / 30)
    mask = labels[:, 1:] != -100
    assert torch.allclose(fused[mask], own[mask], atol=1e-4), (fused[mask] - own[mask]).abs().max()


def test_hf_backend_takes_both_stop_ids(shaped):
    """The transformers backend takes both generation_config stop ids (not only the tokenizer's EOS)."""
    from reproduce.generate.base import stop_ids
    from reproduce.generate.hf import HFBackend

    for shape, (model_dir, record) in shaped.items():
        backend = HFBackend(str(model_dir), batch_size=4)
        assert stop_ids(backend.tokenizer, backend.model.generation_config) == sorted(record["tokens"]["stop_ids"])
        [[c]] = backend.generate([[{"role": "user", "content": "Say something."}]], temperature=0.0, max_new_tokens=8)
        assert c.n_tokens == 8 and c.finish_reason == "length" and c.text.strip()  # a random model rambles


# ----- the stand-in judge -----

@pytest.fixture(scope="module")
def judge_url():
    from reproduce.rehearsal.judge_server import JudgeServer

    with JudgeServer(JUDGE_MODELS) as srv:
        yield srv.base_url


def _judge(base_url: str, model: str):
    from reproduce.judges.openai_judge import OpenAIJudge

    cfg = {"kind": "openai", "model": model, "base_url": base_url, "api_key_env": None, "concurrency": 8,
           "timeout_s": 30, "max_retries": 0}
    return OpenAIJudge("standin", cfg)


def _official_requests(protocol: str, n: int):
    """``(game, JudgeRequest)`` of the first ``n`` official questions, answered by a fixed fake model."""
    from reproduce.benchmarks import alpaca_eval2, arena_hard, mt_bench
    from reproduce.benchmarks.questions import load_questions
    from reproduce.benchmarks.reference import reference_answers
    from reproduce.generate.commands import load_benchmark

    official_benchmark(protocol)
    module = {"alpaca_eval2": alpaca_eval2, "arena_hard": arena_hard, "mt_bench": mt_bench}[protocol]
    bench = load_benchmark(protocol)
    questions = load_questions(bench)[:n]
    templates = module.load_templates(bench)
    if bench["reference"]["kind"] == "model":  # MT-Bench's baseline is the setting's SFT model
        refs = {q["question_id"]: {"turns": [f"baseline {t[:20]}" for t in q["turns"]]} for q in questions}
    else:
        refs = {r["question_id"]: r for r in reference_answers(bench, questions)}
    out = []
    for q in questions:
        answer = {"question_id": q["question_id"], "turns": [f"model answer {i} to {t[:30]}" for i, t in enumerate(q["turns"])]}
        out.extend(module.build_requests(q, answer, refs[q["question_id"]], bench, templates))
    return module, out


def _ask(base_url: str, model: str, requests) -> list:
    async def run():
        judge = _judge(base_url, model)
        try:
            return await asyncio.gather(*(judge.complete(r) for _, r in requests))
        finally:
            await judge.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("protocol,model,n", [("arena_hard", "gpt-4-1106-preview", 20), ("mt_bench", "gpt-4", 10),
                                              ("alpaca_eval2", "gpt-4-1106-preview", 40)])
def test_official_prompts_get_parseable_deterministic_verdicts(judge_url, protocol, model, n):
    module, requests = _official_requests(protocol, n)
    replies = _ask(judge_url, model, requests)
    verdicts = [module.parse(game, reply) for (game, _), reply in zip(requests, replies)]
    assert None not in verdicts, [r.text for r, v in zip(replies, verdicts) if v is None][:3]
    again = _ask(judge_url, model, requests)
    assert [r.text for r in again] == [r.text for r in replies]  # fixed by the messages
    if protocol == "alpaca_eval2":
        assert all(0.0 < v < 3.0 for v in verdicts)
        for reply in replies:  # the answered token is the most likely one, and the distribution is proper
            assert reply.text == max(reply.top_logprobs, key=reply.top_logprobs.get)
            assert 0.99 < sum(2.718281828 ** lp for lp in reply.top_logprobs.values()) <= 1.0 + 1e-9
        assert len({round(v, 6) for v in verdicts}) > n // 2  # varied preferences, not one constant
    elif protocol == "mt_bench":
        games = Counter(game.split("-")[0] for game, _ in requests)
        assert games["single"] > 0 and games["pair"] > 0
        ratings = {v for (game, _), v in zip(requests, verdicts) if game.startswith("single")}
        pairs = {v for (game, _), v in zip(requests, verdicts) if game.startswith("pair")}
        assert ratings <= set(map(float, range(1, 11))) and len(ratings) > 2 and pairs == {"A", "B", "tie"}
    else:
        assert len(set(verdicts)) >= 3 and set(verdicts) <= {"A>>B", "A>B", "A=B", "B>A", "B>>A"}


def test_model_list_and_unknown_model_through_the_openai_client(judge_url):
    import openai

    client = openai.OpenAI(base_url=judge_url, api_key="EMPTY", max_retries=0, timeout=10)
    assert sorted(m.id for m in client.models.list()) == sorted(JUDGE_MODELS)
    reply = client.chat.completions.create(
        model="gpt-4", messages=[{"role": "user", "content": "Reply [[A]], [[B]] or [[C]]."}], max_tokens=8)
    assert reply.choices[0].message.content in ("Verdict: [[A]]", "Verdict: [[B]]", "Verdict: [[C]]")
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4-0314", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404 and err.value.code == "model_not_found"
    assert "gpt-4-0314" in err.value.message
    client.close()


@pytest.mark.server
def test_cli_server_prints_its_url_stops_on_sigterm_and_lifetime(tmp_path):
    import urllib.request

    url_file = tmp_path / "url"
    proc = subprocess.Popen([sys.executable, "-m", "reproduce.rehearsal.judge_server", "--port", "0", "--models", "gpt-4",
                             "--lifetime-s", "600", "--url-file", str(url_file)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and url_file.read_text().strip() == base_url
        with urllib.request.urlopen(base_url + "/models", timeout=10) as resp:
            assert [m["id"] for m in json.load(resp)["data"]] == ["gpt-4"]
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    short = subprocess.run([sys.executable, "-m", "reproduce.rehearsal.judge_server", "--models", "gpt-4",
                            "--lifetime-s", "0.5"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert short.returncode == 0 and short.stdout.startswith("http://127.0.0.1:")  # stopped by itself


def test_a_busy_port_is_a_one_line_error():
    from reproduce.rehearsal.judge_server import JudgeServer

    with JudgeServer(["gpt-4"]) as srv:
        port = srv.base_url.rsplit(":", 1)[1].split("/")[0]
        proc = subprocess.run([sys.executable, "-m", "reproduce.rehearsal.judge_server", "--port", port, "--models",
                               "gpt-4"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in proc.stderr
