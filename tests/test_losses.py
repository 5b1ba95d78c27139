"""Exactness of the registered losses on random per-token tensors (no model needed)."""

from __future__ import annotations

import math

import pytest
import torch

from reproduce.train.losses import LOSSES, get_loss


def _batch(b: int, t: int, seed: int = 0, padded: bool = True):
    """Random per-token log-probs and 0/1 masks. Masked positions (prompt, padding) hold finite garbage, not
    zeros, so a loss that forgets a mask anywhere gives a different value."""
    g = torch.Generator().manual_seed(seed)
    def lp():
        return -torch.rand(b, t, generator=g) * 3
    cm, rm = torch.ones(b, t), torch.ones(b, t)
    if padded:  # varied lengths: first tokens are prompt (masked), tails are padding (masked)
        for i in range(b):
            cm[i, : 1 + i % 3] = 0
            cm[i, t - (i % 4):] = 0
            rm[i, : 2] = 0
            rm[i, t - ((i + 1) % 5):] = 0
    tensors = dict(policy_chosen_logps=lp(), policy_rejected_logps=lp(), ref_chosen_logps=lp(), ref_rejected_logps=lp(),
                   guide_chosen_logps=lp(), guide_rejected_logps=lp())
    for k in tensors:
        mask = cm if "chosen" in k else rm
        garbage = (torch.rand(b, t, generator=g) - 0.5) * 40
        tensors[k] = torch.where(mask.bool(), tensors[k], garbage)
    return tensors, cm, rm


def released_tgdpo(t, cm, rm, beta, alpha, rejected_sign=-1.0):
    """docs/paper.md's formula, written as explicit loops over pairs and tokens (independent of our vectorised code).
    ``rejected_sign=+1`` is a planted bug (the rejected weight 1 + alpha r_t) the tests must tell apart."""
    losses = []
    for i in range(cm.shape[0]):
        u = 0.0
        for j in range(cm.shape[1]):
            if cm[i, j]:
                d = t["policy_chosen_logps"][i, j] - t["ref_chosen_logps"][i, j]
                r = beta * (t["guide_chosen_logps"][i, j] - t["ref_chosen_logps"][i, j])
                u += beta * (1 + alpha * r) * d
            if rm[i, j]:
                d = t["policy_rejected_logps"][i, j] - t["ref_rejected_logps"][i, j]
                r = beta * (t["guide_rejected_logps"][i, j] - t["ref_rejected_logps"][i, j])
                u -= beta * (1 + rejected_sign * alpha * r) * d
        losses.append(-math.log(1 / (1 + math.exp(-float(u)))))
    return torch.tensor(losses)


# (alpha, beta): the paper's alpha 0.5 and the sensitivity study's 2.0, each with a beta that keeps the loss
# away from saturation (a saturated loss ~ 0 hides any error in u) and makes r_t large enough to matter.
ALPHA_BETA = [(0.5, 0.3), (2.0, 0.2)]


@pytest.mark.parametrize("b", [1, 8])
@pytest.mark.parametrize("alpha,beta", ALPHA_BETA)
def test_tgdpo_equals_released_formula(b, alpha, beta):
    t, cm, rm = _batch(b, 12, seed=b)
    loss, _, _ = get_loss("tgdpo")(**t, chosen_mask=cm, rejected_mask=rm, beta=beta, alpha=alpha)
    expected = released_tgdpo(t, cm, rm, beta, alpha)
    assert loss.shape == (b,)
    assert (expected > 0.03).all(), expected  # not saturated: errors in u show in the loss
    torch.testing.assert_close(loss, expected.to(loss.dtype), atol=1e-6, rtol=1e-5)
    # the comparison has the power to see a sign flip of the rejected tokens' weight
    flipped = released_tgdpo(t, cm, rm, beta, alpha, rejected_sign=1.0)
    assert ((flipped - expected).abs() > 1e-4).all(), (flipped, expected)


@pytest.mark.parametrize("b", [1, 8])
def test_tgdpo_alpha_zero_is_dpo(b):
    t, cm, rm = _batch(b, 10, seed=3)
    dpo_keys = {k: v for k, v in t.items() if "guide" not in k}
    dpo, cr, rr = get_loss("dpo")(**dpo_keys, chosen_mask=cm, rejected_mask=rm, beta=0.1)
    tg, cr2, rr2 = get_loss("tgdpo")(**t, chosen_mask=cm, rejected_mask=rm, beta=0.1, alpha=0.0)
    assert torch.allclose(dpo, tg, atol=1e-6)
    assert torch.allclose(cr, cr2) and torch.allclose(rr, rr2)


def test_tgdpo_alpha_changes_loss():
    t, cm, rm = _batch(4, 10, seed=5)
    a0 = get_loss("tgdpo")(**t, chosen_mask=cm, rejected_mask=rm, beta=1.0, alpha=0.0)[0]
    a1 = get_loss("tgdpo")(**t, chosen_mask=cm, rejected_mask=rm, beta=1.0, alpha=1.0)[0]
    assert not torch.allclose(a0, a1)


def test_gradient_flows_only_through_policy():
    t, cm, rm = _batch(3, 8, seed=7)
    for v in t.values():
        v.requires_grad_(True)
    loss, _, _ = get_loss("tgdpo")(**t, chosen_mask=cm, rejected_mask=rm, beta=0.5, alpha=0.5)
    loss.sum().backward()
    # r_t is detached: the guide gets no gradient. (The reference gets one through d_t only because this test
    # makes it require grad; in training it is a constant.)
    assert t["guide_chosen_logps"].grad is None and t["guide_rejected_logps"].grad is None
    assert t["policy_chosen_logps"].grad.abs().sum() > 0


