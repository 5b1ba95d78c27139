"""Planning: how many prompts and seeds would detect the paper's claimed gap with 80% power.

From the paired comparisons of :mod:`reproduce.report.differences` (the first comparison, normally
TGDPO−DPO, under each benchmark's table judge) this takes the measured variances and a normal
approximation of the difference estimate with n prompts and k seeds per method:

    Var(diff) = var_prompt / n + (seed_var_a + seed_var_b) / k

``var_prompt`` is n0 times the variance of the difference under prompt resampling at the measured n0
prompts (the per-prompt variance of the paired difference, for the official statistic); ``seed_var_*`` the
variance of a method's per-seed scores on the fixed prompts (unknown with one seed: then it is taken as 0
and the prompt count is a lower bound, which the line says). The prompt term is not divided by k (the
same prompts serve every seed), which errs towards more prompts. A two-sided test at alpha = 0.05 has
80% power against a gap g when Var(diff) <= (g / (z_0.975 + z_0.80))^2.

A measured variance can be far smaller than the one under the claimed gap: two methods whose answers nearly
coincide (the null) give a per-prompt variance near 0, and the normal approximation would then promise the
gap from a handful of prompts. For the win-rate metrics the per-prompt paired difference moves in steps of
at least ``VERDICT_STEP`` points (a prompt's two games average to a multiple of 25), so a true gap g implies a
variance of at least |g| (step - |g|) (mass |g| / step at one step, the rest at 0); the planning uses the
larger of that floor and the measured variance, and says when the floor was used.

The gap is the paper's Table-1 difference for the setting; for a setting that is not in the paper, the
smallest and largest nonzero gap the paper claims for that pair and metric over its settings.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from reproduce.config import judge_for
from reproduce.io import atomic_write_text
from reproduce.report.stats import ALPHA, POWER, Z, prompts_needed, seeds_needed, variance_floor
from reproduce.report.table1 import PAPER_COLUMN, load_paper_table, method_label

PLAN_FIELDS = ["setting", "benchmark", "metric", "judge", "method_a", "method_b", "gap", "gap_source", "n_prompts",
               "n_seeds", "sd_prompt", "sd_seed_a", "sd_seed_b", "prompts_needed_1_seed", "prompts_needed_measured_seeds",
               "seeds_needed_at_n_prompts", "var_prompt_used", "note"]


def paper_gaps(pair: tuple[str, str], metric: str, paper: dict) -> list[float]:
    """The paper's nonzero gaps a - b for ``metric`` over its settings (where it has both cells)."""
    col = PAPER_COLUMN[metric]
    out = []
    for rows in paper["rows"].values():
        va, vb = rows.get(pair[0], {}).get(col), rows.get(pair[1], {}).get(col)
        if va is not None and vb is not None and round(va - vb, 4) != 0:
            out.append(round(va - vb, 4))
    return out


def plan(cfg: dict, diff_rows: list[dict]) -> list[dict]:
    """One planning row per (setting, benchmark metric): the first comparison under the table judge."""
    if not diff_rows:
        return []
    paper = load_paper_table()
    pair = (diff_rows[0]["method_a"], diff_rows[0]["method_b"])
    out = []
    for r in diff_rows:
        if (r["method_a"], r["method_b"]) != pair or r["judge"] != judge_for(cfg, r["benchmark"], cfg["table_judge"]):
            continue
        in_paper = r["paper_diff"] is not None
        if in_paper:
            gaps = [r["paper_diff"]] if r["paper_diff"] else []
        else:  # the paper's smallest and largest claim for this pair and metric
            others = sorted(paper_gaps(pair, r["metric"], paper), key=abs)
            gaps = list(dict.fromkeys(others[:1] + others[-1:]))
        source = ("paper shows no gap in this setting" if in_paper and not gaps else "paper, this setting" if in_paper
                  else "smallest and largest over the paper's settings" if gaps else "paper has no such gap")
        seed_var_known = r["seed_var_a"] is not None and r["seed_var_b"] is not None
        seed_var = (r["seed_var_a"] + r["seed_var_b"]) if seed_var_known else 0.0
        note = "" if seed_var_known else "seed variance not measured with 1 seed, so these are lower bounds"
        for gap in gaps or [None]:
            floor = variance_floor(gap, r["metric"]) if gap is not None else 0.0
            var_prompt = max(r["var_prompt"], floor)
            extra = (f"measured per-prompt variance {r['var_prompt']:.1f} is below the {floor:.1f} a gap of {gap:+.1f} "
                     "implies for verdicts, so the floor is used" if gap is not None and floor > r["var_prompt"] else
                     "the two methods' verdicts agree on every prompt: zero measured variance" if r["var_prompt"] == 0
                     else "")
            gap_note = "; ".join(x for x in (note, extra) if x)
            row = {"setting": r["setting"], "benchmark": r["benchmark"], "metric": r["metric"], "judge": r["judge"],
                   "method_a": pair[0], "method_b": pair[1], "gap": gap, "gap_source": source,
                   "n_prompts": r["n_prompts"], "n_seeds": r["n_seeds"], "sd_prompt": math.sqrt(r["var_prompt"]),
                   "sd_seed_a": math.sqrt(r["seed_var_a"]) if r["seed_var_a"] is not None else None,
                   "sd_seed_b": math.sqrt(r["seed_var_b"]) if r["seed_var_b"] is not None else None,
                   "prompts_needed_1_seed": None, "prompts_needed_measured_seeds": None,
                   "var_prompt_used": var_prompt, "seeds_needed_at_n_prompts": None, "note": gap_note}
            if gap is not None and var_prompt > 0:
                row["prompts_needed_1_seed"] = prompts_needed(gap, var_prompt, seed_var, 1)
                row["prompts_needed_measured_seeds"] = prompts_needed(gap, var_prompt, seed_var, r["n_seeds"])
                if seed_var_known:
                    row["seeds_needed_at_n_prompts"] = seeds_needed(gap, var_prompt, seed_var, r["n_prompts"])
            out.append(row)
    return out


