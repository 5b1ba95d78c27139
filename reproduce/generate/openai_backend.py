"""Generate through any OpenAI-compatible chat endpoint (a user's ``vllm serve``, an API model), async with
bounded concurrency. The key comes from $OPENAI_API_KEY (or "EMPTY" for a local server).

The server applies the chat template. A request the server rejects (e.g. a prompt longer than its
context) is an error naming the conversation; ``finish_reason == "length"`` is recorded as truncated.
"""

from __future__ import annotations

import asyncio
import os

from reproduce.generate.base import Completion
from reproduce.io import DataError


class OpenAIBackend:
    """Chat completions from ``base_url`` for model ``model``."""

    name = "openai"

    def __init__(self, model: str, base_url: str, concurrency: int = 8, api_key_env: str = "OPENAI_API_KEY"):
        self.model, self.base_url, self.concurrency = model, base_url, concurrency
        self.api_key = os.environ.get(api_key_env) or "EMPTY"

    async def _one(self, client, sem, index, messages, temperature, max_new_tokens, top_p, seed, n, stop_ids):
        import openai

        extra = {"stop_token_ids": stop_ids} if stop_ids else None  # vLLM's server extension
        async with sem:
            try:
                resp = await client.chat.completions.create(model=self.model, messages=messages, temperature=temperature,
                                                            top_p=top_p, max_tokens=max_new_tokens, seed=seed, n=n,
                                                            extra_body=extra)
            except openai.BadRequestError as e:
                raise DataError(f"{self.base_url}: conversation {index} rejected ({e.message})") from None
        per = (resp.usage.completion_tokens if resp.usage else 0) // max(1, n)
        prompt = resp.usage.prompt_tokens if resp.usage else 0
        return [Completion(c.message.content or "", per, c.finish_reason == "length",
                           "length" if c.finish_reason == "length" else "stop", prompt) for c in resp.choices]

    async def _all(self, conversations, temperature, max_new_tokens, top_p, seeds, n, stop_ids):
        from openai import AsyncOpenAI

        sem = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(base_url=self.base_url, api_key=self.api_key) as client:
            return await asyncio.gather(*[self._one(client, sem, i, c, temperature, max_new_tokens, top_p, s, n, stop_ids)
                                          for i, (c, s) in enumerate(zip(conversations, seeds))])

    def generate(self, conversations, temperature: float, max_new_tokens: int, top_p: float = 1.0,
                 seed: int | list[int] = 0, num_samples: int = 1, stop_token_ids: list[int] | None = None,
                 **_) -> list[list[Completion]]:
        """Generate ``num_samples`` completions per conversation (at most ``concurrency`` requests in flight)."""
        seeds = seed if isinstance(seed, list) else [seed] * len(conversations)
        return asyncio.run(self._all(conversations, temperature, max_new_tokens, top_p, seeds, num_samples,
                                     stop_token_ids))
