"""The plan of one config and target: every stage's jobs with GPU time, memory and disk, every judge
job's requests, tokens and dollars, what is already done or cached, retired judges, and the totals."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reproduce.config import trained_methods
from reproduce.plan import assumptions as A
from reproduce.plan.gpu import Rates, generate_estimate, train_estimate
from reproduce.plan.judging import answer_tokens, plan_judging
from reproduce.plan.sizes import model_shape
from reproduce.paths import ResultPaths, repo_path
from reproduce.step_models import step_model


def _accelerate_config(cfg: dict) -> dict | None:
    """The preset's accelerate config (None without ``training.launcher: accelerate``)."""
    training = cfg.get("training") or {}
    if training.get("launcher") != "accelerate" or not training.get("accelerate_config"):
        return None
    import yaml

    return yaml.safe_load(repo_path(training["accelerate_config"]).read_text()) or {}


def training_gpus(cfg: dict) -> int:
    """GPUs of one training job: the accelerate config's num_processes (1 without accelerate)."""
    acc = _accelerate_config(cfg)
    return 1 if acc is None else int(acc.get("num_processes", 1))


def training_fsdp(cfg: dict) -> bool:
    """Whether a training job shards with FSDP (the accelerate config's distributed_type)."""
    acc = _accelerate_config(cfg)
    return acc is not None and acc.get("distributed_type") == "FSDP"


def training_data(recipe: dict, setting: str, results: Path, max_length: int) -> tuple[int, float, str]:
    """(pairs, tokens per pair, basis) of a setting's preference data: counted from the pairs the workflow
    built (``results/data/<setting>/prefs.jsonl``) or a local copy, else the stated defaults."""
    prefs = Path(ResultPaths(results).prefs(setting))
    cap = 2 * max_length
    if prefs.is_file():
        n = chars = 0
        with open(prefs, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if n <= 2000:  # a sample is enough for the mean length
                    rec = json.loads(line)
                    chars += len(json.dumps([rec.get("prompt"), rec.get("chosen"), rec.get("rejected")], ensure_ascii=False))
        per_pair = min(cap, (chars / min(n, 2000)) / A.CHARS_PER_TOKEN * 1.5) if n else 0  # prompt counted twice
        return n, per_pair, f"counted from {prefs} (tokens as characters / 4)"
    local = (recipe.get("preference_data") or {}).get("local_dir")
    found = [p for p in ((repo_path(local), results.parent / local) if local else ())
             if p.is_file() and p.suffix in (".json", ".jsonl")]  # the repository's, or the working directory's
    if found:
        path = found[0]
        n = len(json.loads(path.read_text())) if path.suffix == ".json" else sum(1 for _ in open(path))
        return n, min(cap, A.DEFAULT_TOKENS_PER_PAIR), f"pairs counted in {local}; tokens per pair a stated default"
    return A.DEFAULT_PAIRS, min(cap, A.DEFAULT_TOKENS_PER_PAIR), "stated defaults (assumptions.DEFAULT_PAIRS, DEFAULT_TOKENS_PER_PAIR)"


def _done(path: Path, marker: str | None = None) -> bool:
    return (path / marker).exists() if marker else path.exists()


def _judge_file(name: str) -> dict:
    from reproduce.config import ROOT, _load_named

    return _load_named("judge", ROOT / "evals" / "judges", name, "judge", "paper_judges")


def _judge_info(c: dict) -> dict:
    """What the plan shows of a judge file: model, prices, and whether (and for what) it was retired."""
    return {"model": c.get("model"), "kind": c["kind"], "file": c.get("_file"), "retired": retired(c),
            "replacement": c.get("replacement"), "price_per_million_input": c.get("price_per_million_input"),
            "price_per_million_output": c.get("price_per_million_output")}


def retired(judge_cfg: dict) -> str | None:
    """Why a judge is retired (its file's ``retired:``), or None."""
    value = judge_cfg.get("retired")
    if not value:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str) if not isinstance(value, bool) else "retired"


