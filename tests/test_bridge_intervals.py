"""The bridge's maps and intervals on synthetic data with a known truth (no files, no network; seconds).

- the fits recover a known map (model level) and known coefficients (per item);
- leave-one-model-out predictions differ from the in-sample fit and err more;
- nominal 95% prediction intervals of the model-level map cover about 95% of held-out models over 2,000
  simulated panels (tolerance 0.93-0.97 for the exact-t case, 0.90-0.99 with binomial item noise), while the
  old interval (z = 1.96, the current score's item noise added to the LOO RMSE) is reported beside it;
- fewer than three calibration models: no interval, a statement instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from reproduce.bridge import calibration as calib
from reproduce.bridge import model_map
from reproduce.bridge.intervals import loo_half_width, t_quantile
from reproduce.bridge.model_map import Point, logit, pct

Z95 = 1.959963984540054


def test_model_level_fit_recovers_a_known_map():
    """Points generated exactly by logit(retired) = 0.8 logit(current) + 0.3 ln(length / 2000) plus tiny noise."""
    rng = np.random.default_rng(1)
    pts = []
    for i in range(12):
        cur, length = rng.uniform(3, 45), rng.uniform(400, 2500)
        ret = pct(0.8 * logit(cur) + 0.3 * math.log(length / 2000) + 1e-3 * rng.standard_normal())
        pts.append(Point(f"m{i}", cur, ret, length, 10 ** 9))
    f = model_map.fit("slope+length", pts, 2000.0)
    assert f.beta == pytest.approx([0.8, 0.3], abs=0.01) and f.df == 10
    line = model_map.fit("line", [Point(p.model, p.current, pct(-0.4 + 1.2 * logit(p.current))) for p in pts])
    assert line.beta == pytest.approx([-0.4, 1.2], abs=1e-9) and line.df == 10


def test_per_item_fit_recovers_known_coefficients():
    """Retired verdicts drawn from a logistic model of the three features: the fit returns its coefficients."""
    rng = np.random.default_rng(2)
    n = 40000
    cur = rng.choice([1.0, 1.5, 2.0], n)
    ld = rng.integers(-3000, 3000, n)
    X = calib.features(cur, ld)
    coef, b0 = np.array([0.4, 0.9, 0.6]), -0.7
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ coef + b0)))).astype(float)
    cal = calib.fit(X, y)
    assert cal.coef == pytest.approx(coef, abs=0.08) and cal.intercept == pytest.approx(b0, abs=0.08)


def test_leave_one_out_differs_from_the_in_sample_fit():
    rng = np.random.default_rng(3)
    pts = [Point(f"m{i}", c, pct(0.9 * logit(c) + 0.3 * rng.standard_normal()), None, 10 ** 9)
           for i, c in enumerate(rng.uniform(3, 40, 8))]
    f = model_map.fit("slope", pts)
    loo = model_map.leave_one_out("slope", pts)
    in_sample = [f.predict(p.current)["estimate"] - p.retired for p in pts]
    assert all(abs(r["predicted"] - f.predict(p.current)["estimate"]) > 1e-6 for r, p in zip(loo, pts))
    assert calib.rmse([r["error"] for r in loo]) > calib.rmse(in_sample)


def test_fewer_than_three_models_give_no_interval_but_a_statement():
    pts = [Point("a", 10.0, 12.0), Point("b", 20.0, 25.0)]
    out = model_map.fit("slope", pts).predict(30.0)
    assert out["low"] is None and out["high"] is None and out["interval"].startswith("no interval: 2 calibration")
    assert loo_half_width([1.0, -2.0]) is None
    assert loo_half_width([1.0, -2.0, 2.0]) == pytest.approx(t_quantile(3) * math.sqrt(3.0))


def _coverage(rng, form: str, n_models: int, draws: int, item_noise: bool) -> tuple[float, float]:
    """(new, old) coverage of one held-out model's retired score over ``draws`` simulated panels."""
    new_hits = old_hits = 0
    for _ in range(draws):
        x = rng.uniform(logit(2.0), logit(45.0), n_models + 1)  # true current-judge logits
        y = (0.3 if form == "line" else 0.0) + 0.9 * x + 0.25 * rng.standard_normal(n_models + 1)
        if item_noise:  # both judges' win rates measured on 805 items each
            cur = 100 * rng.binomial(805, 1 / (1 + np.exp(-x))) / 805
            ret = 100 * rng.binomial(805, 1 / (1 + np.exp(-y))) / 805
            n_items = 805
        else:
            cur, ret, n_items = 100 / (1 + np.exp(-x)), 100 / (1 + np.exp(-y)), 10 ** 9
        pts = [Point(str(i), float(cur[i]), float(ret[i]), None, n_items) for i in range(n_models)]
        f = model_map.fit(form, pts)
        p = f.predict(float(cur[-1]), None, n_items)
        new_hits += p["low"] <= ret[-1] <= p["high"]
        # the old interval: z, and the current score's item noise added to the LOO RMSE (which already holds it)
        rmse = calib.rmse([r["error"] for r in model_map.leave_one_out(form, pts)])
        q = cur[-1] / 100
        se_items = 100 * math.sqrt(max(q * (1 - q), 1e-6) / 805) if item_noise else 0.0
        half = Z95 * math.sqrt(se_items ** 2 + rmse ** 2)
        old_hits += p["estimate"] - half <= ret[-1] <= p["estimate"] + half
    return new_hits / draws, old_hits / draws


