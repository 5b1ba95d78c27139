"""The pure statistics of the method comparisons and their planning (no files, no config).

- :class:`PromptStats`: one method's judgments as per-prompt sufficient statistics of one metric (a
  numerator and a denominator per prompt; the score is ``scale * sum(num) / sum(den)``, as each protocol's
  official scoring computes it: see each protocol module's ``PROMPT_METRICS``).
- :func:`paired_bootstrap` (percentile 95% interval, over prompts and seeds), :func:`sign_flip_test`
  (permutation p-value over prompts), :func:`compare` (both, with the p-value reported), :func:`verdict`.
- Power: :func:`prompts_needed` and :func:`seeds_needed` under the normal approximation
  ``Var(diff) = var_prompt / n + (seed_var_a + seed_var_b) / k``, and the :func:`variance_floor` a true
  win-rate gap implies (see :mod:`reproduce.report.power`, which plans with them).

The methods are described in :mod:`reproduce.report.differences`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from reproduce.config import ConfigError
from reproduce.io import DataError

DEFAULT_ROUNDS = 2000
DEFAULT_SEED = 0
# planning: a two-sided test at ALPHA with POWER against the claimed gap
ALPHA, POWER = 0.05, 0.80
Z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)  # 1.95996 + 0.84162
VERDICT_STEP = 25.0  # points: the smallest nonzero per-prompt change of a win rate (two games, ties as halves)
WIN_RATE_METRICS = {"AE-WR", "AE-LC", "AH", "MT-WR"}


def variance_floor(gap: float, metric: str) -> float:
    """The smallest per-prompt variance of the paired difference that a true gap ``gap`` implies for a win-rate
    metric (see :mod:`reproduce.report.power`); 0 for a score metric (MT-S), whose differences need not be discrete."""
    g = abs(gap)
    if metric not in WIN_RATE_METRICS or g >= VERDICT_STEP:
        return 0.0
    return g * (VERDICT_STEP - g)


def target_variance(gap: float) -> float:
    """The largest variance of the difference estimate at which a gap ``gap`` is found with 80% power."""
    return (abs(gap) / Z) ** 2


def prompts_needed(gap: float, var_prompt: float, seed_var: float, seeds: int) -> int | None:
    """Smallest n with var_prompt / n + seed_var / seeds <= target; None when seed noise alone is too large."""
    room = target_variance(gap) - seed_var / seeds
    if room <= 0:
        return None
    return max(1, math.ceil(var_prompt / room - 1e-12))


def seeds_needed(gap: float, var_prompt: float, seed_var: float, prompts: int) -> int | None:
    """Smallest k with var_prompt / prompts + seed_var / k <= target; None when prompt noise alone is too large."""
    room = target_variance(gap) - var_prompt / prompts
    if room <= 0:
        return None
    return max(1, math.ceil(seed_var / room - 1e-12))


@dataclass
class PromptStats:
    """One method's judgments on one benchmark as per-prompt sufficient statistics of one metric.

    ``score = scale * num.sum() / den.sum()``; ``question_ids`` sorted, aligned with ``num`` and ``den``.
    ``n_failed``: judgments without a verdict (dropped, as the official scoring drops them).
    """

    question_ids: tuple
    num: np.ndarray
    den: np.ndarray
    scale: float
    n_failed: int
    source: str
    baseline: str | None = None

    def score(self) -> float | None:
        """The metric on all prompts (None when no prompt has a verdict)."""
        d = float(self.den.sum())
        return self.scale * float(self.num.sum()) / d if d > 0 else None


def _check_sets(a: list[PromptStats], b: list[PromptStats]) -> tuple:
    """Both methods' seeds must be judged on one prompt set, against one baseline, with one scale."""
    if not a or not b:
        raise DataError("paired comparison: each method needs at least one judgment set (seed)")
    ref = a[0]
    for s in [*a, *b]:
        if s.question_ids != ref.question_ids:
            only_ref = sorted(set(ref.question_ids) - set(s.question_ids))[:3]
            only_s = sorted(set(s.question_ids) - set(ref.question_ids))[:3]
            raise DataError(f"paired comparison: {ref.source} and {s.source} are judgments on different prompt sets "
                            f"({len(ref.question_ids)} vs {len(s.question_ids)} prompts; only in the first: "
                            f"{only_ref or '-'}, only in the second: {only_s or '-'}); judge both on the same questions")
        if s.scale != ref.scale:
            raise DataError(f"paired comparison: {ref.source} and {s.source} hold different metrics")
        if s.baseline != ref.baseline:
            raise DataError(f"paired comparison: {ref.source} is judged against baseline '{ref.baseline}', "
                            f"{s.source} against '{s.baseline}'")
    if len(ref.question_ids) < 2:
        raise DataError(f"paired bootstrap needs at least 2 prompts; {', '.join(s.source for s in [*a, *b])} "
                        f"hold {len(ref.question_ids)}")
    return ref.question_ids


