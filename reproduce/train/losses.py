"""Preference losses as small pure functions over per-token tensors, registered by name.

Every loss takes keyword arguments: per-token log-probs of shape (B, T) (zero where masked) and 0/1
masks of the same shape, and returns ``(loss, chosen_rewards, rejected_rewards)`` with each of shape
(B,): the per-pair loss and the implicit rewards that are logged.

Example::

    >>> import torch
    >>> from reproduce.train.losses import get_loss
    >>> lp = torch.zeros(2, 3); m = torch.ones(2, 3)
    >>> loss, _, _ = get_loss("dpo")(policy_chosen_logps=lp, policy_rejected_logps=lp, ref_chosen_logps=lp,
    ...     ref_rejected_logps=lp, chosen_mask=m, rejected_mask=m, beta=0.1)
    >>> [round(x, 4) for x in loss.tolist()]
    [0.6931, 0.6931]

Adding a loss is one function decorated with ``@register("name", reference=..., guide=...)``: the flags say
which per-token inputs it reads, and the trainer loads and feeds exactly those models (nothing else asks a
loss's name).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LOSSES: dict[str, Callable] = {}


def register(name: str, *, reference: bool, guide: bool = False):
    """Decorator adding a loss to the registry under ``name``. ``reference``: it reads the reference model's
    per-token log-probs (``ref_*_logps``); ``guide``: also a guidance model's (``guide_*_logps``). The flags
    are stored on the function as ``needs_reference`` / ``needs_guide``."""
    if guide and not reference:
        raise ValueError(f"loss '{name}': guidance token rewards are measured against the reference (guide needs reference)")

    def deco(fn):
        fn.needs_reference, fn.needs_guide = reference, guide
        LOSSES[name] = fn
        return fn

    return deco


def get_loss(name: str) -> Callable:
    """The loss registered as ``name``; unknown names raise ``KeyError`` listing the known ones."""
    try:
        return LOSSES[name]
    except KeyError:
        raise KeyError(f"unknown loss '{name}' (known: {', '.join(sorted(LOSSES))})") from None


def _masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum(dim=-1)


@register("dpo", reference=True)
def dpo_loss(*, policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             chosen_mask, rejected_mask, beta: float):
    """Sigmoid DPO (Rafailov et al. 2023) with summed, not length-normalised, log-ratios."""
    chosen = _masked_sum(policy_chosen_logps - ref_chosen_logps, chosen_mask)
    rejected = _masked_sum(policy_rejected_logps - ref_rejected_logps, rejected_mask)
    loss = -F.logsigmoid(beta * (chosen - rejected))
    return loss, beta * chosen.detach(), beta * rejected.detach()


def token_rewards(guide_logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, beta: float) -> torch.Tensor:
    """TGDPO's token-level reward guidance r_t = beta * (log pi_guide - log pi_ref), zero where masked, no grad."""
    return (beta * (guide_logps - ref_logps) * mask).detach()


@register("tgdpo", reference=True, guide=True)
def tgdpo_loss(*, policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
               guide_chosen_logps, guide_rejected_logps, chosen_mask, rejected_mask, beta: float, alpha: float):
    """TGDPO (Zhu et al., ICML 2025) exactly as released (docs/paper.md):

    u = sum_{t in y_w} beta (1 + alpha r_t) d_t - sum_{t in y_l} beta (1 - alpha r_t) d_t,  loss = -log sigmoid(u)

    with d_t = log pi_theta - log pi_ref (gradient flows) and r_t = beta (log pi_guide - log pi_ref) (no
    gradient, same beta, not clipped). alpha = 0 is DPO. The logged rewards are the plain DPO implicit
    rewards beta * sum d_t, as in the released code.
    """
    r_w = token_rewards(guide_chosen_logps, ref_chosen_logps, chosen_mask, beta)
    r_l = token_rewards(guide_rejected_logps, ref_rejected_logps, rejected_mask, beta)
    d_w = (policy_chosen_logps - ref_chosen_logps) * chosen_mask
    d_l = (policy_rejected_logps - ref_rejected_logps) * rejected_mask
    u = beta * ((1 + alpha * r_w) * d_w).sum(-1) - beta * ((1 - alpha * r_l) * d_l).sum(-1)
    loss = -F.logsigmoid(u)
    return loss, beta * d_w.sum(-1).detach(), beta * d_l.sum(-1).detach()


@register("simpo", reference=False)
def simpo_loss(*, policy_chosen_logps, policy_rejected_logps, chosen_mask, rejected_mask, beta: float, gamma: float):
    """SimPO (Meng et al. 2024): -log sigmoid(beta/|y_w| log pi(y_w) - beta/|y_l| log pi(y_l) - gamma), no reference."""
    chosen = _masked_sum(policy_chosen_logps, chosen_mask) / chosen_mask.sum(-1).clamp(min=1)
    rejected = _masked_sum(policy_rejected_logps, rejected_mask) / rejected_mask.sum(-1).clamp(min=1)
    loss = -F.logsigmoid(beta * (chosen - rejected) - gamma)
    return loss, beta * chosen.detach(), beta * rejected.detach()


@register("chosen_nll", reference=False)
def chosen_nll_loss(*, policy_chosen_logps, policy_rejected_logps, chosen_mask, rejected_mask, beta: float):
    """Control, not a preference loss: SFT on the chosen answers (mean token negative log-likelihood).

    A lesson of the tiny preset (docs/tiny.md): on a verifier-filtered task much of DPO's gain can come from the chosen samples
    alone; training on them with the same data, lr and steps says how much. The rejected answers only
    feed the logged rewards (beta * mean token log-prob), never the loss.
    """
    chosen = _masked_sum(policy_chosen_logps, chosen_mask) / chosen_mask.sum(-1).clamp(min=1)
    rejected = _masked_sum(policy_rejected_logps, rejected_mask) / rejected_mask.sum(-1).clamp(min=1)
    return -chosen, beta * chosen.detach(), beta * rejected.detach()


def needs_reference(name: str) -> bool:
    """Whether loss ``name`` reads the reference model's per-token log-probs."""
    return get_loss(name).needs_reference


def needs_guide(name: str) -> bool:
    """Whether loss ``name`` reads a guidance model's per-token log-probs (and so needs ``guide``)."""
    return get_loss(name).needs_guide