@pytest.mark.slow
@pytest.mark.parametrize("form", ["slope", "line"])
def test_nominal_95_intervals_cover_95_percent_of_held_out_models(form):
    rng = np.random.default_rng(4)
    new, old = _coverage(rng, form, n_models=6, draws=2000, item_noise=False)
    print(f"\n{form}, 6 models, normal errors: new {new:.3f}, old (z, item noise twice) {old:.3f}")
    assert 0.93 <= new <= 0.97
    new, old = _coverage(rng, form, n_models=6, draws=2000, item_noise=True)
    print(f"{form}, 6 models, binomial item noise: new {new:.3f}, old (z, item noise twice) {old:.3f}")
    assert 0.90 <= new <= 0.99


def test_arena_cells_incomplete_get_a_reason_and_outside_the_panel_a_mark(tmp_path):
    """Arena-Hard's Table 1 cells: an incomplete cell (AH_complete false) gets no bridged number, only the
    reason; a cell beyond the panel's retired range is marked, even without an interval (two models)."""
    from reproduce.bridge.arena import fit_map, table_cells

    fitted = fit_map({"a": (20.0, 23.3), "b": (35.0, 37.9)})
    table = tmp_path / "table1.csv"
    table.write_text("setting,setting_key,method,method_key,judge,AH,AH_ci_low,AH_ci_high,AH_complete,AH_paper\n"
                     "S,s,DPO,dpo,j,30.0,27.0,33.0,True,30.4\nS,s,SFT,sft,j,20.0,18.0,22.0,False,21.4\n"
                     "S,s,TGDPO,tgdpo,j,60.0,57.0,63.0,True,35.0\n")
    dpo, sft, tgdpo = table_cells(table, "j", fitted)["cells"]
    assert dpo["bridged"]["low"] is None and not dpo["bridged"]["extrapolated"] and "note" not in dpo
    assert "bridged" not in sft and sft["note"].startswith("incomplete")
    assert tgdpo["bridged"]["extrapolated"] and "outside the panel" in tgdpo["note"]


def test_per_item_loo_interval_of_a_model_comes_from_the_others_alone():
    """Five synthetic models: each left-out model's interval is t(4) x RMSE of the four other models' own LOO
    errors, computed without it (nested), recomputed here from the inner predictions."""
    from reproduce.bridge.calibration import _predictions, leave_one_model_out

    rng = np.random.default_rng(5)
    data = {}
    for i, shift in enumerate([-1.0, -0.5, 0.0, 0.4, 0.9]):
        cur = rng.choice([1.0, 1.5, 2.0], 600, p=[0.6, 0.1, 0.3])
        X = calib.features(cur, rng.integers(-2000, 2000, 600))
        z = X @ np.array([0.5, 0.3, 0.4]) - 1.0 + shift * 0.3
        data[f"m{i}"] = (X, (rng.random(600) < 1 / (1 + np.exp(-z))).astype(float))
    rows = leave_one_model_out(data)
    for r in rows:
        inner = _predictions({k: v for k, v in data.items() if k != r["model"]})
        half = t_quantile(4) * math.sqrt(sum(x["error"] ** 2 for x in inner) / 4)
        assert (r["low"], r["high"]) == pytest.approx((r["predicted"] - half, r["predicted"] + half))
        assert r["inside"] == (r["low"] <= r["actual"] <= r["high"])
