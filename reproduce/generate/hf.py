"""The transformers backend: batched ``generate`` on CPU (or one GPU), left-padded, chat template applied."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Completion:
    """One generated answer: its text, token count, and whether it hit the token limit."""

    text: str
    n_tokens: int
    truncated: bool


class HFBackend:
    """Generate with ``transformers`` from a local model directory.

    Example::

        backend = HFBackend("results/models/tiny-add/sft")
        [c] = backend.generate([[{"role": "user", "content": "37+76="}]], temperature=0.0, max_new_tokens=8)
    """

    name = "hf"

    def __init__(self, model_dir: str, batch_size: int = 64, threads: int | None = None, model=None, tokenizer=None):
        import torch

        from reproduce.tiny.sft import load_model_and_tokenizer

        if threads:
            torch.set_num_threads(threads)
        if model is None:
            model, tokenizer = load_model_and_tokenizer(model_dir)
        if not tokenizer.chat_template:
            raise ValueError(f"{model_dir}: tokenizer has no chat template")
        tokenizer.padding_side = "left"
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size
        self.max_len = getattr(model.config, "max_position_embeddings", None)

    def encode(self, messages: list[dict]) -> list[int]:
        """Prompt token ids of a conversation, ending with the assistant generation prompt."""
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))

    def generate(self, conversations: list[list[dict]], temperature: float, max_new_tokens: int,
                 top_p: float = 1.0, seed: int = 0, num_samples: int = 1) -> list[list[Completion]]:
        """Generate ``num_samples`` completions per conversation; returns one list per conversation."""
        import torch

        tok, out = self.tokenizer, []
        for start in range(0, len(conversations), self.batch_size):
            chunk = [self.encode(c) for c in conversations[start : start + self.batch_size]]
            budget = max_new_tokens
            if self.max_len:
                longest = max(len(ids) for ids in chunk)
                if longest >= self.max_len:
                    raise ValueError(
                        f"prompt of {longest} tokens does not fit the context of {self.max_len} tokens "
                        f"(conversation {start + max(range(len(chunk)), key=lambda i: len(chunk[i]))})"
                    )
                budget = min(max_new_tokens, self.max_len - longest)
            width = max(len(ids) for ids in chunk)
            pad = tok.pad_token_id
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in chunk])
            attn = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in chunk])
            torch.manual_seed(seed + start)
            kwargs = dict(max_new_tokens=budget, pad_token_id=pad, eos_token_id=tok.eos_token_id,
                          num_return_sequences=num_samples)
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            else:
                kwargs.update(do_sample=False)
            with torch.no_grad():
                gen = self.model.generate(input_ids=input_ids, attention_mask=attn, **kwargs)
            new = gen[:, width:]
            for i in range(len(chunk)):
                samples = []
                for j in range(num_samples):
                    ids = new[i * num_samples + j].tolist()
                    ended = tok.eos_token_id in ids
                    if ended:
                        ids = ids[: ids.index(tok.eos_token_id)]
                    ids = [t for t in ids if t != pad]
                    samples.append(Completion(tok.decode(ids, skip_special_tokens=True), len(ids), not ended))
                out.append(samples)
        return out
