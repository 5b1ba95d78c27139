"""Figures for reports (PNG for slides, PDF for papers), all drawn from real result files.

- ``scores_by_benchmark``: grouped bars per benchmark metric, one bar per method, 95% CIs where the protocol
  gives one (Arena-Hard bootstrap; AlpacaEval ±1.96 SE).
- ``judge_scatter``: every method's score under the table judge vs another judge, identity line.
- ``length_bias``: win rate against mean answer length (tokens), the known length bias of LLM judges.
- ``training_curves``: loss, reward margin, reward accuracy per step, one line per trained method.
- ``token_rewards``: TGDPO's token-level guidance r_t = beta * (log pi_guide - log pi_ref) on example pairs.
- ``alpha_sensitivity``: scores against TGDPO's alpha, only when the config sweeps alpha.
- ``method_differences``: forest plot of the paired method differences with their 95% CIs, the paper's
  claimed gaps marked (from ``results/tables/method_differences.json``, see ``differences.py``).

Each function raises ``DataError``/``ConfigError`` with a one-line reason instead of drawing an empty or
partial plot.
"""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.config import ConfigError, trained_methods
from reproduce.io import DataError
from reproduce.paths import ResultPaths
from reproduce.report import plotting
from reproduce.report.plotting import EXTRA, LINESTYLES, MARKERS, color
from reproduce.report.provenance import load_score
from reproduce.report.table1 import COLUMNS, benchmark_for, collect_rows, method_label

# win-rate metrics (vs a baseline) for the length-bias figure
WIN_RATE_COLUMNS = ("AE-WR", "AH", "MT-WR")
FIGURES = ("scores_by_benchmark", "judge_scatter", "length_bias", "training_curves", "token_rewards", "alpha_sensitivity",
           "method_differences")


def _present_columns(rows: list[dict]) -> list[tuple]:
    return [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]


def scores_figure(cfg: dict, results: Path, out: Path, judge: str | None = None) -> None:
    """Grouped bars: one panel per metric, groups = settings, one bar per method, 95% CI error bars."""
    plt = plotting.pyplot()
    judge = judge or cfg["table_judge"]
    rows = collect_rows(cfg, judge, results)
    cols = _present_columns(rows)
    if not cols:
        raise DataError(f"scores figure: no score files for judge '{judge}' under {results}/scores; run the judges first")
    settings = list(cfg["settings"])
    methods = cfg["methods"]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.0 * len(cols) + 0.6, 3.4), squeeze=False)
    width = 0.8 / max(1, len(methods))
    for ax, (col, *_rest) in zip(axes[0], cols):
        header = _rest[-1]
        for j, method in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for i, s in enumerate(settings):
                r = next(r for r in rows if r["setting_key"] == s and r["method_key"] == method)
                if r.get(col) is None:
                    continue
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(r[col])
                lo.append(r[col] - r[f"{col}_ci_low"] if r.get(f"{col}_ci_low") is not None else 0)
                hi.append(r[f"{col}_ci_high"] - r[col] if r.get(f"{col}_ci_high") is not None else 0)
            bars = ax.bar(xs, ys, width * 0.92, yerr=[lo, hi], capsize=3, color=color(method, j),
                          label=method_label(cfg, settings[0], method), error_kw={"elinewidth": 1})
            for b, y, h in zip(bars, ys, hi):
                # label above the error bar, not on it
                ax.annotate(f"{y:.1f}" if col != "MT-S" else f"{y:.2f}", (b.get_x() + b.get_width() / 2, y + h),
                            xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=7)
        ax.set_title(header, fontsize=10)
        ax.set_xticks(range(len(settings)))
        ax.set_xticklabels([cfg["settings"][s]["label"] for s in settings], fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, 10.5 if col == "MT-S" else max(100, ax.get_ylim()[1]) if col != "MT-S" else None)
    versions = sorted({cfg["benchmarks"][b].get("version", "?") for b in cfg["benchmarks"]})
    plotting.finish(fig, axes, f"Scores by benchmark — judge: {judge}; benchmarks {', '.join(versions)}; "
            "error bars: 95% CI (AlpacaEval: ±1.96 SE)", out, ncol=len(methods), legend_y=-0.06)


