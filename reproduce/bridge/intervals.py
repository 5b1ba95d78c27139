"""Prediction intervals of a bridged number from few calibration models.

Every bridge's error is judged by how far its predictions of left-out models' retired scores were from the
archived ones (leave-one-model-out, LOO). Such an error already holds everything that moves a model's score:
the map's misfit for that model and the item noise of its own judged items. The interval therefore adds
nothing on top of it (counting item noise again would count it twice); only where a cell's own item noise
exceeds the panel's (computed at the cell's own q(1-q)) is the excess added.

With k LOO errors e_1..e_k, assumed independent N(0, sigma^2), a new model's error e_0 divided by the root
mean square of the e_i follows Student's t with k degrees of freedom, so the 95% prediction interval is
± t(0.975, k) × RMSE (a z of 1.96 would pretend sigma were known). Fewer than ``MIN_MODELS`` calibration
models give no interval at all: a plain statement says so instead.
"""

from __future__ import annotations

import math
from functools import lru_cache

MIN_MODELS = 3
LEVEL = 0.95


@lru_cache(maxsize=256)
def t_quantile(df: int, level: float = LEVEL) -> float:
    """Two-sided Student t quantile t((1 + level) / 2, df)."""
    from scipy.stats import t

    return float(t.ppf((1 + level) / 2, df))


def no_interval(n_models: int) -> str:
    """The statement that replaces an interval when the panel is too small to validate one."""
    return (f"no interval: {n_models} calibration model{'s' if n_models != 1 else ''}; a prediction interval needs "
            f"at least {MIN_MODELS} (its width comes from the models' leave-one-model-out errors)")


def loo_half_width(errors: list[float], extra_var: float = 0.0) -> float | None:
    """Half-width of the 95% prediction interval from ``errors`` (LOO errors in points; see the module), or None
    with fewer than ``MIN_MODELS`` errors. ``extra_var``: item variance of the cell beyond the panel's (points²)."""
    k = len(errors)
    if k < MIN_MODELS:
        return None
    ms = sum(e * e for e in errors) / k
    return t_quantile(k) * math.sqrt(ms + max(0.0, extra_var))


def inside(low: float | None, high: float | None, value: float) -> bool | None:
    """Whether ``value`` lies in [low, high] (None without an interval)."""
    return None if low is None or high is None else bool(low <= value <= high)
