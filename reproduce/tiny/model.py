"""A tiny Llama-architecture causal LM with random weights (head_dim 64, as vLLM's CPU kernels need)."""

from __future__ import annotations


def build_tiny_llama(tokenizer, hidden_size: int = 128, num_layers: int = 2, head_dim: int = 64,
                     intermediate_multiple: int = 4, max_position_embeddings: int = 64, seed: int = 0):
    """Return a randomly initialised ``LlamaForCausalLM`` sized for a 2-core CPU."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % head_dim:
        raise ValueError(f"hidden_size {hidden_size} must be a multiple of head_dim {head_dim}")
    heads = hidden_size // head_dim
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_multiple * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
