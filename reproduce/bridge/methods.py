"""The AlpacaEval bridge's methods side by side: the per-item calibration and the model-level maps.

Each method is validated the same way (leave-one-model-out over its own calibration models, each left-out
model inside or outside its own interval) and predicts a cell from the same description of it: its current
win rate, its average output length, its item count and (for the per-item method) its items' features.
The default method is the one with the smallest leave-one-model-out RMSE among those that give intervals
(at least three calibration models); without any, the smallest RMSE overall. No combined estimate is made:
the archives hold at most two models with both judges' per-item verdicts, too few to validate one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from reproduce.bridge import calibration as calib
from reproduce.bridge import model_map
from reproduce.bridge.intervals import MIN_MODELS


@dataclass
class Cell:
    """What a method needs of one set of judged answers."""

    current: float
    length: float | None
    n_items: int
    X: np.ndarray | None = None


@dataclass
class Method:
    """One validated bridge method."""

    name: str
    description: str
    loo: list[dict]
    n_models: int
    fitted: object = None
    panel_item_var: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def loo_rmse(self) -> float | None:
        """Root mean square of the LOO errors (points)."""
        return calib.rmse([r["error"] for r in self.loo])

    @property
    def has_interval(self) -> bool:
        """Whether the method has enough calibration models for a prediction interval."""
        return self.n_models >= MIN_MODELS

    def predict(self, cell: Cell) -> dict | None:
        """The cell's retired-judge equivalent by this method (None when the method cannot see the cell)."""
        if self.fitted is None:
            return None
        if isinstance(self.fitted, calib.Calibration):
            if cell.X is None or not len(cell.X):
                return None
            out = calib.estimate(self.fitted, cell.X, [r["error"] for r in self.loo], self.panel_item_var)
            out["extrapolated"] = outside(self.extra.get("panel_range", {}), out["estimate"], cell.length)
            return out
        return self.fitted.predict(cell.current, cell.length, cell.n_items)

    def to_dict(self) -> dict:
        """JSON form (without the fitted object)."""
        return {"name": self.name, "description": self.description, "n_models": self.n_models,
                "loo_rmse": self.loo_rmse, "loo": self.loo, "has_interval": self.has_interval, **self.extra}


def outside(ranges: dict, retired: float, length: float | None) -> list[str]:
    """What about a cell lies outside the panel's ranges of retired win rate and output length."""
    probe = model_map.MapFit("slope", np.zeros(1), np.zeros((1, 1)), None, 0, (), None, 0.0, ranges)
    return probe.outside(retired, length)


def per_item(data: dict[str, tuple[np.ndarray, np.ndarray]], lengths: dict[str, float]) -> Method:
    """The per-item calibration over models with both judges' per-item verdicts (``data``: model -> (X, y);
    ``lengths``: model -> average output length, for the panel's range)."""
    cal = calib.fit(np.vstack([d[0] for d in data.values()]), np.concatenate([d[1] for d in data.values()]),
                    tuple(data))
    item_var = float(np.mean([calib.item_var(cal, X) for X, _ in data.values()]))
    return Method("per item", "logistic regression of the retired verdict on the current verdict and the length "
                  "difference (3 coefficients and an intercept, fitted on items; model-level error from LOO)",
                  calib.leave_one_model_out(data), len(data), cal, item_var,
                  {"calibration": cal.to_dict(), "panel_range": {
                      "retired": (min(100 * float(np.mean(y)) for _, y in data.values()),
                                  max(100 * float(np.mean(y)) for _, y in data.values())),
                      "length": (min(lengths[m] for m in data), max(lengths[m] for m in data))}})


def model_level(points: list[model_map.Point], ref_length: float | None, source: str) -> list[Method]:
    """One method per map form that the points allow (``slope+length`` needs every point's length)."""
    out = []
    for form, (eq, k) in model_map.FORMS.items():
        if form == "slope+length" and (ref_length is None or any(p.length is None for p in points)):
            continue
        fitted = model_map.fit(form, points, ref_length)
        if fitted is None:
            continue
        out.append(Method(f"model level ({form})", f"{eq}; {k} free parameter{'s' if k > 1 else ''}; points: {source}",
                          model_map.leave_one_out(form, points, ref_length), len(fitted.models), fitted,
                          extra={"map": fitted.describe()}))
    return out


def choose_default(methods: list[Method]) -> Method:
    """The method with the smallest LOO RMSE among those with intervals (else among all with a LOO error)."""
    ranked = [m for m in methods if m.loo_rmse is not None]
    with_interval = [m for m in ranked if m.has_interval]
    pool = with_interval or ranked or methods
    return min(pool, key=lambda m: (m.loo_rmse if m.loo_rmse is not None else float("inf")))
