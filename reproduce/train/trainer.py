"""One preference trainer for DPO, SimPO and TGDPO: TRL's ``DPOTrainer`` with ``compute_loss`` overridden.

Per-token log-probs of the policy come from TRL's fused LM head (``model(..., fused_lm_head=True)``,
zero where masked). The reference's and the guidance model's per-token log-probs are either
precomputed once over the data set (default: a TGDPO step is then one policy forward/backward, like
DPO with a precomputed reference) and cached under ``results/``, or computed live with the three models
in memory (parity tests). The loss itself is a registered pure function (``reproduce.train.losses``).
"""

from __future__ import annotations

import gc
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate.utils import broadcast_object_list
from trl import DPOTrainer
from trl.models import prepare_deepspeed, prepare_fsdp
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import add_fused_lm_head

from reproduce.config import ConfigError
from reproduce.io import content_hash
from reproduce.train.disk import check_cache_disk
from reproduce.train.losses import get_loss
from reproduce.train.precompute import (CACHE_FORMAT, zero3_partitioned, atomic_torch_save, compute_token_logps,
                                        data_identity, model_identity, per_token_logps, row_lengths, unpack)

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


class PreferenceTrainer(DPOTrainer):
    """DPOTrainer whose loss is looked up by name (dpo, simpo, tgdpo) and fed per-token tensors.

    Args beyond DPOTrainer's:
        loss_name: registered loss.
        loss_kwargs: hyperparameters of the loss besides beta (alpha, gamma).
        guide_model: TGDPO's guidance model (a DPO/SimPO model from the same start). With precomputed token
            rewards it is placed on the accelerator only for the precompute (inside ``DPOTrainer.__init__``)
            and freed once its log-probs are cached; live, it stays for training.
        token_rewards: "precomputed" (cached per-token ref/guide log-probs) or "live" (three models in memory).
        cache_dir: where precomputed per-token log-probs are cached (content-addressed .pt files).
    """

    def __init__(self, model, ref_model=None, args=None, *rest, loss_name: str, loss_kwargs: dict | None = None,
                 guide_model=None, token_rewards: str = "precomputed", cache_dir: str | Path | None = None, **kwargs):
        self.loss_name, self.loss_fn = loss_name, get_loss(loss_name)
        self.loss_kwargs = dict(loss_kwargs or {})
        self.needs_ref, self.needs_guide = self.loss_fn.needs_reference, self.loss_fn.needs_guide
        if self.needs_guide and guide_model is None:
            raise ValueError(f"loss '{loss_name}' needs a guidance model")
        if token_rewards not in ("precomputed", "live"):
            raise ValueError(f"token_rewards must be 'precomputed' or 'live', got {token_rewards!r}")
        self.token_rewards = token_rewards
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.guide_model, self._guide_placed, self._guide_hash = guide_model, False, None
        self.precompute_stats = None  # the reference/guide precompute's figures (or its cache hit)
        # the training pairs' rows in the log-prob cache ({cache, key, sources, pair_ids}): written beside the
        # model so the report finds each pair's per-token values without loading or hashing a model
        self.token_index = None
        if guide_model is not None:
            guide_model.eval()
            for p in guide_model.parameters():
                p.requires_grad_(False)
            add_fused_lm_head(guide_model)
            if token_rewards == "precomputed":  # before any sharding (DTensor cannot be hashed), as TRL does
                self._guide_hash = model_identity(guide_model)
        if args is None or args.disable_dropout:
            for m in (model, ref_model, guide_model):
                if isinstance(m, torch.nn.Module):
                    disable_attention_dropout(m)
        # runs the reference/guide precompute (TRL calls it in __init__)
        super().__init__(model, ref_model, args, *rest, **kwargs)
        if self.guide_model is not None:
            self._place_guide()  # live token rewards: the guide forwards in every training step

    # -- placement ----------------------------------------------------------------------------------
    def _place_guide(self) -> None:
        """Put the guide where the policy's batches are, as TRL places its reference model: a ZeRO-3
        inference engine under DeepSpeed, FSDP-sharded under FSDP, else ``accelerator.device``."""
        if self._guide_placed:
            return
        if self.is_deepspeed_enabled:
            self.guide_model = prepare_deepspeed(self.guide_model, self.accelerator)
        elif self.is_fsdp_enabled:
            self.guide_model = prepare_fsdp(self.guide_model, self.accelerator)
        else:
            self.guide_model.to(self.accelerator.device)
        self._guide_placed = True

    def _reference_for_precompute(self):
        """The model whose log-probs are the reference: TRL's ``ref_model`` (FSDP loads one for the
        precompute), else the policy before training; under DeepSpeed the policy is not placed until
        ``train``, so it runs inside an inference engine (built once, as TRL does)."""
        if self.ref_model is not None:
            return self.ref_model
        if self.is_deepspeed_enabled:
            if self._precompute_engine is None:
                self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
            return self._precompute_engine
        return self.model

    def _note(self, message: str) -> None:
        """One line on stderr (the job log) from the main process."""
        if self.accelerator.is_main_process:
            print(message, file=sys.stderr, flush=True)

    def _free_guide(self) -> None:
        """Drop the guide once its log-probs are cached: training reads them from the batches."""
        self.guide_model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- precompute ---------------------------------------------------------------------------------
    def _precompute_ref_logps(self, dataset, name, batch_size):
        """Replace TRL's sequence-level reference precompute with one pass computing per-token
        log-probs of the reference (the policy before training) and, for TGDPO, the guidance model
        (:mod:`reproduce.train.precompute`); its figures go to ``precompute_stats`` and the log.

        The pass is sharded over ranks and gathered; rank 0 writes the cache once (atomically: complete or
        absent), every rank waits for it and reads the same file.
        """
        hashes = {}  # source -> content hash of its weights
        if self.needs_ref:
            hashes["ref"] = model_identity(self.model) if zero3_partitioned(self.model) else self._precompute_model_hash
        if self.needs_guide and self.token_rewards == "precomputed":
            hashes["guide"] = self._guide_hash
        if not hashes:
            return dataset
        # rank 0's key for every rank (ZeRO-3 shard hashes may differ per rank)
        key = [content_hash({"data": data_identity(dataset), "models": list(hashes.values()), "format": CACHE_FORMAT,
                             "sources": list(hashes), "max_length": self.args.max_length})]
        broadcast_object_list(key, from_process=0)
        # the key names the models' weights, so runs sharing a guide (an alpha sweep) visibly share one precompute
        self._note(f"per-token log-prob cache key {key[0]} (" + ", ".join(f"{src} weights {h[:16]}" for src, h in
                                                                       hashes.items()) + ")")
        cache = self.cache_dir / f"token_logps-{key[0]}.pt" if self.cache_dir else None
        hit = [cache is not None and cache.exists()]
        broadcast_object_list(hit, from_process=0)
        if hit[0]:
            packed = torch.load(cache)
            self.precompute_stats = {"cache": str(cache), "hit": True, "key": key[0], "weights": hashes}
            self._note(f"token log-probs read from {cache}")
        else:
            if cache is not None and self.accelerator.is_main_process:
                check_cache_disk(cache, row_lengths(dataset)[1] * 4 * len(hashes) + (1 << 20))  # float32 values
            sources = []  # placed only now: a cache hit needs no model on the accelerator
            if "ref" in hashes:
                sources.append(("ref", self._reference_for_precompute()))
            if "guide" in hashes:
                self._place_guide()
                sources.append(("guide", self.guide_model))
            self._check_placed(sources)
            packed, stats = compute_token_logps(self.accelerator, self.data_collator, dataset, sources, batch_size)
            self.precompute_stats = {"cache": str(cache) if cache else None, "hit": False, "key": key[0],
                                     **stats, "weights": hashes}
            self._note(f"token log-probs of {stats['rows']} pairs ({', '.join(stats['models'])}): {stats['tokens']} "
                       f"tokens in {stats['seconds']:.1f} s, {stats['forward_tokens_per_s']:.0f} forward tokens/s")
            if cache is not None:
                if self.accelerator.is_main_process:
                    atomic_torch_save(packed, cache)
                    self._note(f"token log-probs of {self.accelerator.num_processes} rank(s) written to {cache}")
                self.accelerator.wait_for_everyone()
                packed = torch.load(cache)  # every rank trains on exactly what rank 0 wrote
        if self.guide_model is not None and self.token_rewards == "precomputed":
            self._free_guide()
        if name == "train" and cache is not None and "pair_id" in dataset.column_names:
            self.token_index = {"cache": str(cache), "key": key[0], "format": CACHE_FORMAT, "sources": list(hashes),
                                "max_length": self.args.max_length, "truncation_mode": self.args.truncation_mode,
                                "pair_ids": [str(p) for p in dataset["pair_id"]]}
        columns = {col: unpack(v) for col, v in packed["columns"].items()}
        for col, values in columns.items():
            dataset = dataset.add_column(col, [v.numpy() for v in values])
        # TRL's loss path reads sequence sums of the reference under these names (kept for its metrics).
        if "ref_chosen_token_logps" in columns:
            dataset = dataset.add_column("ref_chosen_logps", [float(v.sum()) for v in columns["ref_chosen_token_logps"]])
            dataset = dataset.add_column("ref_rejected_logps", [float(v.sum()) for v in columns["ref_rejected_token_logps"]])
        return dataset

    def _check_placed(self, sources) -> None:
        """Every model forwards where its batches go (DeepSpeed places its engines itself)."""
        device = self.accelerator.device
        for src, model in sources:
            p = next(model.parameters())
            if not self.is_deepspeed_enabled and p.device.type != device.type:
                raise RuntimeError(f"precompute: the {src} model is on {p.device}, its batches on {device}")

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
        """Record this micro-batch's metrics reduced over all ranks: means over every rank's pairs (and
        tokens), so rank 0's log describes the whole global batch, as TRL's own metrics do."""
        m, acc = self._metrics[mode], self.accelerator
        chosen, rejected = acc.gather(chosen_rewards.detach()), acc.gather(rejected_rewards.detach())
        m["rewards/chosen"].append(chosen.mean().item())
        m["rewards/rejected"].append(rejected.mean().item())
        m["rewards/margins"].append((chosen - rejected).mean().item())
        m["rewards/accuracies"].append((chosen > rejected).float().mean().item())
        m["num_tokens_batch"].append(acc.gather(inputs["attention_mask"].sum().float().reshape(1)).sum().item())
        if self.needs_guide:
            # TGDPO's token rewards r_t and how often a weight 1 +/- alpha r_t turns negative (docs/paper.md: unguarded).
            alpha = self.loss_kwargs["alpha"]
            mc, mr = kw["chosen_mask"].bool(), kw["rejected_mask"].bool()
            r_w = (self.beta * (kw["guide_chosen_logps"] - kw["ref_chosen_logps"]))[mc].detach().float()
            r_l = (self.beta * (kw["guide_rejected_logps"] - kw["ref_rejected_logps"]))[mr].detach().float()
            r = torch.cat([r_w, r_l])
            neg = torch.cat([(1 + alpha * r_w) < 0, (1 - alpha * r_l) < 0]).float()
            # ranks hold different token counts: reduce sums and extremes, not the tensors themselves
            inf = torch.tensor(float("inf"), device=r.device)
            sums = acc.gather(torch.stack([r.sum(), (r * r).sum(), torch.tensor(float(r.numel()), device=r.device),
                                           neg.sum()]).reshape(1, 4)).sum(0)
            lo = acc.gather((r.min() if r.numel() else inf).reshape(1)).min()
            hi = acc.gather((r.max() if r.numel() else -inf).reshape(1)).max()
            total, count = sums[0].item(), sums[2].item()
            var = (sums[1].item() - total * total / count) / (count - 1) if count > 1 else 0.0
            m["token_reward/mean"].append(total / max(count, 1))
            m["token_reward/std"].append(math.sqrt(max(var, 0.0)))
            m["token_reward/min"].append(lo.item())
            m["token_reward/max"].append(hi.item())
            m["token_weight/negative_fraction"].append(sums[3].item() / max(count, 1))


def disable_attention_dropout(model: torch.nn.Module) -> None:
    """Switch off the dropout that TRL's ``disable_dropout`` misses: Llama/Gemma attention applies
    ``config.attention_dropout`` functionally (no ``nn.Dropout`` module to find)."""
    for module in model.modules():
        if isinstance(getattr(module, "attention_dropout", None), (int, float)):
            module.attention_dropout = 0.0
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "attention_dropout"):
        config.attention_dropout = 0.0


def check_same_tokenizer(policy_tok, guide_tok, guide_path: str) -> None:
    """TGDPO needs the guidance model to share the policy's tokenizer and chat template (docs/paper.md)."""
    if policy_tok.get_vocab() != guide_tok.get_vocab():
        raise ConfigError(f"guidance model {guide_path}: tokenizer vocabulary differs from the policy's")
    if (policy_tok.chat_template or "") != (guide_tok.chat_template or ""):
        raise ConfigError(f"guidance model {guide_path}: chat template differs from the policy's")
