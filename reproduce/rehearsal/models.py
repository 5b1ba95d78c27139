"""Tiny random-init Hugging Face model directories shaped like the paper's Llama-3 and Gemma-2 models.

Each directory is what ``kind: hf`` with ``local_dir`` loads for a paper setting: ``config.json``,
``model.safetensors``, ``generation_config.json``, ``tokenizer.json`` + ``tokenizer_config.json`` and the
chat template as transformers writes it (``chat_template.jinja``), built from a seed (no model is downloaded).
The tokenizer is a byte-level BPE trained here on a fixed corpus (the official benchmark texts when they
can be had), so the full question sets stay well inside the context.

What is mirrored, because the paper path must cope with it:

- ``llama3`` (Meta-Llama-3-8B-Instruct): 256 special tokens after the BPE vocabulary at Llama-3's offsets
  (``<|begin_of_text|>`` +0, ``<|end_of_text|>`` +1, ``<|start_header_id|>`` +6, ``<|end_header_id|>`` +7,
  ``<|eot_id|>`` +9); **no pad token**; the tokenizer's EOS is ``<|end_of_text|>`` while a turn ends with
  ``<|eot_id|>`` (the tokenizer as first released; Meta's 2024-05-10 update made ``<|eot_id|>`` the EOS,
  which is the easier case: code that copes with this one copes with both); ``generation_config``
  ``eos_token_id = [<|end_of_text|>, <|eot_id|>]`` as Meta ships it; a chat template that takes a system
  message; BOS added by the tokenizer's post-processor and by the template (as Llama-3's). LlamaForCausalLM
  with grouped-query attention and an untied LM head (as Llama-3-8B; tied at this size and init, every
  greedy answer repeats the prompt's last token, a newline, which strips to an empty answer).
- ``gemma2`` (gemma-2-2b-it): ``<pad>``/``<eos>``/``<bos>``/``<unk>`` = 0/1/2/3 and ``<start_of_turn>`` /
  ``<end_of_turn>`` = 106/107 as in Gemma-2; a pad token; EOS ``<eos>``; ``generation_config``
  ``eos_token_id = [<eos>, <end_of_turn>]``; a chat template that raises on a system role and on
  non-alternating roles, and names the assistant ``model``. Gemma2ForCausalLM with Gemma-2's attention and
  final-logit soft-capping and alternating sliding-window layers.

Both use head_dim 64 (vLLM's CPU attention supports it) and 2 layers of width 128, so vLLM CPU loads and
generates in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from reproduce.io import atomic_write_json

BUILD_RECORD = "rehearsal_build.json"  # what was built from what (shape, seed, corpus hash), for provenance
DEFAULT_VOCAB = 4096  # BPE merges + special tokens; keeps the longest Arena-Hard prompt ~3k tokens
MAX_POSITIONS = 8192  # Llama-3's and Gemma-2's own context length

LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
GEMMA2_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\n' }}{%- endif %}"
)


def _llama3_specials() -> list[str]:
    named = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>", 7: "<|end_header_id|>",
             9: "<|eot_id|>"}
    reserved = iter(range(256))
    return [named.get(i) or f"<|reserved_special_token_{next(reserved)}|>" for i in range(256)]


def _gemma2_specials() -> list[str]:
    return ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "[multimodal]"] + \
        [f"<unused{i}>" for i in range(100)] + ["<start_of_turn>", "<end_of_turn>"]


# Llama-3's pre-tokenizer split (its tokenizer.json): newline runs are chunks of their own, so the generation
# prompt's closing "\n\n" tokenizes the same alone and followed by an answer; GPT-2's byte-level regex splits
# "\n\nThe" as "\n" + "\n" + "The" but a trailing "\n\n" as one chunk, so TRL's prompt would not be a prefix
# of prompt + completion.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@dataclass(frozen=True)
class Shape:
    """The tokenizer and model layout of one shape.

    ``specials_first``: special tokens take the lowest ids (Gemma) or follow the BPE vocabulary (Llama-3).
    ``stop_tokens``: the generation_config EOS list, in order. ``tied_embeddings``: the LM head shares the
    input embedding (Gemma-2, Llama-3.2) or has its own matrix (Llama-3-8B).
    """

    name: str
    architecture: str
    specials: tuple[str, ...]
    specials_first: bool
    bos: str
    eos: str
    end_of_turn: str
    pad: str | None
    stop_tokens: tuple[str, ...]
    chat_template: str
    tied_embeddings: bool
    split_regex: str | None = None  # pre-tokenizer split before byte-level BPE; None: GPT-2's byte-level regex


SHAPES = {
    "llama3": Shape("llama3", "LlamaForCausalLM", tuple(_llama3_specials()), False, "<|begin_of_text|>",
                    "<|end_of_text|>", "<|eot_id|>", None, ("<|end_of_text|>", "<|eot_id|>"), LLAMA3_TEMPLATE,
                    tied_embeddings=False, split_regex=LLAMA3_SPLIT),
    "gemma2": Shape("gemma2", "Gemma2ForCausalLM", tuple(_gemma2_specials()), True, "<bos>", "<eos>",
                    "<end_of_turn>", "<pad>", ("<eos>", "<end_of_turn>"), GEMMA2_TEMPLATE,
                    tied_embeddings=True),
}


# ----- corpus -----

def default_corpus() -> tuple[list[str], str]:
    """The tokenizer's training texts and where they came from.

    When the official files can be had (``reproduce.official.fetch_file``: a mirror directory, the cache or
    the pinned download): every question turn and reference answer of AlpacaEval 2, Arena-Hard v0.1 and
    MT-Bench, in file order. Otherwise: the repository's README and Python sources and every split of the
    tiny task's prompts, so a model build still works on a machine with neither (a different tokenizer, recorded in
    ``rehearsal_build.json``); the rehearsal's own run needs the official files and says so.
    """
    from reproduce.benchmarks.questions import load_questions
    from reproduce.generate.commands import load_benchmark
    from reproduce.io import DataError

    try:
        texts = []
        for name in ("alpaca_eval2", "arena_hard", "mt_bench"):
            for q in load_questions(load_benchmark(name)):
                texts.extend(q["turns"])
                texts.extend(q.get("reference") or [])
        return texts, "official benchmark texts (AlpacaEval 2, Arena-Hard v0.1, MT-Bench)"
    except DataError:
        pass  # not obtainable here: fall back to texts the repository holds
    from reproduce.config import ROOT
    from reproduce.tasks import load_task

    # English prose and code the repository holds (enough text for the 4096-token vocabulary), sorted so the
    # corpus is fixed for a commit, then every prompt of the tiny task.
    files = [ROOT / "README.md"] + sorted((ROOT / "reproduce").rglob("*.py"))
    texts = [f.read_text(encoding="utf-8") for f in files]
    task = load_task("addition")
    for split, _ in task.splits:
        texts += task.split(split)
    return texts, "README.md + reproduce/**/*.py + tiny addition task (official benchmark files not obtainable)"


def corpus_hash(texts: Iterable[str]) -> str:
    """sha256 over the texts in order (a different corpus gives a different tokenizer)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


