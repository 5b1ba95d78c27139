"""``reproduce plan --compare``: the stored plan (made before the run) against what the judge jobs
counted: requests sent, prompt and completion tokens (the API's ``usage`` of every reply, summed in each
job's ``judge_stats``), dollars and wall time.

Counted figures come from each judge job's resolved config (``<judgments>.config.json``), which the job
writes after it finishes; a job that has not finished is listed as not run, never as zero.
"""

from __future__ import annotations

import json
from pathlib import Path

from reproduce.io import DataError
from reproduce.paths import ResultPaths, config_beside

FIELDS = (("requests", "to_send", "new_requests"), ("prompt tokens", "prompt_tokens", "prompt_tokens"),
          ("completion tokens", "completion_tokens", "completion_tokens"), ("dollars", "usd", "cost_usd"),
          ("wall s", "wall_s", "seconds"))


def counted(results: Path, row: dict) -> dict | None:
    """The judge_stats of one planned judge job, or None when it has not finished."""
    path = config_beside(ResultPaths(results).judgments(row["benchmark"], row["judge"], row["setting"], row["model"]))
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("judge_stats")


def compare(plan_path: Path, results: Path) -> dict:
    """Planned against counted, per judge x benchmark and in total."""
    if not plan_path.is_file():
        raise DataError(f"{plan_path}: no stored plan; run `reproduce plan` before the run, then --compare after it")
    plan = json.loads(plan_path.read_text())
    groups: dict[tuple, dict] = {}
    missing = []
    for row in plan["judge_jobs"]:
        if "error" in row:
            continue
        stats = counted(results, row)
        key = (row["judge"], row["benchmark"])
        g = groups.setdefault(key, {"judge": row["judge"], "benchmark": row["benchmark"], "jobs": 0, "finished": 0,
                                    **{f"planned_{p}": 0.0 for _, p, _ in FIELDS},
                                    **{f"counted_{c}": 0.0 for _, _, c in FIELDS}})
        g["jobs"] += 1
        if stats is None:
            missing.append(f"{row['benchmark']}/{row['judge']}/{row['setting']}/{row['model']}")
            continue
        g["finished"] += 1
        for _, p, c in FIELDS:
            g[f"planned_{p}"] += row[p]
            g[f"counted_{c}"] += stats.get(c) or 0
    total = {"judge": "all", "benchmark": "all"}
    for g in groups.values():
        for k, v in g.items():
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
    return {"plan": str(plan_path), "preset": plan["preset"], "groups": list(groups.values()) + [total],
            "not_finished": missing}


def _ratio(planned: float, got: float) -> str:
    if not planned:
        return "exact" if not got else "n/a"
    diff = (got - planned) / planned
    return "exact" if got == planned else f"{diff:+.1%}"


def render_compare(result: dict) -> str:
    """Markdown: one row per judge x benchmark, planned / counted / difference per figure."""
    head = " | ".join(f"{name} planned | counted | diff" for name, _, _ in FIELDS)
    out = [f"# Plan against the run: preset `{result['preset']}` ({result['plan']})", "",
           f"| judge | benchmark | jobs finished | {head} |", "|---|---|---|" + "---|" * (3 * len(FIELDS))]
    for g in result["groups"]:
        cells = []
        for _, p, c in FIELDS:
            pv, cv = g[f"planned_{p}"], g[f"counted_{c}"]
            fmt = "{:,.2f}" if p in ("usd", "wall_s") else "{:,.0f}"
            cells += [fmt.format(pv), fmt.format(cv), _ratio(pv, cv)]
        out.append(f"| {g['judge']} | {g['benchmark']} | {g['finished']:.0f}/{g['jobs']:.0f} | " + " | ".join(cells) + " |")
    if result["not_finished"]:
        out += ["", f"Not finished ({len(result['not_finished'])}; not counted on either side): "
                + ", ".join(result["not_finished"][:20]) + (" ..." if len(result["not_finished"]) > 20 else "")]
    return "\n".join(out) + "\n"
