"""Model-level maps from a current judge's win rates (or scores) to the retired judge's, on the logit scale.

Each panel model is a point: its score under the current judge, its score under the retired judge (both
against the same reference, both in percent) and, where known, its average output length. Forms (``FORMS``),
each fitted by least squares on logit(score / 100):

- ``slope``: logit(retired) = b·logit(current). One free parameter; the line passes through the reference's
  own point (any judge gives the reference 50% against itself). Residual degrees of freedom n - 1.
- ``line``: logit(retired) = a + b·logit(current). Two free parameters; n - 2.
- ``slope+length``: logit(retired) = b·logit(current) + c·ln(length / reference length). Two free
  parameters, still through the reference's point (its length ratio is 1); n - 2. The retired AlpacaEval 2
  judge prefers long answers; a current judge may weigh length otherwise.

Prediction interval (95%): the ordinary least-squares prediction interval on the logit scale,
t(0.975, df)·sqrt(s²·(1 + x0ᵀ(XᵀX)⁻¹x0) + excess item variance), mapped back to percent. s² is the residual
variance of the panel's points, which already holds each model's item noise; a cell whose own item noise on
the logit scale (b²/(n·q(1-q)) at its own current win rate q) exceeds the panel's mean adds the excess only.
Fewer than three panel models, or no residual degree of freedom, give no interval (see ``intervals``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from reproduce.bridge.intervals import MIN_MODELS, inside, no_interval, t_quantile

FORMS = {
    "slope": ("logit(retired) = b·logit(current), through the reference's 50%", 1),
    "line": ("logit(retired) = a + b·logit(current)", 2),
    "slope+length": ("logit(retired) = b·logit(current) + c·ln(length / reference length), through the reference's "
                     "50%", 2),
}
EPS = 1e-4


def logit(pct: float) -> float:
    """logit(pct / 100), clipped away from 0 and 100."""
    p = min(max(pct / 100.0, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def pct(z: float) -> float:
    """Inverse of :func:`logit`, in percent."""
    return 100.0 / (1.0 + math.exp(-z))


@dataclass
class Point:
    """One model: current and retired scores (percent), average output length (characters) and items judged."""

    model: str
    current: float
    retired: float | None = None
    length: float | None = None
    n_items: int = 805


def _row(form: str, current: float, length: float | None, ref_length: float | None) -> list[float]:
    x = logit(current)
    if form == "slope":
        return [x]
    if form == "line":
        return [1.0, x]
    if length is None or not ref_length:
        raise ValueError("the slope+length map needs output lengths")
    return [x, math.log(max(length, 1.0) / ref_length)]


def _item_var(b: float, current: float, n: int) -> float:
    """Item noise of a current win rate carried through the map, on the logit scale (delta method)."""
    q = min(max(current / 100.0, 1.0 / (2 * n)), 1 - 1.0 / (2 * n))
    return b * b / (n * q * (1 - q))


@dataclass
class MapFit:
    """A fitted model-level map."""

    form: str
    beta: np.ndarray
    xtx_inv: np.ndarray
    s2: float | None
    df: int
    models: tuple
    ref_length: float | None
    panel_item_var: float
    ranges: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """JSON form: the form, its equation, free parameters, coefficients, residual df and panel ranges."""
        return {"form": self.form, "equation": FORMS[self.form][0], "free_parameters": FORMS[self.form][1],
                "coefficients": [float(b) for b in self.beta], "residual_df": self.df, "n_models": len(self.models),
                "residual_sd_logit": None if self.s2 is None else math.sqrt(self.s2), "models": list(self.models),
                "reference_length": self.ref_length, "panel_range": self.ranges}

    def predict(self, current: float, length: float | None = None, n_items: int = 805) -> dict:
        """The retired-judge equivalent of one current score, with its 95% prediction interval when the fit has
        at least three models and a residual degree of freedom (else the statement why not)."""
        x0 = np.array(_row(self.form, current, length, self.ref_length))
        z = float(x0 @ self.beta)
        out = {"estimate": pct(z), "low": None, "high": None, "method": f"model level ({self.form})"}
        out["extrapolated"] = self.outside(out["estimate"], length)
        if self.s2 is None or len(self.models) < MIN_MODELS:
            out["interval"] = no_interval(len(self.models))
            return out
        b = float(self.beta[0] if self.form != "line" else self.beta[1])
        excess = max(0.0, _item_var(b, current, n_items) - self.panel_item_var)
        h = t_quantile(self.df) * math.sqrt(self.s2 * (1 + float(x0 @ self.xtx_inv @ x0)) + excess)
        out.update(low=pct(z - h), high=pct(z + h), half_width=(pct(z + h) - pct(z - h)) / 2,
                   widened_for_item_noise=excess > 0,
                   interval=f"95% prediction interval: t({self.df}) on the logit scale, from the map's residuals")
        return out

    def outside(self, retired: float, length: float | None) -> list[str]:
        """What about a cell lies outside the panel's ranges (retired win rate, output length)."""
        why = []
        lo, hi = self.ranges.get("retired", (None, None))
        if lo is not None and not lo <= retired <= hi:
            why.append(f"retired-scale estimate {retired:.1f} outside the panel's {lo:.1f}-{hi:.1f}")
        lo, hi = self.ranges.get("length", (None, None))
        if lo is not None and length is not None and not lo <= length <= hi:
            why.append(f"output length {length:.0f} outside the panel's {lo:.0f}-{hi:.0f} characters")
        return why


def fit(form: str, points: list[Point], ref_length: float | None = None) -> MapFit | None:
    """Least-squares fit of ``form`` over points with a retired score; None with fewer points than parameters."""
    if form not in FORMS:
        raise ValueError(f"unknown map form {form!r} (forms: {', '.join(FORMS)})")
    pts = [p for p in points if p.retired is not None]
    k = FORMS[form][1]
    if len(pts) < k:
        return None
    X = np.array([_row(form, p.current, p.length, ref_length) for p in pts])
    y = np.array([logit(p.retired) for p in pts])
    xtx_inv = np.linalg.pinv(X.T @ X)
    beta = xtx_inv @ X.T @ y
    df = len(pts) - k
    s2 = float(np.sum((y - X @ beta) ** 2) / df) if df >= 1 else None
    b = float(beta[0] if form != "line" else beta[1])
    ranges = {"retired": (min(p.retired for p in pts), max(p.retired for p in pts)),
              "current": (min(p.current for p in pts), max(p.current for p in pts))}
    lengths = [p.length for p in pts if p.length is not None]
    if len(lengths) == len(pts):
        ranges["length"] = (min(lengths), max(lengths))
    item_var = float(np.mean([_item_var(b, p.current, p.n_items) for p in pts]))
    return MapFit(form, beta, xtx_inv, s2, df, tuple(p.model for p in pts), ref_length, item_var, ranges)


def leave_one_out(form: str, points: list[Point], ref_length: float | None = None) -> list[dict]:
    """Each point predicted by the map fitted on the others, with that fit's interval and whether the archived
    retired score fell inside it."""
    pts = [p for p in points if p.retired is not None]
    rows = []
    for p in pts:
        f = fit(form, [q for q in pts if q is not p], ref_length)
        if f is None:
            continue
        pr = f.predict(p.current, p.length, p.n_items)
        rows.append({"model": p.model, "actual": p.retired, "predicted": pr["estimate"],
                     "error": pr["estimate"] - p.retired, "low": pr["low"], "high": pr["high"],
                     "inside": inside(pr["low"], pr["high"], p.retired), "n_train_models": len(pts) - 1})
    return rows