def judge_scatter_figure(cfg: dict, results: Path, out: Path, judges: list[str] | None = None) -> None:
    """Per metric: each (setting, method)'s score under the table judge (x) and another judge (y), identity line."""
    plt = plotting.pyplot()
    judges = list(judges or [cfg["table_judge"], *[j for j in cfg["judges"] if j != cfg["table_judge"]]])
    if len(judges) < 2:
        raise ConfigError(f"judge scatter needs at least two judges; preset '{cfg['preset']}' has {judges}")
    ja, others = judges[0], judges[1:]
    rows_a = collect_rows(cfg, ja, results, routed=False)  # each judge's own scores, not the routed table
    rows_b = {j: collect_rows(cfg, j, results, routed=False) for j in others}
    cols = [c for c in _present_columns(rows_a) if any(_present_columns(rb) and c in _present_columns(rb) for rb in rows_b.values())]
    if not cols:
        raise DataError(f"judge scatter: no metric has scores under both {ja} and {others}")
    fig, axes = plt.subplots(1, len(cols), figsize=(3.1 * len(cols), 3.4), squeeze=False)
    for ax, (col, *_rest) in zip(axes[0], cols):
        vals = []
        for k, j in enumerate(others):
            for i, (ra, rb) in enumerate(zip(rows_a, rows_b[j])):
                if ra.get(col) is None or rb.get(col) is None:
                    continue
                m = ra["method_key"]
                ax.scatter(ra[col], rb[col], s=45, color=color(m, cfg["methods"].index(m)), marker=MARKERS.get(m, "o"),
                           edgecolor="black", linewidth=0.5, zorder=3,
                           label=method_label(cfg, ra["setting_key"], m) if k == 0 else None)
                vals += [ra[col], rb[col]]
        if vals:
            lo, hi = min(vals), max(vals)
            pad = max(1e-6, 0.1 * (hi - lo) or 0.05 * abs(hi) or 1)
            lim = (lo - pad, hi + pad)
            ax.plot(lim, lim, "--", color="gray", linewidth=1, zorder=1, label="y = x")
            ax.set_xlim(lim)
            ax.set_ylim(lim)
            ax.set_aspect("equal", adjustable="box")
        ax.set_title(_rest[-1], fontsize=10)
        ax.set_xlabel(ja)
        ax.set_ylabel(", ".join(others))
        ax.grid(alpha=0.3)
    plotting.finish(fig, axes, f"Judge vs judge on the same answers: {ja} (x) vs {', '.join(others)} (y)", out)


def mean_answer_length(path: Path) -> float:
    """Mean generated length of a model's answers in tokens (``meta.n_tokens``; characters when absent)."""
    lengths = []
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        a = json.loads(line)
        n = (a.get("meta") or {}).get("n_tokens")
        lengths.append(sum(n) if n else sum(len(t) for t in a.get("turns", [])))
    if not lengths:
        raise DataError(f"{path}: no answers")
    return sum(lengths) / len(lengths)


def length_bias_figure(cfg: dict, results: Path, out: Path, judge: str | None = None) -> None:
    """Win rate (vs the benchmark's baseline) against mean answer length, one panel per win-rate metric."""
    plt = plotting.pyplot()
    import numpy as np

    judge = judge or cfg["table_judge"]
    rows = collect_rows(cfg, judge, results)
    cols = [c for c in _present_columns(rows) if c[0] in WIN_RATE_COLUMNS]
    if not cols:
        raise DataError(f"length-bias figure: no win-rate scores for judge '{judge}' under {results}/scores")
    fig, axes = plt.subplots(1, len(cols), figsize=(3.3 * len(cols), 3.3), squeeze=False)
    for ax, (col, _, protocol, *_rest) in zip(axes[0], cols):
        bench = benchmark_for(cfg, protocol)
        xs, ys = [], []
        for r in rows:
            if r.get(col) is None:
                continue
            answers = Path(ResultPaths(results).answers(bench, r["setting_key"], r["method_key"]))
            if not answers.exists():
                raise DataError(f"length-bias figure: missing answers file {answers} for a scored model")
            x = mean_answer_length(answers)
            m = r["method_key"]
            lo = r[col] - r[f"{col}_ci_low"] if r.get(f"{col}_ci_low") is not None else 0
            hi = r[f"{col}_ci_high"] - r[col] if r.get(f"{col}_ci_high") is not None else 0
            ax.errorbar(x, r[col], yerr=[[lo], [hi]], fmt=MARKERS.get(m, "o"), color=color(m, cfg["methods"].index(m)),
                        markeredgecolor="black", markersize=7, capsize=3,
                        label=method_label(cfg, r["setting_key"], m))
            xs.append(x)
            ys.append(r[col])
        title = _rest[-1]
        if len(xs) >= 3 and len(set(xs)) > 1 and len(set(ys)) > 1:
            r_ = float(np.corrcoef(xs, ys)[0, 1])
            title += f"\nPearson r = {r_:+.2f} (n={len(xs)})"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(f"mean answer length (tokens), {bench}", fontsize=9)
        ax.set_ylabel("win rate vs baseline (%)")
        ax.grid(alpha=0.3)
    plotting.finish(fig, axes, f"Win rate vs answer length (length bias) — judge: {judge}", out)


