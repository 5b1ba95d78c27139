"""Per-item calibration from a current judge's verdicts to the retired judge's.

Model: P(retired judge prefers the model's output | current verdict, length difference) as a logistic
regression on three features of a pair: the current judge's preference on the logit scale (its probability
that the model's output is better, clipped to [0.01, 0.99] so a discrete verdict is +-4.6), an indicator of
a current-judge tie (0.5 exactly), and the model's output length minus the reference's in thousands of
characters, clipped to +-4 (the AlpacaEval 2 judge's known length preference). The target is the retired
judge's preference minus 1, which is fractional for a log-prob judge: it is fitted by weighting each item's
two outcomes (1 with weight y, 0 with weight 1 - y), which maximises the same Bernoulli likelihood.

A model's retired-judge equivalent win rate is 100 times the mean predicted probability over its items.
Its 95% prediction interval comes from the leave-one-model-out (LOO) errors of the panel's models (fit on
the other models, predict this one's archived retired win rate): ± t(0.975, k) × their root mean square over
k models (``reproduce.bridge.intervals``). Those errors already hold each model's item noise, so item noise
is not added again; only a cell whose own item variance (mean q(1-q) / n at its own predicted q) exceeds the
panel models' mean adds the excess. Fewer than three calibration models give no interval, and say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CLIP_P = 0.01
CLIP_KCHARS = 4.0
FEATURES = ("current preference (logit)", "current tie", "length difference (k chars)")


def features(current: np.ndarray, length_diff: np.ndarray) -> np.ndarray:
    """Feature matrix of items: ``current`` preferences (1..2), ``length_diff`` in characters."""
    p = np.clip(np.asarray(current, dtype=float) - 1.0, CLIP_P, 1 - CLIP_P)
    tie = (np.abs(np.asarray(current, dtype=float) - 1.5) < 1e-9).astype(float)
    d = np.clip(np.asarray(length_diff, dtype=float) / 1000.0, -CLIP_KCHARS, CLIP_KCHARS)
    return np.column_stack([np.log(p / (1 - p)), tie, d])


@dataclass
class Calibration:
    """A fitted calibration: coefficients, intercept, the pooled residual variance and the models it saw."""

    coef: np.ndarray
    intercept: float
    residual_var: float
    n_items: int
    models: tuple

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(retired judge prefers the model) of each item."""
        z = X @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict:
        """JSON form (feature names with their coefficients)."""
        return {"features": dict(zip(FEATURES, map(float, self.coef))), "intercept": self.intercept,
                "residual_var": self.residual_var, "n_items": self.n_items, "models": list(self.models)}


def fit(X: np.ndarray, y: np.ndarray, models: tuple = ()) -> Calibration:
    """Fit on items with retired targets ``y`` in [0, 1] (fractional allowed; see the module docstring)."""
    from sklearn.linear_model import LogisticRegression

    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if len(y) < 2:
        raise ValueError("calibration needs at least 2 items with both judges' verdicts")
    Xd = np.vstack([X, X])
    yd = np.concatenate([np.ones(len(y)), np.zeros(len(y))])
    w = np.concatenate([y, 1 - y])
    keep = w > 0
    if len(set(yd[keep])) < 2:  # the retired judge always (or never) preferred the model: a constant rate
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return Calibration(np.zeros(X.shape[1]), math.log(rate / (1 - rate)), float(np.var(y)), len(y), models)
    # C large: effectively unpenalised (tens of thousands of items against 3 features)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(Xd[keep], yd[keep], sample_weight=w[keep])
    cal = Calibration(lr.coef_[0].copy(), float(lr.intercept_[0]), 0.0, len(y), models)
    cal.residual_var = float(np.mean((y - cal.predict(X)) ** 2))
    return cal


def item_var(cal: Calibration, X: np.ndarray) -> float:
    """Item variance of a win rate over items ``X`` at its own predicted q: 100² · mean(q(1-q)) / n (points²)."""
    q = cal.predict(X)
    return 1e4 * float(np.mean(q * (1 - q))) / len(q)


def estimate(cal: Calibration, X: np.ndarray, loo_errors: list[float], panel_item_var: float = 0.0) -> dict:
    """Retired-judge equivalent win rate of one item set, with its 95% prediction interval when at least three
    LOO errors exist (see the module docstring), else the statement why there is none."""
    from reproduce.bridge.intervals import loo_half_width, no_interval

    wr = 100.0 * float(cal.predict(X).mean())
    var = item_var(cal, X)
    half = loo_half_width(loo_errors, var - panel_item_var)
    out = {"estimate": wr, "low": None, "high": None, "n_items": len(X), "se_items": var ** 0.5,
           "model_rmse": rmse(loo_errors), "method": "per item", "widened_for_item_noise": var > panel_item_var}
    if half is None:
        out["interval"] = no_interval(len(loo_errors))
    else:
        out.update(low=max(0.0, wr - half), high=min(100.0, wr + half), half_width=half,
                   interval=f"95% prediction interval: t({len(loo_errors)}) x RMSE of {len(loo_errors)} "
                            "leave-one-model-out errors")
    return out


def _predictions(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """Each model predicted by the fit on the others (no intervals)."""
    rows = []
    for m, (X, y) in data.items():
        others = [k for k in data if k != m]
        if not others:
            continue
        cal = fit(np.vstack([data[k][0] for k in others]), np.concatenate([data[k][1] for k in others]), tuple(others))
        pred = 100.0 * float(cal.predict(X).mean())
        actual = 100.0 * float(np.mean(y))
        rows.append({"model": m, "actual": actual, "predicted": pred, "error": pred - actual,
                     "n_train_models": len(others)})
    return rows


def leave_one_model_out(data: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
    """For each model with retired targets: fit on the others, predict its retired win rate, and give it the
    interval the others alone allow (their own leave-one-out errors, computed without this model: nested, so
    the left-out model never shapes its own interval).

    ``data``: model -> (X, y). Returns rows ``{model, actual, predicted, error, n_train_models, low, high,
    inside}`` (points; low/high/inside None with fewer than three other models)."""
    from reproduce.bridge.intervals import MIN_MODELS, inside, loo_half_width

    rows = _predictions(data)
    for r in rows:
        others = {k: v for k, v in data.items() if k != r["model"]}
        half = (loo_half_width([x["error"] for x in _predictions(others)]) if len(others) >= MIN_MODELS else None)
        r["low"], r["high"] = (None, None) if half is None else (r["predicted"] - half, r["predicted"] + half)
        r["inside"] = inside(r["low"], r["high"], r["actual"])
    return rows


def rmse(errors: list[float]) -> float | None:
    """Root mean square of LOO errors (None for none)."""
    return math.sqrt(sum(e * e for e in errors) / len(errors)) if errors else None