def _count(n: int | None) -> str:
    return "no number of prompts (seed noise alone exceeds the gap)" if n is None else f"{n:,} prompts"


def plan_lines(cfg: dict, rows: list[dict]) -> list[str]:
    """One line per (setting, benchmark metric), every gap of that cell in the line."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["setting"], r["benchmark"], r["metric"]), []).append(r)
    lines = []
    for (setting, bench, metric), rs in groups.items():
        r0 = rs[0]
        nd = 2 if metric == "MT-S" else 1
        who = (f"{method_label(cfg, setting, r0['method_a'])} − {method_label(cfg, setting, r0['method_b'])}, "
               f"judge {r0['judge']}, {cfg['settings'][setting]['label']}")
        measured = f"per-prompt SD of the paired difference {r0['sd_prompt']:.{nd + 1}f} at {r0['n_prompts']} prompts"
        if r0["sd_seed_a"] is not None:
            measured += f", seed SD {r0['sd_seed_a']:.{nd + 1}f} / {r0['sd_seed_b']:.{nd + 1}f} from {r0['n_seeds']} seeds"
        if r0["gap"] is None:
            lines.append(f"- {bench} {metric} ({who}): {measured}; no claimed gap to plan for ({r0['gap_source']}).")
            continue
        if all(r["var_prompt_used"] == 0 for r in rs):
            gaps = ", ".join(f"{r['gap']:+.{nd}f}" for r in rs)
            lines.append(f"- {bench} {metric} ({who}): paper gap {gaps} ({r0['gap_source']}); {r0['note']}, "
                         "so nothing to plan from.")
            continue
        parts = []
        for r in rs:
            part = f"{r['gap']:+.{nd}f} needs {_count(r['prompts_needed_1_seed'])} with 1 seed"
            if r["sd_seed_a"] is not None:
                k = r["seeds_needed_at_n_prompts"]
                part += (f", or {k} seeds at {r['n_prompts']} prompts" if k is not None else
                         f", and no number of seeds at {r['n_prompts']} prompts")
            parts.append(part)
        notes = list(dict.fromkeys(r["note"] for r in rs if r["note"]))
        tail = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"- {bench} {metric} ({who}): {measured}; for 80% power at α = 0.05 the paper gap "
                     f"({r0['gap_source']}) {'; '.join(parts)}{tail}.")
    return lines


def build_power(cfg: dict, diff_rows: list[dict]) -> tuple[list[dict], str]:
    """Planning rows and their Markdown (title, method line, one line per benchmark metric)."""
    rows = plan(cfg, diff_rows)
    md = ["# Planning: prompts and seeds to detect the paper's gaps", "",
          f"Normal approximation Var(diff) = var_prompt / n + (seed_var_a + seed_var_b) / k; power {POWER:.0%}, "
          f"two-sided α = {ALPHA}, z sum {Z:.4f}; variances measured on this run (reproduce/report/power.py).", ""]
    md += plan_lines(cfg, rows) or ["- no comparison to plan for"]
    return rows, "\n".join(md) + "\n"


def write_power(rows: list[dict], md: str, out_dir: Path) -> None:
    """``power.csv`` and ``power.md`` in ``out_dir``."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PLAN_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(Path(out_dir) / "power.csv", buf.getvalue())
    atomic_write_text(Path(out_dir) / "power.md", md)