def read_train_log(path: Path) -> list[dict]:
    """The per-step training log (one JSON object per line)."""
    steps = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if line.strip():
            try:
                steps.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(f"{path}: line {i + 1} is not valid JSON") from None
    return [s for s in steps if "loss" in s and "step" in s]


TRAIN_METRICS = [("loss", "training loss"), ("rewards/margins", "reward margin (chosen − rejected)"),
                 ("rewards/accuracies", "reward accuracy")]


def training_figure(cfg: dict, results: Path, out: Path) -> None:
    """Loss, reward margin and reward accuracy per step: one row per setting, one line per trained method
    (the guidance DPO model is the DPO row when the preset trains DPO)."""
    plt = plotting.pyplot()
    settings = list(cfg["settings"])
    fig, axes = plt.subplots(len(settings), 3, figsize=(11, 3.0 * len(settings)), squeeze=False)
    drawn = 0
    for row, setting in zip(axes, settings):
        for i, method in enumerate(trained_methods(cfg, setting)):
            log = Path(ResultPaths(results).model_dir(setting, method)) / "train_log.jsonl"
            if not log.exists():
                raise DataError(f"training curves: missing {log} (train {setting}/{method} first)")
            steps = read_train_log(log)
            if not steps:
                raise DataError(f"training curves: {log} has no logged step")
            drawn += 1
            for ax, (key, title) in zip(row, TRAIN_METRICS):
                pts = [(s["step"], s[key]) for s in steps if s.get(key) is not None]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], label=method_label(cfg, setting, method),
                        color=color(method, i), linewidth=1.8, linestyle=LINESTYLES.get(method, "-"),
                        marker=MARKERS.get(method, "o") if len(pts) < 40 else None, markersize=3)
                ax.set_title(f"{title} — {cfg['settings'][setting]['label']}", fontsize=10)
                ax.set_xlabel("optimizer step")
                ax.grid(alpha=0.3)
        row[0].legend()
    if not drawn:
        raise DataError("training curves: the preset trains no method")
    fig.tight_layout()
    plotting.save(fig, out)
    plt.close(fig)


