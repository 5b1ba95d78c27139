"""Figures for reports (PNG + PDF): scores per benchmark with CIs, and training curves per method."""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.config import trained_methods
from reproduce.report.table1 import COLUMNS, METHOD_LABELS, collect_rows

COLORS = {"sft": "#7f7f7f", "dpo": "#1f77b4", "simpo": "#2ca02c", "tgdpo": "#d62728"}


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    fig.savefig(out.with_suffix(".pdf"), bbox_inches="tight")


def scores_figure(cfg: dict, results: Path, out: Path) -> None:
    """Grouped bars: one panel per metric, one bar per method (per setting), error bars where a CI exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = collect_rows(cfg, cfg["table_judge"], results)
    cols = [c[0] for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(cols)), figsize=(3.2 * max(1, len(cols)), 3.2), squeeze=False)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    for ax, col in zip(axes[0], cols):
        width = 0.8 / max(1, len(cfg["methods"]))
        for j, method in enumerate(cfg["methods"]):
            label = METHOD_LABELS.get(method, method)
            xs, ys, errs = [], [], [[], []]
            for i, s in enumerate(settings):
                r = next(r for r in rows if r["setting"] == s and r["method"] == label)
                if r.get(col) is None:
                    continue
                xs.append(i + (j - (len(cfg["methods"]) - 1) / 2) * width)
                ys.append(r[col])
                lo, hi = r.get(f"{col}_ci_low"), r.get(f"{col}_ci_high")
                se = r.get(f"{col}_standard_error")
                if lo is not None and hi is not None:
                    errs[0].append(r[col] - lo)
                    errs[1].append(hi - r[col])
                elif se is not None:
                    errs[0].append(1.96 * se)
                    errs[1].append(1.96 * se)
                else:
                    errs[0].append(0)
                    errs[1].append(0)
            ax.bar(xs, ys, width, yerr=errs, capsize=3, color=COLORS.get(method), label=label)
        ax.set_title(col)
        ax.set_xticks(range(len(settings)))
        ax.set_xticklabels(settings, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Scores by benchmark (judge: {cfg['table_judge']}; error bars: 95% CI or 1.96 SE)", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def training_figure(cfg: dict, results: Path, out: Path) -> None:
    """Loss, reward margin and reward accuracy per step, one line per trained method (first setting)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setting = next(iter(cfg["settings"]))
    metrics = [("loss", "loss"), ("rewards/margins", "reward margin"), ("rewards/accuracies", "reward accuracy")]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for method in trained_methods(cfg, setting):
        log = results / "models" / setting / method / "train_log.jsonl"
        if not log.exists():
            continue
        steps = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        for ax, (key, title) in zip(axes, metrics):
            ax.plot([s["step"] for s in steps], [s.get(key) for s in steps], label=METHOD_LABELS.get(method, method),
                    color=COLORS.get(method))
            ax.set_title(title)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Training curves ({cfg['settings'][setting]['label']})", fontsize=9)
    fig.tight_layout()
    _save(fig, out)
    plt.close(fig)


def draw_figures(cfg: dict, results: Path, out_dir: Path, log=print) -> list[Path]:
    """Draw every figure into ``out_dir``; returns the PNG paths."""
    outs = [out_dir / "scores_by_benchmark.png", out_dir / "training_curves.png"]
    scores_figure(cfg, results, outs[0])
    training_figure(cfg, results, outs[1])
    for o in outs:
        log(f"wrote {o}")
    return outs
