"""How a current judge's verdicts on archived pairs compare with the retired judge's, per panel model.

Per model: per-item outcome agreement (win / tie / loss, as ``reproduce.report.agreement`` counts it) and
Cohen's kappa on the same three classes; each judge's win rate (alpaca_eval's: 100 * mean(preference - 1)
over its judged items) and the paired bootstrap interval of their difference on the items both judged
(``reproduce.report.differences.paired_bootstrap``: prompt difficulty cancels). Across the panel: Spearman
and Kendall correlation of the two judges' win rates.
"""

from __future__ import annotations

from reproduce.bridge.archives import Item
from reproduce.report.agreement import _outcome, _rank_corr
from reproduce.report.differences import prompt_stats
from reproduce.report.stats import paired_bootstrap


def cohen_kappa(a: list[int], b: list[int]) -> float | None:
    """Cohen's kappa of two raters' labels; None when undefined (one label only on both sides)."""
    from sklearn.metrics import cohen_kappa_score

    if not a or len(set(a) | set(b)) < 2:
        return None
    k = float(cohen_kappa_score(a, b))
    return None if k != k else k


def win_rate(prefs: list[float | None]) -> tuple[float | None, int]:
    """(alpaca_eval's win rate in percent, number of judged items) of preferences (None = failed)."""
    done = [p for p in prefs if p is not None]
    return ((100.0 * sum(p - 1 for p in done) / len(done)) if done else None), len(done)


def _records(items: list[Item], prefs: list[float | None]) -> list[dict]:
    return [{"question_id": it.question_id, "preference": p} for it, p in zip(items, prefs)]


def compare_model(model: str, items: list[Item], current: list[float | None], rounds: int, seed: int) -> dict:
    """Agreement, kappa and both win rates of one panel model (``current`` aligned with ``items``)."""
    retired = [it.retired for it in items]
    wr_cur, n_cur = win_rate(current)
    out = {"model": model, "n_items": len(items), "current_win_rate": wr_cur, "n_current": n_cur,
           "current_failed": len(items) - n_cur}
    if all(r is None for r in retired):
        out.update(retired_win_rate=None, n_retired=0, note="no per-item retired verdicts archived (model-level check only)")
        return out
    wr_ret, n_ret = win_rate(retired)
    both = [i for i, (c, r) in enumerate(zip(current, retired)) if c is not None and r is not None]
    oc = [_outcome(current[i]) for i in both]
    orr = [_outcome(retired[i]) for i in both]
    out.update(retired_win_rate=wr_ret, n_retired=n_ret, n_both=len(both),
               agreement=(sum(x == y for x, y in zip(oc, orr)) / len(both)) if both else None,
               kappa=cohen_kappa(oc, orr))
    if len(both) >= 2:
        sub = [items[i] for i in both]
        a = prompt_stats(_records(sub, [current[i] for i in both]), "alpaca_eval2", "AE-WR", f"{model} (current)")
        b = prompt_stats(_records(sub, [retired[i] for i in both]), "alpaca_eval2", "AE-WR", f"{model} (retired)")
        boot = paired_bootstrap([a], [b], rounds=rounds, seed=seed)
        out.update(diff=boot["diff"], diff_ci_low=boot["ci_low"], diff_ci_high=boot["ci_high"])
    return out


def rank_correlation(rows: list[dict]) -> dict:
    """Spearman and Kendall correlation of current vs retired win rates over the panel models that have both."""
    pairs = [(r["current_win_rate"], r["retired_win_rate"]) for r in rows
             if r.get("current_win_rate") is not None and r.get("retired_win_rate") is not None]
    rho, tau = _rank_corr([p[0] for p in pairs], [p[1] for p in pairs])
    return {"n_models": len(pairs), "spearman": rho, "kendall": tau,
            "note": None if rho is not None else "needs at least 3 models with both judges' win rates"}


def pooled_agreement(items: list[Item], current: list[float | None]) -> dict:
    """Agreement and kappa over every item of the panel with both verdicts."""
    both = [(c, it.retired) for it, c in zip(items, current) if c is not None and it.retired is not None]
    oc, orr = [_outcome(c) for c, _ in both], [_outcome(r) for _, r in both]
    return {"n_items": len(both), "agreement": (sum(x == y for x, y in zip(oc, orr)) / len(both)) if both else None,
            "kappa": cohen_kappa(oc, orr)}
