"""``results/plan.md``: the plan as tables a person reads before paying for a run."""

from __future__ import annotations


def _n(x, fmt="{:,.0f}") -> str:
    return "?" if x is None else fmt.format(x)


def _usd(x) -> str:
    return "?" if x is None else f"${x:,.2f}"


def per_judge(plan: dict) -> list[dict]:
    """Dollars and requests per judge (over its benchmarks' jobs), in both modes, expected and upper bound."""
    out: dict[str, dict] = {}
    for r in plan["judge_jobs"]:
        if "error" in r:
            continue
        j = out.setdefault(r["judge"], {"judge": r["judge"], "to_send": 0, "cached": 0, "usd_standard": 0.0,
                                        "usd_batch": 0.0, "usd_upper_standard": 0.0, "usd_upper_batch": 0.0})
        for k in ("to_send", "cached", "usd_standard", "usd_batch"):
            j[k] += r[k]
        for k in ("usd_upper_standard", "usd_upper_batch"):
            j[k] = None if j[k] is None or r.get(k) is None else j[k] + r[k]
    return list(out.values())


def summary_lines(plan: dict) -> list[str]:
    """The few lines ``reproduce plan`` prints: totals (INCOMPLETE with the reason when a job is unpriced),
    dollars per judge (expected and upper bound), retired judges, the plan's time."""
    t = plan["totals"]
    incomplete = t.get("incomplete") or {}
    mark = {k: f"INCOMPLETE ({'; '.join(v)}): " if v else "" for k, v in
            (("gpu", incomplete.get("gpu")), ("judging", incomplete.get("judging")))}
    lines = [f"plan of preset {plan['preset']}, target {plan['target']} (judging mode {plan['judging_mode']}): "
             f"{t['jobs']['train']} training, {t['jobs']['generate']} generation, {t['jobs']['judge']} judge jobs "
             f"({t['jobs_done']} base/prefs/train/generate jobs already done)",
             f"GPU: {mark['gpu']}{_n(t['gpu_hours'], '{:,.1f}')} GPU-hours on {plan['gpu']['name']} (training "
             f"{_n(t['train_gpu_hours'], '{:,.1f}')} on {plan['gpu']['training_gpus']} GPUs per job, generation "
             f"{_n(t['generate_gpu_hours'], '{:,.1f}')}); peak {_n(t['peak_gpu_gb'], '{:,.0f}')} GB per GPU; disk "
             f"{_n(t['disk_gb'], '{:,.0f}')} GB",
             f"judging: {mark['judging']}{t['to_send']:,} requests to send ({t['cached']:,} of {t['requests']:,} cached, "
             f"{t.get('asked_by_earlier_job', 0):,} asked by an earlier job), {t['prompt_tokens']:,} prompt + "
             f"{t['completion_tokens']:,} completion tokens, {_usd(t['usd_standard'])} standard / "
             f"{_usd(t['usd_batch'])} batch expected; at most {_usd(t.get('usd_upper_standard'))} standard / "
             f"{_usd(t.get('usd_upper_batch'))} batch (every reply max_tokens long)"]
    for j in per_judge(plan):
        info = plan["judges"][j["judge"]]
        flag = f"  RETIRED {info['retired']}" if info.get("retired") else ""
        lines.append(f"  {j['judge']}: {j['to_send']:,} requests, {_usd(j['usd_standard'])} standard / "
                     f"{_usd(j['usd_batch'])} batch expected, at most {_usd(j['usd_upper_standard'])} / "
                     f"{_usd(j['usd_upper_batch'])}{flag}")
    for b, info in (plan.get("paper_judges") or {}).items():
        if info.get("retired"):
            lines.append(f"  paper's {b} judge {info['judge']} ({info['model']}): RETIRED {info['retired']}, not asked "
                         f"(replacement: {info.get('replacement')})")
    x = plan.get("extra_over_table1")
    if x:
        lines.append(f"beyond reproduce_table1: {x['jobs']['train']} training, {x['jobs']['step_model']} step models, "
                     f"{x['jobs']['generate']} generation, {x['jobs']['judge']} judge jobs; "
                     f"{_n(x['gpu_hours'], '{:,.1f}')} GPU-hours, disk {_n(x['disk_gb'], '{:,.0f}')} GB, "
                     f"{x['to_send']:,} requests, {_usd(x['usd_standard'])} standard / {_usd(x['usd_batch'])} batch")
    if plan.get("max_usd") is not None:
        lines.append(f"judging.max_usd: ${plan['max_usd']:,.2f}")
    lines.append(f"planned in {plan['plan_seconds']:.2f} s")
    return lines