def token_rewards_figure(cfg: dict, results: Path, out: Path, setting: str | None = None, n_pairs: int = 3) -> None:
    """Token strips of example preference pairs colored by TGDPO's guidance reward r_t (see token_rewards.py)."""
    from reproduce.report.token_rewards import example_pairs

    plt = plotting.pyplot()
    from matplotlib import colors as mcolors

    setting = setting or next(iter(cfg["settings"]))
    ex = example_pairs(cfg, results, setting, n_pairs=n_pairs)
    lim = max(1e-6, max(abs(v) for p in ex["pairs"] for side in ("chosen", "rejected") for v in p[side]["r"]))
    norm = mcolors.TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
    cmap = plt.get_cmap("RdBu_r")
    n_rows = 2 * len(ex["pairs"])
    max_tokens = max(len(p[s]["tokens"]) for p in ex["pairs"] for s in ("chosen", "rejected"))
    fig, ax = plt.subplots(figsize=(4.0 + 1.45 * max(4, max_tokens), 0.75 * n_rows + 1.6))
    y = 0
    labels, ticks = [], []
    for p in ex["pairs"]:
        for side in ("chosen", "rejected"):
            toks, rs = p[side]["tokens"], p[side]["r"]
            for k, (tok, r) in enumerate(zip(toks, rs)):
                ax.add_patch(plt.Rectangle((k, -y - 0.42), 0.96, 0.84, color=cmap(norm(r)), ec="black", lw=0.4))
                weight = 1 + ex["alpha"] * r if side == "chosen" else 1 - ex["alpha"] * r
                dark = abs(norm(r) - 0.5) > 0.33
                shown = repr(tok)[1:-1] or "∅"
                ax.text(k + 0.48, -y + 0.16, shown, ha="center", va="center", fontsize=11 if len(shown) <= 4 else 8,
                        family="monospace", weight="bold", color="white" if dark else "black")
                ax.text(k + 0.48, -y - 0.2, f"r = {r:+.3f}\nw = {weight:.3f}", ha="center", va="center", fontsize=7.5,
                        linespacing=1.1, color="white" if dark else "black")
            labels.append(f"{p['prompt']}  {side} ({'✓' if side == 'chosen' else '✗'} score {p[side]['score']:+.2f})")
            ticks.append(-y)
            y += 1
        y += 0.3
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_xlim(-0.1, max(4, max_tokens) + 0.1)
    ax.set_ylim(-y + 0.5, 0.7)
    ax.set_xticks([])
    for s in ("top", "right", "bottom", "left"):
        ax.spines[s].set_visible(False)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.02)
    cb.set_label("r_t = β (log π_guide − log π_ref)")
    ax.set_title(f"TGDPO token-level guidance on example pairs ({cfg['settings'][setting]['label']}; β={ex['beta']:g}, "
                 f"α={ex['alpha']:g})\nred: the guide rewards the token (r > 0), blue: it penalises it; weight w = 1+αr on "
                 f"chosen, 1−αr on rejected tokens\nguide = {ex['guide']}, reference = {ex['ref']}", fontsize=9.5)
    fig.tight_layout()
    plotting.save(fig, out)
    plt.close(fig)


def alpha_sweep(cfg: dict) -> dict[str, list[tuple[float, str]]]:
    """Per setting, the preset's TGDPO methods as sorted (alpha, method); only settings with >= 2 alphas."""
    out = {}
    for setting, recipe in cfg["settings"].items():
        pts = sorted((float(recipe["methods"][m]["alpha"]), m) for m in cfg["methods"]
                     if m != "sft" and recipe["methods"][m]["loss"] == "tgdpo")
        if len({a for a, _ in pts}) >= 2:
            out[setting] = pts
    return out


def sweep_message(cfg: dict) -> str:
    """Why there is no alpha plot for this config, and how to get one."""
    tgdpo = {s: [m for m in cfg["methods"] if m != "sft" and r["methods"][m]["loss"] == "tgdpo"]
             for s, r in cfg["settings"].items()}
    extra = {s: [m for m, mc in r["methods"].items() if mc["loss"] == "tgdpo" and m not in cfg["methods"]]
             for s, r in cfg["settings"].items()}
    hint = ""
    spare = sorted({m for ms in extra.values() for m in ms})
    if spare:
        hint = (f"; the recipes define more TGDPO methods ({', '.join(spare)}): add them, e.g. "
                f"--config 'methods=[{','.join(cfg['methods'] + spare)}]'")
    return (f"the config sweeps no alpha: preset '{cfg['preset']}' trains TGDPO methods {tgdpo} with fewer than two "
            f"distinct alphas in every setting, so there is nothing to plot{hint}")


