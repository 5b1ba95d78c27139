"""The current judge's verdicts on the archived panel: replayed from an archived annotator config, or asked
through the judge machinery (``reproduce.judges.run.judge_model`` and the judge's content-addressed cache).

Before anything is sent, :func:`plan` renders every request with the benchmark's official prompt, looks it
up in the cache and prints how many requests remain, their tokens and their dollars at the judge file's
list prices; ``dry_run`` stops there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from reproduce.bridge.archives import Item
from reproduce.config import ConfigError
from reproduce.io import DataError
from reproduce.judges.base import Judge
from reproduce.judges.cache import JudgmentCache
from reproduce.benchmarks.protocol import get_protocol
from reproduce.judges.run import bench_for_judge, judge_model


def replay(items: list[Item], annotator: str) -> list[float | None]:
    """An archived annotator config's preferences on the items, in item order."""
    return [it.annotators.get(annotator) for it in items]


@dataclass
class Job:
    """One panel model's judging inputs in the judge machinery's shapes."""

    model: str
    questions: list[dict]
    answers: dict[str, dict]
    reference: dict[str, dict] | None


def alpaca_job(model: str, items: list[Item], reference_model: str) -> Job:
    """AlpacaEval questions (the reference output travels with the question) and the model's answers."""
    questions = [{"question_id": it.question_id, "category": "alpaca_eval", "turns": [it.instruction],
                  "reference": [it.output_1], "reference_generator": reference_model} for it in items]
    answers = {it.question_id: {"question_id": it.question_id, "model": model, "turns": [it.output_2]} for it in items}
    return Job(model, questions, answers, None)


def check_judge(name: str, judge_cfg: dict) -> None:
    """The bridge re-judges real archived answers: a programmatic tiny-task judge cannot."""
    if judge_cfg.get("kind") != "openai":
        raise ConfigError(f"--judge {name}: a '{judge_cfg.get('kind')}' judge checks the tiny task's arithmetic and "
                          "cannot judge archived answers; pick an LLM judge from evals/judges/ (e.g. gpt-4.1)")


def _cache(cache_dir: Path, model: str) -> JudgmentCache:
    """This bridge run's own writer file in the judge's shared cache folder (hits from every file of it)."""
    return JudgmentCache(Path(cache_dir) / "bridge" / f"{model}.jsonl", shared_dir=cache_dir)


def render(bench: dict, judge: Judge, jobs: list[Job], cache_dir: Path | None, templates) -> tuple[int, list]:
    """(all requests, the requests not in the judge's cache) of judging every job, rendered with the
    benchmark's official prompt (``cache_dir`` None: nothing is cached), as the judge job renders them for this
    judge (a judge without log-probs is asked for discrete verdicts: other requests, other keys)."""
    proto = get_protocol(bench["protocol"])
    bench = bench_for_judge(bench, getattr(judge, "config", None) or {})
    identity = judge.identity()
    n = 0
    todo = {}
    for job in jobs:
        cache = _cache(cache_dir, job.model) if cache_dir is not None else None
        for q in job.questions:
            a = job.answers.get(q["question_id"])
            if a is None:
                continue
            ref = job.reference.get(q["question_id"]) if job.reference is not None else None
            for _, req in proto.build_requests(q, a, ref, bench, templates):
                n += 1
                key = JudgmentCache.key(identity, req)
                if cache is None or cache.get(key) is None:
                    todo[key] = req
    return n, list(todo.values())


def cost(judge: Judge, n_requests: int, todo: list) -> dict:
    """Requests, tokens and dollars at the judge file's list prices of answering ``todo``."""
    tokens = judge.estimate_tokens(todo) if hasattr(judge, "estimate_tokens") else (0, 0)
    return {"judge": judge.name, "model": getattr(judge, "model", None), "endpoint": getattr(judge, "base_url", None),
            "requests": n_requests, "not_cached": len(todo), "prompt_tokens": tokens[0], "output_tokens_max": tokens[1],
            "cost_usd_max": round(judge.estimate_cost(todo), 2),
            "prices_per_million": [getattr(judge, "price_in", 0.0), getattr(judge, "price_out", 0.0)]}


def plan(bench: dict, judge: Judge, jobs: list[Job], cache_dir: Path | None, templates) -> dict:
    """Requests, uncached requests, tokens and dollars of judging every job (nothing is sent)."""
    return cost(judge, *render(bench, judge, jobs, cache_dir, templates))


def plan_line(p: dict) -> str:
    """One line for the plan, printed before any request is sent."""
    return (f"bridge plan: judge {p['judge']} ({p['model']} at {p['endpoint']}): {p['requests']} requests, "
            f"{p['not_cached']} not cached; ~{p['prompt_tokens']:,} prompt tokens + at most {p['output_tokens_max']:,} "
            f"output tokens; at most ${p['cost_usd_max']:.2f} at list prices (${p['prices_per_million'][0]:g} / "
            f"${p['prices_per_million'][1]:g} per million input / output tokens)")


def attach_spending(judge: Judge, max_usd: float | None, ledger: str | Path | None) -> None:
    """Make the bridge's requests go through the spend ledger and ``judging.max_usd`` that the judge jobs use."""
    from reproduce.judges.ledger import SpendLedger

    judge.spending = (max_usd, SpendLedger(ledger))


def judge_jobs(bench: dict, judge: Judge, jobs: list[Job], cache_dir: Path, templates, log=print) -> dict[str, dict]:
    """Judge every job through the cache; returns model -> {"records", "failures", "stats"}.

    Every request passes the cost guard (:func:`attach_spending`; without it, an in-memory ledger and no
    cap): the request that would cross ``judging.max_usd`` is not sent, and the bridge stops there with a
    one-line ``DataError`` (what was judged stays in the cache). A judge that the endpoint does not serve
    stops at once (``JudgeFatalError`` becomes a one-line ``DataError``)."""
    from reproduce.judges.base import JudgeFatalError
    from reproduce.judges.guard import CostGuard, money

    max_usd, ledger = getattr(judge, "spending", (None, None))
    out = {}
    for job in jobs:
        guard = CostGuard(max_usd, ledger, f"bridge/{judge.name}/{Path(bench.get('_file', bench['protocol'])).stem}/{job.model}")
        settled = guard.begin()
        if settled:
            log(settled)
        judge.guard = guard
        try:
            records, failures, stats = asyncio.run(judge_model(bench, judge, _cache(cache_dir, job.model), job.questions,
                                                               job.answers, job.reference, templates, log=log))
        except JudgeFatalError as e:
            raise DataError(str(e)) from None
        finally:
            judge.guard = None
        log(f"bridge: {job.model}: {guard.requests} billed replies, {money(guard.run_usd)}")
        if guard.stopped:
            left = stats.get("budget_left", {})
            raise DataError(f"bridge: {guard.stopped}; {left.get('games', len(failures))} of {stats['requests']} games "
                            f"of {job.model} (up to {money(left.get('usd_max', 0.0))}) and {len(jobs) - len(out) - 1} "
                            "more panel model(s) are left; what was judged is cached")
        out[job.model] = {"records": records, "failures": failures, "stats": stats}
    return out