def _methods(cfg: dict, setting: str, target: str) -> list[str]:
    """The methods ``target`` trains in ``setting`` (reproduce_ablations: the ablations', in their setting only)."""
    if target != "reproduce_ablations":
        return trained_methods(cfg, setting)
    from reproduce.ablation_models import ablation_methods, ablation_spec

    spec = ablation_spec(cfg)
    return ablation_methods(cfg, spec) if spec and spec["setting"] == setting else []


def model_stages(cfg: dict, results: Path, rates: Rates, gpus: int,
                 target: str = "reproduce_table1") -> tuple[list[dict], dict]:
    """(stages, shapes): the base, prefs and train jobs of every setting (parameters, GPU time, peak memory,
    disk, done or not), each run's weights-only eval-step saves (``step_model``: their disk), and each
    setting's base-model shape; no judge request is rendered (quick enough for ``reproduce doctor``)."""
    fsdp = training_fsdp(cfg)
    stages: list[dict] = []
    shapes = {}
    rp = ResultPaths(results)
    for s, recipe in cfg["settings"].items():
        shape = model_shape(recipe["base"], Path(rp.model_dir(s, "sft")), workdir=results.parent)
        shapes[s] = shape
        n = shape["params"]
        stages.append({"stage": "base", "setting": s, "jobs": 1, "done": _done(Path(rp.model_dir(s, "sft"))),
                       "params": n, "basis": shape["basis"], "disk_gb": None if n is None else A.BYTES_BF16 * n / 1e9})
        stages.append({"stage": "prefs", "setting": s, "jobs": 1, "done": _done(Path(rp.prefs(s)))})
        for m in _methods(cfg, s, target):
            method = recipe["methods"][m]
            if "max_epochs" in method:  # trained to convergence: planned for every epoch its schedule spans
                method = {**method, "epochs": method["max_epochs"]}
            pairs, per_pair, basis = training_data(recipe, s, results, int(method.get("max_length", 2048)))
            est = train_estimate(method, n, pairs, per_pair, gpus, rates, shape.get("vocab"), fsdp)
            stages.append({"stage": "train", "setting": s, "method": m, "jobs": 1, "gpus": gpus, "pairs": pairs,
                           "tokens_per_pair": round(per_pair), **est,
                           "done": _done(Path(rp.model_dir(s, m)), "train_summary.json"),
                           "basis": f"{basis}; {est['rate_basis']}; size {shape['basis']}"})
            steps = method.get("eval_steps") or []
            if steps:  # kept for evaluation: the weights once per step (no optimizer state)
                stages.append({"stage": "step_model", "setting": s, "method": m, "jobs": len(steps),
                               "disk_gb": None if n is None else len(steps) * A.BYTES_BF16 * n / 1e9,
                               "done": all(Path(rp.model_dir(s, step_model(m, st))).exists() for st in steps),
                               "basis": f"{len(steps)} weights-only saves (eval_steps) x the bf16 model"})
    return stages, shapes