def test_simpo_formula():
    t, cm, rm = _batch(5, 9, seed=11)
    loss, _, _ = get_loss("simpo")(policy_chosen_logps=t["policy_chosen_logps"], policy_rejected_logps=t["policy_rejected_logps"],
                                   chosen_mask=cm, rejected_mask=rm, beta=2.5, gamma=1.375)
    for i in range(5):
        lw = t["policy_chosen_logps"][i][cm[i].bool()].mean()
        ll = t["policy_rejected_logps"][i][rm[i].bool()].mean()
        expected = -torch.nn.functional.logsigmoid(2.5 * lw - 2.5 * ll - 1.375)
        assert abs(loss[i].item() - expected.item()) < 1e-6


def test_registry():
    assert set(LOSSES) >= {"dpo", "simpo", "tgdpo"}
    with pytest.raises(KeyError, match="known: chosen_nll, dpo, simpo, tgdpo"):
        get_loss("ipo_typo")


def test_chosen_nll_control_ignores_rejected():
    t, cm, rm = _batch(4, 8, seed=13)
    kw = dict(policy_chosen_logps=t["policy_chosen_logps"], chosen_mask=cm, rejected_mask=rm, beta=0.1)
    a = get_loss("chosen_nll")(policy_rejected_logps=t["policy_rejected_logps"], **kw)[0]
    b = get_loss("chosen_nll")(policy_rejected_logps=torch.zeros_like(t["policy_rejected_logps"]), **kw)[0]
    assert torch.equal(a, b)
    expected = -(t["policy_chosen_logps"] * cm).sum(-1) / cm.sum(-1)
    torch.testing.assert_close(a, expected)


@pytest.mark.parametrize("name", ["simpo", "chosen_nll"])
def test_length_normalised_losses_on_one_token_and_empty_answers(name):
    """Row 0: a one-token chosen answer and an empty rejected one; row 1 the reverse. The mean over one token
    is that token's log-prob; an empty answer's mean is 0 (never 0/0), and every value stays finite."""
    t, _, _ = _batch(2, 6, seed=17, padded=False)
    cm = torch.zeros(2, 6)
    rm = torch.zeros(2, 6)
    cm[0, 3] = 1
    rm[1, 4] = 1
    kw = dict(policy_chosen_logps=t["policy_chosen_logps"], policy_rejected_logps=t["policy_rejected_logps"],
              chosen_mask=cm, rejected_mask=rm, beta=2.0)
    if name == "simpo":
        kw["gamma"] = 0.5
    loss, chosen_reward, rejected_reward = get_loss(name)(**kw)
    chosen_mean = torch.tensor([t["policy_chosen_logps"][0, 3].item(), 0.0])
    rejected_mean = torch.tensor([0.0, t["policy_rejected_logps"][1, 4].item()])
    torch.testing.assert_close(chosen_reward, 2.0 * chosen_mean)
    torch.testing.assert_close(rejected_reward, 2.0 * rejected_mean)
    if name == "simpo":
        expected = -torch.nn.functional.logsigmoid(2.0 * (chosen_mean - rejected_mean) - 0.5)
    else:
        expected = -chosen_mean
    torch.testing.assert_close(loss, expected)


def test_logged_rewards_of_length_normalised_losses():
    """SimPO and the chosen-NLL control log beta times each answer's mean token log-prob (rejected too)."""
    t, cm, rm = _batch(4, 8, seed=19)
    mean_w = (t["policy_chosen_logps"] * cm).sum(-1) / cm.sum(-1)
    mean_l = (t["policy_rejected_logps"] * rm).sum(-1) / rm.sum(-1)
    for name, extra in (("simpo", {"gamma": 1.0}), ("chosen_nll", {})):
        _, rw, rl = get_loss(name)(policy_chosen_logps=t["policy_chosen_logps"],
                                   policy_rejected_logps=t["policy_rejected_logps"],
                                   chosen_mask=cm, rejected_mask=rm, beta=0.7, **extra)
        torch.testing.assert_close(rw, 0.7 * mean_w)
        torch.testing.assert_close(rl, 0.7 * mean_l)


def test_needs_flags_match_each_loss_signature():
    """The trainer loads and forwards a reference / guide only where ``@register`` says the loss reads one:
    each flag must equal whether the loss takes those tensors (a wrong flag starves or wastes a model)."""
    import inspect

    from reproduce.train.losses import needs_guide, needs_reference

    for name, fn in LOSSES.items():
        params = inspect.signature(fn).parameters
        assert needs_reference(name) == ("ref_chosen_logps" in params), name
        assert needs_guide(name) == ("guide_chosen_logps" in params), name


def test_register_refuses_a_guide_without_reference():
    from reproduce.train.losses import register

    with pytest.raises(ValueError, match="guide needs reference"):
        register("x", reference=False, guide=True)


def test_recipe_schema_lists_the_registered_losses():
    """The recipe schema's loss enum is the registry, and it requires ``guide`` exactly for losses that read one."""
    from pathlib import Path

    import yaml

    from reproduce.train.losses import needs_guide

    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "reproduce/schemas/recipe.schema.yaml").read_text())
    method = schema["$defs"]["method"]
    assert sorted(method["properties"]["loss"]["enum"]) == sorted(LOSSES)
    guided = {rule["if"]["properties"]["loss"]["const"] for rule in method["allOf"] if "guide" in rule["then"]["required"]}
    assert guided == {name for name in LOSSES if needs_guide(name)}