# ----- tokenizer -----

def train_shaped_tokenizer(shape: Shape, texts: list[str], vocab_size: int = DEFAULT_VOCAB):
    """A byte-level BPE of ``vocab_size`` tokens in all (specials included) laid out like ``shape``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    n_bpe = vocab_size - len(shape.specials)
    bpe = Tokenizer(models.BPE())
    if shape.split_regex:
        from tokenizers import Regex

        bpe.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(shape.split_regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    # Gemma's specials hold the lowest ids: train with them; Llama-3's follow the vocabulary: add them after.
    trainer = trainers.BpeTrainer(vocab_size=n_bpe + (len(shape.specials) if shape.specials_first else 0),
                                  special_tokens=list(shape.specials) if shape.specials_first else [],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    if not shape.specials_first:
        bpe.add_special_tokens(list(shape.specials))
    if bpe.get_vocab_size() != vocab_size:
        raise ValueError(f"tokenizer for {shape.name}: trained {bpe.get_vocab_size()} tokens, wanted {vocab_size} "
                         "(corpus too small for the vocabulary)")
    # The tokenizer itself prepends BOS on encode(add_special_tokens=True), as Llama-3's and Gemma-2's do.
    bos_id = bpe.token_to_id(shape.bos)
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{shape.bos} $A", pair=f"{shape.bos} $A {shape.bos} $B", special_tokens=[(shape.bos, bos_id)])
    extra = {"unk_token": "<unk>"} if "<unk>" in shape.specials else {}
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=shape.bos, eos_token=shape.eos,
                                  pad_token=shape.pad, model_max_length=MAX_POSITIONS, **extra)
    tok.chat_template = shape.chat_template
    return tok


# ----- model -----

def build_model(shape: Shape, tokenizer, seed: int = 0, hidden_size: int = 128, num_layers: int = 2,
                head_dim: int = 64, num_kv_heads: int = 1):
    """A random-init causal LM of ``shape.architecture`` for ``tokenizer`` (seeded; float32)."""
    import torch
    from transformers import GenerationConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (shape.bos, shape.eos, *shape.stop_tokens)}
    common = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=4 * hidden_size,
                  num_hidden_layers=num_layers, num_attention_heads=hidden_size // head_dim,
                  num_key_value_heads=num_kv_heads, head_dim=head_dim, max_position_embeddings=MAX_POSITIONS,
                  bos_token_id=ids[shape.bos], eos_token_id=ids[shape.eos], pad_token_id=tokenizer.pad_token_id,
                  tie_word_embeddings=shape.tied_embeddings, attention_dropout=0.0)
    if shape.architecture == "LlamaForCausalLM":
        from transformers import LlamaConfig, LlamaForCausalLM

        config, cls = LlamaConfig(**common, rope_theta=500000.0, rms_norm_eps=1e-5), LlamaForCausalLM
    else:
        from transformers import Gemma2Config, Gemma2ForCausalLM

        # Gemma-2's own softcaps (attention 50, final logits 30) and alternating sliding/full attention;
        # query_pre_attn_scalar = head_dim, as gemma-2-2b's.
        config = Gemma2Config(**common, query_pre_attn_scalar=head_dim, sliding_window=4096,
                              attn_logit_softcapping=50.0, final_logit_softcapping=30.0,
                              hidden_activation="gelu_pytorch_tanh")
        cls = Gemma2ForCausalLM
    torch.manual_seed(seed)
    model = cls(config).to(torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=ids[shape.bos], eos_token_id=[ids[t] for t in shape.stop_tokens],
        pad_token_id=tokenizer.pad_token_id)
    return model


def weights_hash(model) -> str:
    """sha256 over every parameter's name, shape and bytes (independent of the file format)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def build_shaped_model(shape: str, out_dir: str | Path, seed: int = 0, corpus: list[str] | None = None,
                       vocab_size: int = DEFAULT_VOCAB) -> dict:
    """Build the ``shape`` model directory at ``out_dir`` (replaced as a whole: complete or absent).

    ``corpus``: the tokenizer's training texts (default: ``default_corpus()``). Returns the build record
    (also written as ``rehearsal_build.json``): shape, seed, corpus source and hash, vocabulary, special
    token ids, parameter count and weights hash.
    """
    import transformers

    if shape not in SHAPES:
        raise ValueError(f"shape: unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    spec = SHAPES[shape]
    if corpus is None:
        corpus, source = default_corpus()
    else:
        corpus, source = list(corpus), "given corpus"
    tok = train_shaped_tokenizer(spec, corpus, vocab_size)
    model = build_model(spec, tok, seed=seed)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    record = {
        "shape": shape, "architecture": spec.architecture, "seed": seed, "transformers": transformers.__version__,
        "corpus": {"source": source, "texts": len(corpus), "sha256": corpus_hash(corpus)},
        "vocab_size": len(tok), "max_position_embeddings": MAX_POSITIONS,
        "tokens": {"bos": spec.bos, "eos": spec.eos, "end_of_turn": spec.end_of_turn, "pad": spec.pad,
                   "stop_ids": list(model.generation_config.eos_token_id)},
        "parameters": sum(p.numel() for p in model.parameters()), "weights_sha256": weights_hash(model),
    }
    atomic_write_json(tmp / BUILD_RECORD, record)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return record


def main(argv: list[str] | None = None) -> int:
    """``python -m reproduce.rehearsal.models --shape llama3 --out DIR --seed 0``: build one model directory."""
    ap = argparse.ArgumentParser(description="Build a tiny random-init Hugging Face model directory shaped like "
                                             "Llama-3 or Gemma-2 (tokenizer, chat template, stop ids), offline.")
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES),
                    help="llama3: no pad token, <|eot_id|> ends a turn, EOS <|end_of_text|>, system role allowed; "
                         "gemma2: pad token, <end_of_turn>, a system role is an error")
    ap.add_argument("--out", required=True, type=Path, help="model directory to write (replaced if present)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    ap.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB,
                    help=f"tokens in all, special tokens included (default {DEFAULT_VOCAB})")
    args = ap.parse_args(argv)
    record = build_shaped_model(args.shape, args.out, seed=args.seed, vocab_size=args.vocab_size)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