def build_plan(cfg: dict, results: str | Path = "results", target: str = "reproduce_table1",
               throughput: str | Path | None = None, gpu: str | None = None) -> dict:
    """The plan (a JSON-able dict) of ``target`` under ``cfg``, read from configs and files only; GPU rates
    from the figures file ``throughput`` (or the one found for ``gpu``), else the stated FLOP model."""
    t0 = time.time()
    results = Path(results)
    rates = Rates(throughput, gpu)
    gpus = training_gpus(cfg)
    stages, shapes = model_stages(cfg, results, rates, gpus, target)
    rp = ResultPaths(results)
    judge_rows = plan_judging(cfg, results, target)
    answered = sorted({(r["setting"], r["model"]) for r in judge_rows})
    for b, bench in cfg["benchmarks"].items():  # reference models answer too (MT-Bench's baseline: sft)
        ref = bench.get("reference") or {}
        if ref.get("kind") == "model":
            answered = sorted(set(answered) | {(s, ref["name"]) for s in cfg["settings"]})
    for s, m in answered:
        out_tokens = prompt_tokens = 0.0
        for b, bench in cfg["benchmarks"].items():
            turns = 2 if bench["protocol"] == "mt_bench" else 1
            n_q = _question_count(judge_rows, b)
            out_tokens += n_q * turns * answer_tokens(b, bench)
            prompt_tokens += n_q * turns * 200  # prompts are short beside the answers; stated
        est = generate_estimate(shapes[s]["params"], out_tokens, prompt_tokens)
        done = all(Path(rp.answers(b, s, m)).is_file() for b in cfg["benchmarks"])
        stages.append({"stage": "generate", "setting": s, "model": m, "jobs": 1, "gpus": 1,
                       "output_tokens": round(out_tokens), **est, "done": done,
                       "basis": "answer lengths from assumptions.DEFAULT_ANSWER_TOKENS (capped by max_new_tokens); "
                                "decode speed assumptions.DEFAULT_DECODE_TOKENS_PER_S_8B scaled by size"})
    judges = {j: _judge_info(c) for j, c in cfg["judges"].items()}
    paper_judges = {b: {"judge": j, **_judge_info(_judge_file(j))} for b, j in (cfg.get("paper_judges") or {}).items()}
    plan = {"preset": cfg["preset"], "target": target, "judging_mode": (cfg.get("judging") or {}).get("mode", "standard"),
            "max_usd": (cfg.get("judging") or {}).get("max_usd"),
            "gpu": {"name": rates.gpu, "training_gpus": gpus, "rates": rates.source},
            "stages": stages, "judge_jobs": judge_rows, "judges": judges, "paper_judges": paper_judges}
    plan["by_judge"] = _by_judge(judge_rows)
    plan["totals"] = _totals(stages, judge_rows)
    if target == "reproduce_ablations":  # what the ablations add to a run of reproduce_table1
        table1 = {(s, m) for s in cfg["settings"] for m in ["sft", *trained_methods(cfg, s)]}
        own = lambda r: (r["setting"], r.get("method") or r.get("model")) not in table1  # noqa: E731
        plan["extra_over_table1"] = _totals([st for st in stages if st["stage"] not in ("base", "prefs") and own(st)],
                                            [r for r in judge_rows if own(r)])
    plan["plan_seconds"] = round(time.time() - t0, 2)
    return plan


def _question_count(rows: list[dict], benchmark: str) -> int:
    """Questions of a benchmark, from the plan's judge rows (requests of one job / games per question)."""
    counts = [r.get("questions") for r in rows if r["benchmark"] == benchmark and r.get("questions")]
    return counts[0] if counts else 0


def _by_judge(rows: list[dict]) -> list[dict]:
    """Judge x benchmark sums of the judge jobs."""
    out: dict[tuple, dict] = {}
    for r in rows:
        k = (r["judge"], r["benchmark"])
        agg = out.setdefault(k, {"judge": r["judge"], "benchmark": r["benchmark"], "jobs": 0, "requests": 0,
                                 "cached": 0, "asked_by_earlier_job": 0, "to_send": 0, "prompt_tokens": 0,
                                 "completion_tokens": 0, "usd_standard": 0.0, "usd_batch": 0.0,
                                 "usd_upper_standard": 0.0, "usd_upper_batch": 0.0, "wall_s": 0.0, "errors": 0})
        agg["jobs"] += 1
        if "error" in r:
            agg["errors"] += 1
            agg["error"] = r["error"]
            continue
        for f in ("requests", "cached", "asked_by_earlier_job", "to_send", "prompt_tokens", "completion_tokens",
                  "usd_standard", "usd_batch", "wall_s"):
            agg[f] += r[f]
        for f in ("usd_upper_standard", "usd_upper_batch"):  # unknown (a request without max_tokens) stays unknown
            agg[f] = None if agg[f] is None or r[f] is None else agg[f] + r[f]
        agg["token_basis"], agg["completion_basis"] = r["token_basis"], r["completion_basis"]
    for agg in out.values():
        for f in ("usd_standard", "usd_batch", "usd_upper_standard", "usd_upper_batch"):
            agg[f] = None if agg[f] is None else round(agg[f], 2)
    return list(out.values())


