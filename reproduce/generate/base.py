"""What every generation backend shares: the ``Completion`` record, the context-length policy, stop ids.

Context policy (the same in the ``hf`` and ``vllm`` backends, so they agree on every prompt):

- a prompt that does not fit the context (``len(prompt) >= max_len``) is an error naming the conversation
  (``overflow="error"``, the default) or is cut from the left to leave room for an answer
  (``overflow="truncate"``), the number of dropped tokens recorded in ``Completion.prompt_tokens_dropped``;
- each answer may use ``min(max_new_tokens, max_len - len(prompt))`` tokens; an answer that stops on the
  context rather than on ``max_new_tokens`` has ``finish_reason == "context"``. Neither is ever silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reproduce.io import DataError

OVERFLOW_POLICIES = ("error", "truncate")


@dataclass
class Completion:
    """One generated answer.

    ``truncated`` is True when the answer ended on a token limit (``max_new_tokens`` or the context) rather
    than on a stop token; ``finish_reason`` says which: ``"stop"``, ``"length"`` or ``"context"``.
    ``token_ids`` are the answer's tokens (stop token excluded) where the backend has them.
    """

    text: str
    n_tokens: int
    truncated: bool
    finish_reason: str = ""
    prompt_tokens: int = 0
    prompt_tokens_dropped: int = 0
    token_ids: list[int] | None = field(default=None, repr=False)

    def __post_init__(self):
        if not self.finish_reason:
            self.finish_reason = "length" if self.truncated else "stop"


class PromptTooLong(DataError):
    """A prompt does not fit the model's context; ``index`` is the conversation's position in the call."""

    def __init__(self, index: int, n_tokens: int, max_len: int):
        self.index, self.n_tokens, self.max_len = index, n_tokens, max_len
        super().__init__(f"conversation {index}: prompt of {n_tokens} tokens does not fit the context of "
                         f"{max_len} tokens (set generation.overflow: truncate in the preset to cut it from the left, recorded in the answer)")


def require_chat_template(tokenizer, where: str) -> None:
    """Raise a one-line ``DataError`` when the tokenizer has no chat template (we never guess one)."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(f"{where}: tokenizer has no chat template; add one (chat_template.jinja or "
                        "tokenizer_config.json 'chat_template') — answers are never generated from a guessed format")


def fit_prompt(ids: list[int], index: int, max_new_tokens: int, max_len: int | None,
               overflow: str = "error") -> tuple[list[int], int, int]:
    """Apply the context policy to one prompt: returns ``(prompt_ids, n_dropped, token_budget)``."""
    if overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow: unknown policy {overflow!r} (known: {', '.join(OVERFLOW_POLICIES)})")
    if not max_len:
        return ids, 0, max_new_tokens
    dropped = 0
    if len(ids) >= max_len:
        if overflow == "error":
            raise PromptTooLong(index, len(ids), max_len)
        keep = max_len - max(1, min(max_new_tokens, max_len // 2))
        dropped, ids = len(ids) - keep, ids[len(ids) - keep:]
    return ids, dropped, min(max_new_tokens, max_len - len(ids))


def finish_reason(hit_stop: bool, n_tokens: int, budget: int, max_new_tokens: int) -> str:
    """``"stop"`` (a stop token), ``"length"`` (``max_new_tokens``) or ``"context"`` (the context ran out)."""
    if hit_stop:
        return "stop"
    return "context" if budget < max_new_tokens and n_tokens >= budget else "length"


def stop_ids(tokenizer, generation_config=None, extra: list[int] | None = None) -> list[int]:
    """The token ids that end an answer: the tokenizer's EOS, the model's generation-config EOS, ``extra``."""
    ids = set(extra or [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    eos = getattr(generation_config, "eos_token_id", None) if generation_config is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(eos)
    return sorted(ids)


def model_fingerprint(model_dir) -> dict:
    """A cheap identity of a local model directory: config/tokenizer file contents and weight file sizes and
    mtimes (a retrained model at the same path gets a new fingerprint). Empty for a non-directory (an id)."""
    from pathlib import Path

    from reproduce.io import content_hash, sha256_file

    path = Path(str(model_dir))
    if not path.is_dir():
        return {}
    small = {p.name: sha256_file(p)[:16] for p in sorted(path.iterdir())
             if p.is_file() and p.suffix in (".json", ".jinja", ".model", ".txt") and p.name != "resolved_config.json"}
    weights = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(path.iterdir())
               if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt")}
    return {"files": content_hash(small), "weights": content_hash(weights)}
