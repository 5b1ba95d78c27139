"""What every report figure shares: method colors, markers and line styles, the pyplot set-up, the common
end of a figure (shared legend, title, PNG + PDF)."""

from __future__ import annotations

from pathlib import Path

COLORS = {"sft": "#7f7f7f", "dpo": "#1f77b4", "simpo": "#2ca02c", "tgdpo": "#d62728"}
EXTRA = ["#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
MARKERS = {"sft": "s", "dpo": "o", "simpo": "^", "tgdpo": "D"}
# TGDPO with a small guidance reward tracks DPO closely: dashes keep both lines visible where they overlap
LINESTYLES = {"tgdpo": (0, (4, 2))}


def color(method: str, i: int = 0) -> str:
    """A method's color, stable across figures."""
    return COLORS.get(method, EXTRA[i % len(EXTRA)])


def pyplot():
    """matplotlib's pyplot on the Agg backend with the report's font sizes and spines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "legend.fontsize": 9,
                         "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False,
                         "axes.spines.right": False, "savefig.dpi": 200})
    return plt


def finish(fig, axes, title: str, out: Path, ncol: int | None = None, legend_y: float = -0.08) -> None:
    """Shared legend under the panels, title, layout, PNG + PDF, close: the common end of every figure."""
    import matplotlib.pyplot as plt

    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=ncol or max(1, len(labels)), frameon=False,
               bbox_to_anchor=(0.5, legend_y))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    save(fig, out)
    plt.close(fig)


def save(fig, out: Path) -> list[Path]:
    """Write the figure as ``out``.png (200 dpi) and ``out``.pdf; returns both paths."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=200, bbox_inches="tight")
    fig.savefig(out.with_suffix(".pdf"), bbox_inches="tight")
    return [out.with_suffix(".png"), out.with_suffix(".pdf")]
