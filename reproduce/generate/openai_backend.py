"""Generate through any OpenAI-compatible chat endpoint (a user's ``vllm serve``, an API model), async with
bounded concurrency. The key comes from $OPENAI_API_KEY (or "EMPTY" for a local server)."""

from __future__ import annotations

import asyncio
import os

from reproduce.generate.hf import Completion


class OpenAIBackend:
    """Chat completions from ``base_url`` for model ``model``."""

    name = "openai"

    def __init__(self, model: str, base_url: str, concurrency: int = 8, api_key_env: str = "OPENAI_API_KEY"):
        self.model, self.base_url, self.concurrency = model, base_url, concurrency
        self.api_key = os.environ.get(api_key_env) or "EMPTY"

    async def _one(self, client, sem, messages, temperature, max_new_tokens, top_p, seed, n):
        async with sem:
            resp = await client.chat.completions.create(model=self.model, messages=messages, temperature=temperature,
                                                        top_p=top_p, max_tokens=max_new_tokens, seed=seed, n=n)
        return [Completion(c.message.content or "", (resp.usage.completion_tokens if resp.usage else 0) // max(1, n),
                           c.finish_reason == "length") for c in resp.choices]

    async def _all(self, conversations, temperature, max_new_tokens, top_p, seed, n):
        from openai import AsyncOpenAI

        sem = asyncio.Semaphore(self.concurrency)
        async with AsyncOpenAI(base_url=self.base_url, api_key=self.api_key) as client:
            return await asyncio.gather(*[self._one(client, sem, c, temperature, max_new_tokens, top_p, seed, n)
                                          for c in conversations])

    def generate(self, conversations, temperature: float, max_new_tokens: int, top_p: float = 1.0, seed: int = 0,
                 num_samples: int = 1, **_) -> list[list[Completion]]:
        """Generate ``num_samples`` completions per conversation."""
        return asyncio.run(self._all(conversations, temperature, max_new_tokens, top_p, seed, num_samples))
