"""The stand-in judge's billed usage, counted with a real tokenizer: the rehearsal's own Llama-3-shaped
byte-level BPE (``models.train_shaped_tokenizer`` on ``models.default_corpus``, the tokenizer of the
rehearsal's llama3-shaped model), never characters / 4, which is what the plan estimates with offline: a
stand-in counting the same way would make the plan-against-usage comparison circular.

Prompt tokens are the chat as the tokenizer's chat template renders it (role headers, the generation prompt),
as an API bills a chat; completion tokens are the reply's text. The tokenizer is a given ``tokenizer.json``
(the rehearsal passes its built model's), else trained once per machine (seconds) and kept in the temporary
directory under its corpus hash, so every later server start reads it.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from pathlib import Path

_LOCK = threading.Lock()  # the server answers from many threads; one tokenizer call at a time is safe


@functools.lru_cache(maxsize=4)
def standin_tokenizer(path: str | None = None):
    """The tokenizer (a ``PreTrainedTokenizerFast`` with the Llama-3 chat template) of ``path`` (a file or
    a model directory holding ``tokenizer.json``), else the default corpus's, trained once and cached."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from reproduce.rehearsal.models import SHAPES, corpus_hash, default_corpus, train_shaped_tokenizer

    shape = SHAPES["llama3"]
    if path is None:
        texts, _ = default_corpus()
        cached = Path(tempfile.gettempdir()) / f"reproduce-standin-tokenizer-{corpus_hash(texts)[:16]}.json"
        if not cached.is_file():
            tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
            train_shaped_tokenizer(shape, texts).backend_tokenizer.save(str(tmp))
            os.replace(tmp, cached)  # whole or absent, whichever process wins
        path = str(cached)
    file = Path(path) / "tokenizer.json" if Path(path).is_dir() else Path(path)
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_file(str(file)), bos_token=shape.bos,
                                  eos_token=shape.eos)
    tok.chat_template = shape.chat_template
    return tok


def chat_messages(body: dict) -> list[dict]:
    """The request's messages as ``{"role", "content"}`` strings (anything else counted as its text)."""
    out = []
    for m in body.get("messages") or []:
        if isinstance(m, dict):
            out.append({"role": str(m.get("role", "user")), "content": str(m.get("content", ""))})
        else:
            out.append({"role": "user", "content": str(m)})
    return out


def usage(body: dict, content: str, tokenizer) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of answering ``body`` with ``content``."""
    messages = chat_messages(body)
    with _LOCK:
        prompt = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
        completion = tokenizer(content, add_special_tokens=False)["input_ids"]
    return max(1, len(prompt["input_ids"])), max(1, len(completion))
