"""The transformers backend: batched ``generate`` on CPU (or one GPU), left-padded, chat template applied.

Sampling is seeded once per batch (``torch.manual_seed(seed + batch offset)``), so sampled answers are
reproducible for a given batch composition; greedy answers do not depend on batching.
"""

from __future__ import annotations

from pathlib import Path

from reproduce.generate.base import Completion, fit_prompt, finish_reason, require_chat_template, stop_ids

__all__ = ["Completion", "HFBackend"]


def load_model_and_tokenizer(path: str | Path):
    """Load a saved causal LM and its tokenizer (eval mode, float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype="float32")
    model.eval()
    return model, tokenizer


class HFBackend:
    """Generate with ``transformers`` from a local model directory.

    Example::

        backend = HFBackend("results/models/tiny-add/sft")
        [c] = backend.generate([[{"role": "user", "content": "37+76="}]], temperature=0.0, max_new_tokens=8)
    """

    name = "hf"
    template_kwargs: dict = {}  # the recipe's chat_template_kwargs (make_backend sets them)

    def __init__(self, model_dir: str, batch_size: int = 64, threads: int | None = None, model=None, tokenizer=None,
                 overflow: str = "error"):
        import torch

        if threads:
            torch.set_num_threads(threads)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_dir)
        require_chat_template(tokenizer, str(model_dir))
        tokenizer.padding_side = "left"
        self.model, self.tokenizer, self.batch_size, self.overflow = model, tokenizer, batch_size, overflow
        self.max_len = getattr(model.config, "max_position_embeddings", None)
        self.model_dir = str(model_dir)

    def encode(self, messages: list[dict]) -> list[int]:
        """Prompt token ids of a conversation, ending with the assistant generation prompt."""
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False,
                                                       **self.template_kwargs))

    def generate(self, conversations: list[list[dict]], temperature: float, max_new_tokens: int,
                 top_p: float = 1.0, seed: int | list[int] = 0, num_samples: int = 1,
                 stop_token_ids: list[int] | None = None) -> list[list[Completion]]:
        """Generate ``num_samples`` completions per conversation; returns one list per conversation.

        ``seed`` may be one int or one per conversation (then each batch is seeded with its first entry).
        """
        seeds = seed if isinstance(seed, list) else None
        out = []
        for start in range(0, len(conversations), self.batch_size):
            batch_seed = seeds[start] if seeds else seed + start
            out.extend(self._batch(conversations[start : start + self.batch_size], start, temperature, max_new_tokens,
                                   top_p, batch_seed, num_samples, stop_token_ids))
        return out

    def _batch(self, convs, offset, temperature, max_new_tokens, top_p, seed, num_samples, extra_stops):
        import torch

        tok = self.tokenizer
        fitted = [fit_prompt(self.encode(c), offset + i, max_new_tokens, self.max_len, self.overflow)
                  for i, c in enumerate(convs)]
        chunk = [ids for ids, _, _ in fitted]
        stops = stop_ids(tok, self.model.generation_config, extra_stops)
        width = max(len(ids) for ids in chunk)
        pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in chunk])
        attn = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk])
        torch.manual_seed(seed)
        # Every row runs to the longest budget; each row is then cut at its own budget (causal, so the cut
        # tokens are exactly those a row-alone run would produce) -- answers do not depend on batching.
        kwargs = dict(max_new_tokens=max(b for _, _, b in fitted), pad_token_id=pad, eos_token_id=stops,
                      num_return_sequences=num_samples)
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.no_grad():
            gen = self.model.generate(input_ids=input_ids, attention_mask=attn, **kwargs)
        new = gen[:, width:].tolist()
        out = []
        for i, (ids_in, dropped, budget) in enumerate(fitted):
            samples = []
            for j in range(num_samples):
                ids = new[i * num_samples + j][:budget]
                cut = next((k for k, t in enumerate(ids) if t in stops), None)
                ids = ids if cut is None else ids[:cut]
                reason = finish_reason(cut is not None, len(ids), budget, max_new_tokens)
                samples.append(Completion(tok.decode(ids, skip_special_tokens=True), len(ids), reason != "stop",
                                          reason, len(ids_in), dropped, ids))
            out.append(samples)
        return out
