"""The per-token log-prob path every model forward of training and the precompute uses (TRL's fused LM
head: tiled projection, no [batch, length, vocab] logits) gives the numbers of full logits, with a
Llama-3-sized vocabulary, to 1e-6 (absolute, or relative where float32 cannot resolve 1e-6: its spacing is
~4e-6 at |log p| = 40)."""

from __future__ import annotations

import torch


def test_fused_head_equals_materialised_logits_with_a_128k_vocabulary():
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from reproduce.train.precompute import per_token_logps

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128256, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                      num_attention_heads=1, num_key_value_heads=1, head_dim=64, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(50)  # peaked distributions: log-probs from about -30 to 0, not all ~ -11.76
    add_fused_lm_head(model)
    ids = torch.randint(0, cfg.vocab_size, (4, 24))
    completion = torch.zeros_like(ids)
    completion[:, 10:] = 1
    completion[1, 20:] = 0  # a shorter answer: right padding is masked
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": completion}
    fused = per_token_logps(model, batch)
    with torch.no_grad():
        logits = model(input_ids=ids).logits.double()
    full = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0] * completion[:, 1:]
    assert fused.shape == full.shape == (4, 23) and fused.dtype == torch.float32
    assert full.min() < -20  # the values span a wide range
    torch.testing.assert_close(fused.double(), full, atol=1e-6, rtol=1e-6)
    with torch.no_grad():  # and the materialised float32 path it replaces
        full32 = torch.log_softmax(model(input_ids=ids).logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    torch.testing.assert_close(fused, full32 * completion[:, 1:], atol=1e-6, rtol=1e-6)
    assert (fused[completion[:, 1:] == 0] == 0).all()
