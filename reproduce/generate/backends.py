"""Pick a generation backend from the ``generation`` section of the preset."""

from __future__ import annotations

from reproduce.config import ConfigError

BACKENDS = ("hf", "vllm", "openai")


def make_backend(gen_cfg: dict, model_dir: str, threads: int | None = None, overflow: str = "error",
                 template_kwargs: dict | None = None):
    """The backend ``gen_cfg`` names, with the recipe's pinned chat-template variables (``template_kwargs``,
    e.g. Llama-3.2's ``date_string``) applied to every prompt it renders."""
    backend = _make_backend(gen_cfg, model_dir, threads, overflow)
    if template_kwargs:
        if not hasattr(backend, "template_kwargs"):
            raise ConfigError(f"chat_template_kwargs: the {backend.name} backend renders no chat template here "
                              "(the server does); pin the variables in the server's template instead")
        backend.template_kwargs = dict(template_kwargs)
    return backend


def _make_backend(gen_cfg: dict, model_dir: str, threads: int | None = None, overflow: str = "error"):
    """``hf`` (transformers), ``vllm`` (in-process LLM) or ``openai`` (any OpenAI-compatible endpoint).

    ``overflow`` is the policy for a prompt longer than the context (``reproduce.generate.base``); the
    preset's ``generation.overflow`` overrides it.
    """
    overflow = gen_cfg.get("overflow", overflow)
    kind = gen_cfg.get("backend", "hf")
    if kind == "hf":
        from reproduce.generate.hf import HFBackend

        return HFBackend(model_dir, batch_size=gen_cfg.get("batch_size", 64), threads=threads, overflow=overflow)
    if kind == "vllm":
        from reproduce.generate.vllm_backend import VLLMBackend

        return VLLMBackend(model_dir, tensor_parallel_size=gen_cfg.get("tensor_parallel_size", 1),
                           max_model_len=gen_cfg.get("max_model_len"), overflow=overflow,
                           enforce_eager=gen_cfg.get("enforce_eager"), dtype=gen_cfg.get("dtype", "auto"))
    if kind == "openai":
        from reproduce.generate.openai_backend import OpenAIBackend

        if not gen_cfg.get("base_url"):
            raise ConfigError("generation.base_url: required by the openai backend")
        return OpenAIBackend(model_dir, base_url=gen_cfg["base_url"], concurrency=gen_cfg.get("concurrency", 8))
    raise ConfigError(f"generation.backend: unknown backend '{kind}' (known: {', '.join(BACKENDS)})")