def render_markdown(plan: dict) -> str:
    """The whole plan as Markdown."""
    out = [f"# Plan: preset `{plan['preset']}`, target `{plan['target']}`", "",
           "Made from the configs and the files already in `results/` before anything runs; figures marked "
           "as stated defaults are assumptions (`reproduce/plan/assumptions.py`), not measurements.", "",
           *[f"- {line}" for line in summary_lines(plan)], "",
           f"## GPU stages ({plan['gpu']['name']}; training jobs on {plan['gpu']['training_gpus']} GPUs)", "",
           f"Rates: {plan['gpu']['rates']}.", "",
           "| stage | setting | model | done | GPU-hours | wall h | peak GB/GPU | disk GB | basis |",
           "|---|---|---|---|---|---|---|---|---|"]
    for s in plan["stages"]:
        if s["stage"] not in ("train", "generate", "base"):
            continue
        out.append(f"| {s['stage']} | {s['setting']} | {s.get('method') or s.get('model') or 'sft'} | "
                   f"{'yes' if s['done'] else 'no'} | {_n(s.get('gpu_hours'), '{:,.2f}')} | "
                   f"{_n(s.get('wall_hours'), '{:,.2f}') if s['stage'] == 'train' else _n(s.get('gpu_hours'), '{:,.2f}')} | "
                   f"{_n(s.get('peak_gpu_gb'), '{:,.1f}')} | {_n(s.get('disk_gb'), '{:,.1f}')} | {s.get('basis', '')} |")
    out += ["", "## Judging", "",
            "Requests asked by an earlier job are identical (same cache key) to one another job of the same judge "
            "and benchmark sends first: the judge finds them in its cache when the jobs run one after another. "
            "The upper bound prices every reply at its `max_tokens`: a `judging.max_usd` at or above it cannot stop "
            "the run.", "",
            "| judge | benchmark | jobs | requests | cached | asked by an earlier job | to send | prompt tokens | "
            "completion tokens | $ standard | $ batch | $ at most (standard) | $ at most (batch) | wall h (standard) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in plan["by_judge"]:
        out.append(f"| {r['judge']} | {r['benchmark']} | {r['jobs']} | {r['requests']:,} | {r['cached']:,} | "
                   f"{r.get('asked_by_earlier_job', 0):,} | {r['to_send']:,} | {r['prompt_tokens']:,} | "
                   f"{r['completion_tokens']:,} | {_usd(r['usd_standard'])} | {_usd(r['usd_batch'])} | "
                   f"{_usd(r.get('usd_upper_standard'))} | {_usd(r.get('usd_upper_batch'))} | {r['wall_s'] / 3600:,.2f} |")
    out += [""]
    for r in plan["by_judge"]:
        if r.get("error"):
            out.append(f"- {r['judge']} / {r['benchmark']}: NOT PLANNED ({r['errors']} jobs): {r['error']}")
        else:
            out.append(f"- {r['judge']} / {r['benchmark']}: prompt tokens {r.get('token_basis')}; completion tokens: "
                       f"{r.get('completion_basis')}")
    retired = [f"{j} ({i['file']}): {i['retired']}" for j, i in plan["judges"].items() if i.get("retired")]
    if retired:
        out += ["", "Retired judges (their provider no longer serves them; pick a replacement):", "",
                *[f"- {r}" for r in retired]]
    out += ["", "Batch mode (`judging.mode: batch`) is priced at half the standard rate and finishes within 24 h.", ""]
    return "\n".join(out)