def incomplete_reasons(stages: list[dict], rows: list[dict]) -> dict[str, list[str]]:
    """Why the totals leave something out, for the GPU line and the judging line (empty lists: complete):
    GPU jobs of unknown size, generation of benchmarks whose questions could not be read, judge jobs not
    priced, dollars without an upper bound. The full errors are in plan.md."""
    unreadable = sorted({r["benchmark"] for r in rows if "error" in r})
    gpu, judging = [], []
    unknown = [s for s in stages if s["stage"] in ("train", "generate") and not s["done"] and s.get("gpu_hours") is None]
    if unknown:
        gpu.append(f"{len(unknown)} GPU jobs of unknown model size ({', '.join(sorted({s['setting'] for s in unknown}))})")
    if unreadable:
        gpu.append(f"generation leaves out {', '.join(unreadable)} (questions unavailable)")
        n = sum(1 for r in rows if "error" in r)
        judging.append(f"{n} judge jobs unpriced: questions of {', '.join(unreadable)} unavailable, see plan.md")
    no_cap = [r for r in rows if "error" not in r and r.get("usd_upper_standard") is None]
    if no_cap:
        judging.append(f"{len(no_cap)} judge jobs without max_tokens have no upper bound")
    return {"gpu": gpu, "judging": judging}


def _totals(stages: list[dict], rows: list[dict]) -> dict:
    """Totals over the jobs still to run (done jobs and cached requests cost nothing); ``incomplete`` lists
    what they leave out (empty: complete)."""
    todo = [s for s in stages if not s["done"]]
    gpu_stages = [s for s in todo if s["stage"] in ("train", "generate")]
    ok = [r for r in rows if "error" not in r]
    disk = [s.get("disk_gb") for s in stages if s.get("disk_gb") is not None]
    peaks = [s.get("peak_gpu_gb") for s in stages if s.get("peak_gpu_gb") is not None]
    known = [s for s in gpu_stages if s.get("gpu_hours") is not None]  # unknown sizes: named in ``incomplete``
    upper = [r.get("usd_upper_standard") for r in ok if r.get("usd_upper_standard") is not None]
    return {"jobs": {st: sum(s["jobs"] for s in stages if s["stage"] == st)
                     for st in ("base", "prefs", "train", "step_model", "generate")} | {"judge": len(rows), "score": len(rows)},
            "jobs_done": sum(s["jobs"] for s in stages if s["done"]),
            "gpu_hours": sum(s["gpu_hours"] for s in known),
            "train_gpu_hours": sum(s["gpu_hours"] for s in known if s["stage"] == "train"),
            "generate_gpu_hours": sum(s["gpu_hours"] for s in known if s["stage"] == "generate"),
            "peak_gpu_gb": max(peaks) if peaks else None, "disk_gb": sum(disk) if disk else None,
            "requests": sum(r["requests"] for r in ok), "cached": sum(r["cached"] for r in ok),
            "asked_by_earlier_job": sum(r["asked_by_earlier_job"] for r in ok),
            "to_send": sum(r["to_send"] for r in ok), "prompt_tokens": sum(r["prompt_tokens"] for r in ok),
            "completion_tokens": sum(r["completion_tokens"] for r in ok),
            "usd_standard": round(sum(r["usd_standard"] for r in ok), 2),
            "usd_batch": round(sum(r["usd_batch"] for r in ok), 2),
            "usd_upper_standard": round(sum(upper), 2), "usd_upper_batch": round(sum(upper) * A.BATCH_PRICE_FACTOR, 2),
            "judge_jobs_unplanned": len(rows) - len(ok), "incomplete": incomplete_reasons(stages, rows)}