def _matrices(sets: list[PromptStats]) -> tuple[np.ndarray, np.ndarray]:
    return np.stack([s.num for s in sets]), np.stack([s.den for s in sets])


def _scores(weights: np.ndarray, num: np.ndarray, den: np.ndarray, scale: float) -> np.ndarray:
    """Scores (rounds x seeds) of each seed on each weighted prompt draw; NaN where no prompt has a verdict."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return scale * (weights @ num.T) / (weights @ den.T)


def _point(num: np.ndarray, den: np.ndarray, scale: float) -> float:
    per_seed = scale * num.sum(axis=1) / den.sum(axis=1)
    return float(per_seed.mean())


def paired_bootstrap(a: list[PromptStats], b: list[PromptStats], rounds: int = DEFAULT_ROUNDS,
                     seed: int = DEFAULT_SEED) -> dict:
    """Score difference ``a - b`` with its paired-bootstrap 95% percentile interval and p-value.

    ``a`` and ``b`` are lists of per-seed judgment sets (one entry per training seed) on the same prompts.
    Each round draws n prompts with replacement (one draw shared by both methods and all seeds) and, per
    method, as many seeds as it has with replacement; the round's difference is the mean over the drawn
    seeds of a's scores minus the same for b. Prompt draws and seed draws use separate random streams of
    ``seed``, so adding identical seeds changes nothing. A round whose draw leaves a method without any
    verdict is dropped (``rounds_used`` says how many remain).

    Returns ``diff`` (on all prompts and seeds), ``ci_low``/``ci_high`` (2.5/97.5 percentiles),
    ``p_bootstrap`` (two-sided: twice the smaller share of rounds on either side of 0, each share counted as
    (1 + hits) / (1 + rounds)), ``var_prompt`` (n times the variance of the difference under prompt
    resampling alone, seeds fixed: the per-prompt variance the planning uses), ``seed_var_a``/``seed_var_b``
    (variance of a method's per-seed scores, ddof 1; None with one seed), ``score_a``/``score_b``,
    ``n_prompts``, ``n_seeds_a``/``n_seeds_b``, ``rounds``, ``rounds_used``.
    """
    qids = _check_sets(a, b)
    if rounds < 1:
        raise ConfigError(f"--rounds: the bootstrap needs at least 1 round, got {rounds}")
    scale = a[0].scale
    na, da = _matrices(a)
    nb, db = _matrices(b)
    n = len(qids)
    prompt_rng = np.random.default_rng([seed, 0])
    seed_rng = np.random.default_rng([seed, 1])
    draws = prompt_rng.integers(0, n, size=(rounds, n))
    weights = np.zeros((rounds, n))
    np.add.at(weights, (np.repeat(np.arange(rounds), n), draws.ravel()), 1.0)
    sa, sb = _scores(weights, na, da, scale), _scores(weights, nb, db, scale)
    rows = np.arange(rounds)[:, None]

    def seed_mean(s: np.ndarray) -> np.ndarray:
        k = s.shape[1]
        if k == 1:
            return s[:, 0]
        return s[rows, seed_rng.integers(0, k, size=(rounds, k))].mean(axis=1)

    d = seed_mean(sa) - seed_mean(sb)
    d_prompt = sa.mean(axis=1) - sb.mean(axis=1)  # seeds fixed: prompt noise only
    keep = np.isfinite(d)
    if not keep.any():
        raise DataError(f"paired bootstrap: no resample has verdicts for both methods ({a[0].source}, {b[0].source})")
    d, d_prompt = d[keep], d_prompt[np.isfinite(d_prompt)]
    used = int(keep.sum())
    below = (1 + int((d <= 0).sum())) / (1 + used)
    above = (1 + int((d >= 0).sum())) / (1 + used)
    score_a, score_b = _point(na, da, scale), _point(nb, db, scale)
    per_seed_a = scale * na.sum(axis=1) / da.sum(axis=1)
    per_seed_b = scale * nb.sum(axis=1) / db.sum(axis=1)
    return {"diff": score_a - score_b, "ci_low": float(np.percentile(d, 2.5)), "ci_high": float(np.percentile(d, 97.5)),
            "p_bootstrap": min(1.0, 2 * min(below, above)), "var_prompt": float(n * np.var(d_prompt)),
            "seed_var_a": float(np.var(per_seed_a, ddof=1)) if len(a) > 1 else None,
            "seed_var_b": float(np.var(per_seed_b, ddof=1)) if len(b) > 1 else None,
            "score_a": score_a, "score_b": score_b, "n_prompts": n, "n_seeds_a": len(a), "n_seeds_b": len(b),
            "rounds": rounds, "rounds_used": used}


def sign_flip_test(a: list[PromptStats], b: list[PromptStats], rounds: int = DEFAULT_ROUNDS,
                   seed: int = DEFAULT_SEED) -> dict:
    """Two-sided sign-flip permutation test of ``score(a) - score(b) = 0`` over prompts.

    Under the null the two methods' judgments of a prompt are exchangeable: every flip swaps them on a
    subset of prompts (with seeds, a's k-th seed is paired with b's k-th, so both need as many seeds) and
    recomputes the difference with the official statistic. p = share of flips whose |difference| is at
    least the observed one: over all 2^n flips when 2^n <= ``rounds`` (exact), else over ``rounds`` random
    flips plus the observed one ((1 + hits) / (1 + rounds)). Returns ``p_value``, ``exact``, ``n_flips``.
    """
    qids = _check_sets(a, b)
    if len(a) != len(b):
        raise DataError(f"sign-flip test: pairs seeds one to one, but {a[0].source} has {len(a)} seeds and "
                        f"{b[0].source} {len(b)}")
    n = len(qids)
    exact = n < 63 and 2**n <= rounds
    if exact:
        flips = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float)
    else:
        flips = np.random.default_rng([seed, 2]).integers(0, 2, size=(rounds, n)).astype(float)
    scale = a[0].scale

    def stat(f: np.ndarray) -> np.ndarray:
        total = np.zeros(f.shape[0])
        for sa, sb in zip(a, b):
            num_a = sa.num + f * (sb.num - sa.num)
            den_a = sa.den + f * (sb.den - sa.den)
            num_b = sb.num + f * (sa.num - sb.num)
            den_b = sb.den + f * (sa.den - sb.den)
            with np.errstate(invalid="ignore", divide="ignore"):
                total += scale * (num_a.sum(1) / den_a.sum(1) - num_b.sum(1) / den_b.sum(1))
        return total / len(a)

    observed = float(stat(np.zeros((1, n)))[0])
    if not math.isfinite(observed):
        raise DataError(f"sign-flip test: a method has no verdict at all ({a[0].source}, {b[0].source})")
    values = stat(flips)
    # float tolerance: a flip that reproduces the observed |difference| up to rounding counts as a hit
    hits = int((np.abs(values) >= abs(observed) - 1e-9 * max(1.0, abs(observed))).sum())
    p = hits / len(values) if exact else (1 + hits) / (1 + len(values))
    return {"p_value": min(1.0, p), "exact": exact, "n_flips": len(values), "observed": observed}


def compare(a: list[PromptStats], b: list[PromptStats], rounds: int = DEFAULT_ROUNDS, seed: int = DEFAULT_SEED) -> dict:
    """The paired bootstrap plus the p-value this module reports (see the module docstring for which)."""
    out = paired_bootstrap(a, b, rounds, seed)
    out["ci_method"] = ("paired bootstrap over prompts (percentile 95%)" if len(a) == len(b) == 1 else
                        "paired bootstrap over seeds and prompts (percentile 95%)")
    out["p_sign_flip"] = None
    if len(a) == len(b):
        flip = sign_flip_test(a, b, rounds, seed)
        out["p_sign_flip"] = flip["p_value"]
        flip_method = (f"sign-flip permutation, exact ({flip['n_flips']} flips)" if flip["exact"] else
                       f"sign-flip permutation, Monte Carlo ({flip['n_flips']} flips)")
    if len(a) == len(b) == 1:
        out["p_value"], out["p_method"] = out["p_sign_flip"], flip_method
    else:
        out["p_value"], out["p_method"] = out["p_bootstrap"], "paired bootstrap over seeds and prompts (two-sided)"
    return out


def verdict(diff: float, ci_low: float, ci_high: float, paper_diff: float | None) -> tuple[str, str]:
    """(verdict on the paper's claimed direction, what our interval alone says).

    verdict: "supported" (interval excludes 0 on the paper's side), "not resolved" (interval contains 0),
    "contradicted" (interval excludes 0 on the other side), "no paper claim" (the paper lacks a cell, or
    shows no gap). finding: "a ahead", "b ahead" or "no difference resolved".
    """
    finding = "a ahead" if ci_low > 0 else "b ahead" if ci_high < 0 else "no difference resolved"
    if paper_diff is None or paper_diff == 0:
        return "no paper claim", finding
    if ci_low <= 0 <= ci_high:
        return "not resolved", finding
    return ("supported" if (ci_low > 0) == (paper_diff > 0) else "contradicted"), finding
