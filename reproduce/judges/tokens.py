"""Token counting without the network: tiktoken's encoding when its file is already cached on disk,
else characters / 4 (an estimate, and every count says which it is)."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path

# Characters per token when no tokenizer is at hand (OpenAI's rule of thumb for English).
CHARS_PER_TOKEN = 4.0
TOKENS_PER_MESSAGE = 4  # chat-format overhead per message (OpenAI's cookbook count for gpt-4-class models)


def token_counter(model: str):
    """``(count(text) -> int, basis)``: tiktoken's encoding of ``model`` if its file is cached offline
    (never downloads: planning and judging must not reach the network just to count), else chars / 4."""
    try:
        import tiktoken

        name = tiktoken.encoding_name_for_model(model)
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or \
            os.path.join(tempfile.gettempdir(), "data-gym-cache")
        if (Path(cache) / hashlib.sha1(url.encode()).hexdigest()).exists():
            enc = tiktoken.get_encoding(name)
            return (lambda s: len(enc.encode(s, disallowed_special=()))), f"counted with tiktoken {name}"
    except Exception:  # unknown model, tiktoken missing or its cache unreadable: fall back
        pass
    return (lambda s: math.ceil(len(s) / CHARS_PER_TOKEN)), "estimated as characters / 4 (no tokenizer file offline)"


def message_tokens(messages, count) -> int:
    """Prompt tokens of chat ``messages``: each content's tokens plus the per-message overhead."""
    return sum(count(str(m.get("content", ""))) + TOKENS_PER_MESSAGE for m in messages or ())