def alpha_figure(cfg: dict, results: Path, out: Path, judge: str | None = None) -> None:
    """Scores against TGDPO's alpha (DPO drawn at alpha = 0, which the loss reduces to), one panel per metric."""
    plt = plotting.pyplot()
    judge = judge or cfg["table_judge"]
    sweep = alpha_sweep(cfg)
    if not sweep:
        raise ConfigError(sweep_message(cfg))
    cols = []
    for col, _, protocol, key, _, _, header in COLUMNS:
        bench = benchmark_for(cfg, protocol)
        if bench is not None:
            cols.append((col, bench, key, header))
    series = []
    for setting, pts in sweep.items():
        for col, bench, key, header in cols:
            xs, ys, err = [], [], [[], []]
            for alpha, m in pts:
                sc = load_score(results, cfg, bench, judge, setting, m)
                if sc is None:
                    raise DataError(f"alpha figure: missing score {ResultPaths(results).score(bench, judge, setting, m)}")
                v = sc.get(key)
                if v is None:
                    break
                xs.append(alpha)
                ys.append(v)
                lo, hi = sc.get("ci_low"), sc.get("ci_high")
                se = sc.get("standard_error") if key == "win_rate" and "standard_error" in sc.score else None
                err[0].append(v - lo if lo is not None else 1.96 * se if se is not None else 0)
                err[1].append(hi - v if hi is not None else 1.96 * se if se is not None else 0)
            else:
                dpo = load_score(results, cfg, bench, judge, setting, "dpo") if "dpo" in cfg["settings"][setting]["methods"] else None
                series.append((setting, col, header, xs, ys, err, dpo.get(key) if dpo else None))
    cols_drawn = list(dict.fromkeys(s[1] for s in series))
    if not cols_drawn:
        raise DataError("alpha figure: no metric has a value for every alpha")
    fig, axes = plt.subplots(1, len(cols_drawn), figsize=(3.2 * len(cols_drawn), 3.3), squeeze=False)
    for ax, col in zip(axes[0], cols_drawn):
        for i, (setting, c, header, xs, ys, err, dpo) in enumerate(s for s in series if s[1] == col):
            ax.errorbar(xs, ys, yerr=err, marker="D", color=color("tgdpo") if i == 0 else EXTRA[i], capsize=3,
                        label=f"TGDPO ({cfg['settings'][setting]['label']})")
            if dpo is not None:
                ax.scatter([0], [dpo], marker="o", s=50, color=color("dpo"), edgecolor="black", zorder=3,
                           label="DPO (α = 0)")
            ax.set_title(header, fontsize=10)
        ax.set_xlabel("α")
        ax.grid(alpha=0.3)
    plotting.finish(fig, axes, f"Sensitivity to TGDPO's α — judge: {judge}", out)


def draw_figure(name: str, cfg: dict, results: Path, out_dir: Path, judge: str | None = None) -> list[Path]:
    """Draw one named figure (see ``FIGURES``) into ``out_dir/<name>.{png,pdf}``."""
    from reproduce.report.differences import differences_figure

    out = Path(out_dir) / f"{name}.png"
    fn = {"scores_by_benchmark": lambda: scores_figure(cfg, results, out, judge),
          "judge_scatter": lambda: judge_scatter_figure(cfg, results, out),
          "length_bias": lambda: length_bias_figure(cfg, results, out, judge),
          "training_curves": lambda: training_figure(cfg, results, out),
          "token_rewards": lambda: token_rewards_figure(cfg, results, out),
          "alpha_sensitivity": lambda: alpha_figure(cfg, results, out, judge),
          "method_differences": lambda: differences_figure(cfg, results, out)}.get(name)
    if fn is None:
        raise ConfigError(f"--name: unknown figure '{name}' (known: {', '.join(FIGURES)})")
    fn()
    return [out, out.with_suffix(".pdf")]


def default_figures(cfg: dict) -> list[str]:
    """The figures a config supports: the judge scatter needs two judges, the alpha plot an alpha sweep."""
    names = ["scores_by_benchmark", "length_bias", "training_curves"]
    if any(r["methods"].get(m, {}).get("loss") == "tgdpo" for r in cfg["settings"].values() for m in cfg["methods"]):
        names.append("token_rewards")
    if len(cfg["judges"]) >= 2:
        names.append("judge_scatter")
    if alpha_sweep(cfg):
        names.append("alpha_sensitivity")
    from reproduce.report.differences import resolve_pairs

    if resolve_pairs(cfg):  # a comparison naming a method the preset lacks stops here, naming the key
        names.append("method_differences")
    return names


def draw_figures(cfg: dict, results: Path, out_dir: Path, log=print) -> list[Path]:
    """Draw every figure the config supports into ``out_dir``; returns the PNG paths."""
    outs = []
    for name in default_figures(cfg):
        png = draw_figure(name, cfg, results, out_dir)[0]
        log(f"wrote {png} (+ .pdf)")
        outs.append(png)
    if "alpha_sensitivity" not in default_figures(cfg):
        log(f"note: no alpha_sensitivity figure: {sweep_message(cfg)}")
    return outs
