"""One figure per ablation (PNG + PDF): win rate against training step per alpha (the paper's points marked),
each guide's own score beside the TGDPO it guides, and training loss against step for each method trained
for one epoch and to convergence (their win rates at the end in the legend)."""

from __future__ import annotations

from pathlib import Path

from reproduce.report import plotting


def _metrics(rows: list[dict]) -> list[str]:
    """The win-rate columns the rows have values for (AE-LC, AE-WR, AH, in that order)."""
    return [c for c in ("AE-LC", "AE-WR", "AH") if any(r.get(c) is not None for r in rows)] or ["AE-WR"]


def alpha_figure(rows: list[dict], out: Path) -> list[Path]:
    """Win rate against step, one line per alpha (final at the run's last step), one panel per metric; the
    paper's numbers as hollow markers at their steps; error bars are the cells' intervals."""
    plt = plotting.pyplot()
    sub = [r for r in rows if r["ablation"] == "alpha"]
    metrics = _metrics(sub)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for i, variant in enumerate(dict.fromkeys(r["variant"] for r in sub)):
        pts = [r for r in sub if r["variant"] == variant]
        for ax, m in zip(axes[0], metrics):
            xs = [r["run_steps"] if r["step"] == "final" else r["step"] for r in pts]
            keep = [(x, r) for x, r in zip(xs, pts) if x is not None and r.get(m) is not None]
            if keep:
                col = plotting.EXTRA[i % len(plotting.EXTRA)]
                lo = [r[m] - r[f"{m}_ci_low"] if r.get(f"{m}_ci_low") is not None else 0 for _, r in keep]
                hi = [r[f"{m}_ci_high"] - r[m] if r.get(f"{m}_ci_high") is not None else 0 for _, r in keep]
                ax.errorbar([x for x, _ in keep], [r[m] for _, r in keep], yerr=[lo, hi], color=col, marker="o",
                            ms=4, capsize=2, label=variant)
                paper = [(x, r[f"{m}_paper"]) for x, r in keep if r.get(f"{m}_paper") is not None]
                if paper:
                    ax.scatter(*zip(*paper), s=70, facecolors="none", edgecolors=col, linewidths=1.5,
                               label=f"{variant}: paper")
            ax.set_xlabel("training step")
            ax.set_ylabel(f"{m} win rate (%)")
    plotting.finish(fig, axes, "alpha sensitivity: win rate at mid-run checkpoints (hollow: the paper's points)", out,
                    ncol=3, legend_y=-0.15)
    return [out.with_suffix(".png"), out.with_suffix(".pdf")]


def guidance_figure(rows: list[dict], out: Path) -> list[Path]:
    """Bars: each guide's own score beside the TGDPO it guides, one panel per metric."""
    plt = plotting.pyplot()
    sub = [r for r in rows if r["ablation"] == "guidance"]
    metrics = _metrics(sub)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for j, r in enumerate(sub):
            if r.get(m) is None:
                continue
            err = ([[r[m] - r[f"{m}_ci_low"]], [r[f"{m}_ci_high"] - r[m]]] if r.get(f"{m}_ci_low") is not None else None)
            ax.bar(j, r[m], color=plotting.color("dpo" if "guide:" in r["variant"] else "tgdpo"), yerr=err, capsize=3,
                   label="guide (its own score)" if "guide:" in r["variant"] else "TGDPO it guides")
            if r.get(f"{m}_paper") is not None:
                ax.scatter([j], [r[f"{m}_paper"]], marker="_", s=300, color="black", label="paper")
        ax.set_xticks(range(len(sub)), [r["model"] for r in sub], rotation=20, fontsize=8)
        ax.set_ylabel(f"{m} win rate (%)")
    # one legend entry per kind
    handles = {}
    for h, lab in zip(*axes[0][0].get_legend_handles_labels()):
        handles.setdefault(lab, h)
    axes[0][0].legend(handles.values(), handles.keys(), fontsize=7, frameon=False)
    fig.suptitle("guidance quality: each guide beside the TGDPO it guides", fontsize=10)
    fig.tight_layout()
    paths = plotting.save(fig, out)
    plt.close(fig)
    return paths


def convergence_figure(rows: list[dict], curves: dict, out: Path) -> list[Path]:
    """Training loss against step, one panel per method: one epoch and to convergence, win rates in the legend."""
    plt = plotting.pyplot()
    sub = [r for r in rows if r["ablation"] == "convergence"]
    pairs = [sub[i:i + 2] for i in range(0, len(sub), 2)]
    fig, axes = plt.subplots(1, max(1, len(pairs)), figsize=(4.0 * max(1, len(pairs)), 3.2), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        for r, style in zip(pair, ("-", "--")):
            pts = curves.get(r["model"]) or []
            wins = ", ".join(f"{m} {r[m]:.1f}" for m in ("AE-WR", "AH") if r.get(m) is not None)
            if pts:
                ax.plot(*zip(*pts), style, lw=1.2, label=f"{r['variant'].split(', ')[-1]}: {wins}")
            if r.get("convergence_fired_step"):
                ax.axvline(r["convergence_fired_step"], color="grey", lw=0.8, ls=":")
        ax.set_title(pair[0]["variant"].split(",")[0], fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle("trained to loss convergence: loss curves (dotted: where the rule stopped), win rates at the end",
                 fontsize=10)
    fig.tight_layout()
    paths = plotting.save(fig, out)
    plt.close(fig)
    return paths


def draw_ablation_figures(cfg: dict, rows: list[dict], curves: dict, out_dir: Path, paper: dict) -> list[Path]:
    """The three ablation figures into ``out_dir`` (``ablation_alpha``, ``ablation_guidance``,
    ``ablation_convergence``); an ablation the preset does not run is drawn empty, so the target's outputs exist."""
    out_dir = Path(out_dir)
    return [*alpha_figure(rows, out_dir / "ablation_alpha"), *guidance_figure(rows, out_dir / "ablation_guidance"),
            *convergence_figure(rows, curves, out_dir / "ablation_convergence")]
