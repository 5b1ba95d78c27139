"""One preference trainer for DPO, SimPO and TGDPO: TRL's ``DPOTrainer`` with ``compute_loss`` overridden.

Per-token log-probs of the policy come from TRL's fused LM head (``model(..., fused_lm_head=True)``,
zero where masked). The reference's and the guidance model's per-token log-probs are either
precomputed once over the data set (default: a TGDPO step is then one policy forward/backward, like
DPO with a precomputed reference) and cached under ``results/``, or computed live with the three models
in memory (parity tests). The loss itself is a registered pure function (``reproduce.train.losses``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from trl import DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import add_fused_lm_head, hash_module

from reproduce.io import content_hash
from reproduce.train.losses import NEEDS_GUIDE, NEEDS_REFERENCE, get_loss

TOKEN_SOURCES = ("ref", "guide")


@dataclass
class TokenLogpCollator(DataCollatorForPreference):
    """TRL's preference collator plus precomputed per-token log-prob columns, padded like the inputs.

    ``<src>_chosen_token_logps`` (one value per completion token) becomes ``<src>_token_logps`` of shape
    (2B, T) aligned with ``input_ids`` (zeros on prompt and padding), chosen rows first as in TRL.
    """

    def torch_call(self, examples):
        out = super().torch_call(examples)
        width = out["input_ids"].shape[1]
        for src in TOKEN_SOURCES:
            if f"{src}_chosen_token_logps" not in examples[0]:
                continue
            rows = []
            for side in ("chosen", "rejected"):
                for ex in examples:
                    vals = [0.0] * len(ex["prompt_ids"]) + list(ex[f"{src}_{side}_token_logps"])
                    if self.max_length is not None:
                        vals = vals[: self.max_length]
                    rows.append(vals + [0.0] * (width - len(vals)))
            out[f"{src}_token_logps"] = torch.tensor(rows, dtype=torch.float32)
        if "pair_id" in examples[0]:
            out["pair_id"] = [ex["pair_id"] for ex in examples]
        return out


def per_token_logps(model, inputs) -> torch.Tensor:
    """Per-token log-probs (2B, T-1) of the completion tokens under ``model`` (zero elsewhere), no grad."""
    mask = inputs["completion_mask"]
    labels = inputs["input_ids"].masked_fill(mask == 0, -100)
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels,
                    fused_lm_head=True, use_cache=False)
    return out.log_probs[:, -(mask.size(1) - 1):].float()


class PreferenceTrainer(DPOTrainer):
    """DPOTrainer whose loss is looked up by name (dpo, simpo, tgdpo) and fed per-token tensors.

    Args beyond DPOTrainer's:
        loss_name: registered loss.
        loss_kwargs: hyperparameters of the loss besides beta (alpha, gamma).
        guide_model: TGDPO's guidance model (a trained DPO model from the same start).
        token_rewards: "precomputed" (cached per-token ref/guide log-probs) or "live" (three models in memory).
        cache_dir: where precomputed per-token log-probs are cached (content-addressed .pt files).
    """

    def __init__(self, *args, loss_name: str, loss_kwargs: dict | None = None, guide_model=None,
                 token_rewards: str = "precomputed", cache_dir: str | Path | None = None, **kwargs):
        self.loss_name, self.loss_fn = loss_name, get_loss(loss_name)
        self.loss_kwargs = dict(loss_kwargs or {})
        self.needs_ref, self.needs_guide = NEEDS_REFERENCE[loss_name], NEEDS_GUIDE[loss_name]
        if self.needs_guide and guide_model is None:
            raise ValueError(f"loss '{loss_name}' needs a guidance model")
        if token_rewards not in ("precomputed", "live"):
            raise ValueError(f"token_rewards must be 'precomputed' or 'live', got {token_rewards!r}")
        self.token_rewards = token_rewards
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.guide_model = guide_model
        if guide_model is not None:
            guide_model.eval()
            for p in guide_model.parameters():
                p.requires_grad_(False)
            add_fused_lm_head(guide_model)
        super().__init__(*args, **kwargs)
        if self.guide_model is not None:
            self.guide_model.to(self.accelerator.device)

    # -- precompute ---------------------------------------------------------------------------------
    def _precompute_ref_logps(self, dataset, name, batch_size):
        """Replace TRL's sequence-level reference precompute with one pass computing per-token
        log-probs of the reference (the policy before training) and, for TGDPO, the guidance model."""
        sources = []
        if self.needs_ref:
            sources.append(("ref", self.ref_model or self.model))
        if self.needs_guide and self.token_rewards == "precomputed":
            sources.append(("guide", self.guide_model))
        if not sources:
            return dataset
        key = content_hash({"data": dataset._fingerprint, "models": [hash_module(m) for _, m in sources],
                            "sources": [s for s, _ in sources], "max_length": self.args.max_length})
        cache = self.cache_dir / f"token_logps-{key}.pt" if self.cache_dir else None
        if cache is not None and cache.exists():
            columns = torch.load(cache)
        else:
            columns = self._compute_token_logps(dataset, sources, batch_size)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(".tmp")
                torch.save(columns, tmp)
                tmp.rename(cache)  # atomic: a killed precompute leaves no half cache
        for col, values in columns.items():
            dataset = dataset.add_column(col, values)
        # TRL's loss path reads sequence sums of the reference under these names (kept for its metrics).
        if "ref_chosen_token_logps" in columns:
            dataset = dataset.add_column("ref_chosen_logps", [sum(v) for v in columns["ref_chosen_token_logps"]])
            dataset = dataset.add_column("ref_rejected_logps", [sum(v) for v in columns["ref_rejected_token_logps"]])
        return dataset

    def _compute_token_logps(self, dataset, sources, batch_size) -> dict[str, list[list[float]]]:
        columns = {f"{s}_{side}_token_logps": [] for s, _ in sources for side in ("chosen", "rejected")}
        device = self.accelerator.device
        for start in range(0, len(dataset), batch_size):
            examples = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = self.data_collator(examples)
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            for src, model in sources:
                lp = per_token_logps(model, batch).cpu()
                n = len(examples)
                for side, offset in (("chosen", 0), ("rejected", n)):
                    for i, ex in enumerate(examples):
                        p, c = len(ex["prompt_ids"]), len(ex[f"{side}_ids"])
                        row = lp[offset + i, p - 1 : p - 1 + c]
                        columns[f"{src}_{side}_token_logps"].append(row.tolist())
        return columns

    # -- loss ---------------------------------------------------------------------------------------
    def _side_logps(self, src: str, model, inputs, width: int) -> torch.Tensor:
        """Per-token log-probs of the reference or guidance model: from the batch (precomputed) or a forward."""
        if self.token_rewards == "precomputed":
            return inputs[f"{src}_token_logps"][:, 1:].to(inputs["input_ids"].device)
        return per_token_logps(model, inputs)[:, -width:]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Policy forward with the fused LM head, then the registered loss on per-token tensors."""
        mode = "train" if model.training else "eval"
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels,
                    fused_lm_head=True, use_cache=False)
        width = completion_mask.size(1) - 1
        logps = out.log_probs[:, -width:]
        mask = completion_mask[:, 1:].to(logps.dtype)
        pc, pr = logps.chunk(2)
        mc, mr = mask.chunk(2)
        kw = dict(policy_chosen_logps=pc, policy_rejected_logps=pr, chosen_mask=mc, rejected_mask=mr,
                  beta=self.beta, **self.loss_kwargs)
        if self.needs_ref:
            ref = self._side_logps("ref", self.ref_model, inputs, width).to(logps.dtype)
            kw["ref_chosen_logps"], kw["ref_rejected_logps"] = ref.chunk(2)
        if self.needs_guide:
            guide = self._side_logps("guide", self.guide_model, inputs, width).to(logps.dtype)
            kw["guide_chosen_logps"], kw["guide_rejected_logps"] = guide.chunk(2)
        per_pair, chosen_rewards, rejected_rewards = self.loss_fn(**kw)
        loss = per_pair.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite {self.loss_name} loss ({loss.item()}) at step {self.state.global_step}, "
                f"pairs {inputs.get('pair_id')}"
            )
        self._log_metrics(mode, chosen_rewards, rejected_rewards, kw, inputs)
        return (loss, out) if return_outputs else loss

    def _log_metrics(self, mode, chosen_rewards, rejected_rewards, kw, inputs) -> None:
        m = self._metrics[mode]
        m["rewards/chosen"].append(chosen_rewards.mean().item())
        m["rewards/rejected"].append(rejected_rewards.mean().item())
        m["rewards/margins"].append((chosen_rewards - rejected_rewards).mean().item())
        m["rewards/accuracies"].append((chosen_rewards > rejected_rewards).float().mean().item())
        m["num_tokens_batch"].append(float(inputs["attention_mask"].sum().item()))
        if self.needs_guide:
            # TGDPO's token rewards r_t and how often a weight 1 +/- alpha r_t turns negative (PAPER.md: unguarded).
            alpha = self.loss_kwargs["alpha"]
            mc, mr = kw["chosen_mask"].bool(), kw["rejected_mask"].bool()
            r_w = (self.beta * (kw["guide_chosen_logps"] - kw["ref_chosen_logps"]))[mc]
            r_l = (self.beta * (kw["guide_rejected_logps"] - kw["ref_rejected_logps"]))[mr]
            r = torch.cat([r_w, r_l])
            neg = torch.cat([(1 + alpha * r_w) < 0, (1 - alpha * r_l) < 0]).float()
            m["token_reward/mean"].append(r.mean().item())
            m["token_reward/std"].append(r.std().item() if r.numel() > 1 else 0.0)
            m["token_reward/min"].append(r.min().item())
            m["token_reward/max"].append(r.max().item())
            m["token_weight/negative_fraction"].append(neg.mean().item())


def check_same_tokenizer(policy_tok, guide_tok, guide_path: str) -> None:
    """TGDPO needs the guidance model to share the policy's tokenizer and chat template (PAPER.md)."""
    if policy_tok.get_vocab() != guide_tok.get_vocab():
        raise ValueError(f"guidance model {guide_path}: tokenizer vocabulary differs from the policy's")
    if (policy_tok.chat_template or "") != (guide_tok.chat_template or ""):
        raise ValueError(f"guidance model {guide_path}: chat template differs from the policy's")
