"""Judge jobs of a target and what each will ask: requests, prompt and completion tokens, dollars, and
how many are already in the judge's cache (never asked again).

Requests are rendered by the benchmark's own protocol (``build_requests``), exactly as the judge job
renders them, so request counts are exact. Answers not generated yet are stood in for by a marker whose
tokens are the benchmark's expected answer length (``assumptions.DEFAULT_ANSWER_TOKENS``, capped by
``max_new_tokens``); requests holding a marker are never cache hits. Completion tokens are the mean of
the judge's cached replies of that benchmark when there are any, else a stated default.
"""

from __future__ import annotations

from pathlib import Path

from reproduce.config import ConfigError, judge_for
from reproduce.judges.pricing import ANSWER_MARKER as MARKER, JudgeCosting, price_requests
from reproduce.paths import ResultPaths
from reproduce.plan import assumptions as A



def judge_jobs(cfg: dict, target: str = "reproduce_table1") -> list[tuple[str, str, str, str]]:
    """(benchmark, judge, setting, model) of every judge job ``target`` runs: ``reproduce_table1`` the table
    judge's (each benchmark routed to its ``benchmark_judges`` judge), ``all`` every judge on everything,
    ``reproduce_ablations`` the table judge's on every ablation model and ablation benchmark."""
    if target == "reproduce_ablations":
        from reproduce.ablation_models import ablation_models, ablation_spec

        spec = ablation_spec(cfg)
        if not spec:
            raise ConfigError(f"{cfg.get('_file', 'preset')}: target reproduce_ablations needs the key 'ablations'")
        return sorted({(b, judge_for(cfg, b, cfg["table_judge"]), spec["setting"], m)
                       for m in ablation_models(cfg, spec) for b in spec["benchmarks"]})
    jobs = {(b, judge_for(cfg, b, cfg["table_judge"]), s, m)
            for s in cfg["settings"] for m in cfg["methods"] for b in cfg["benchmarks"]}
    if target == "all":
        jobs |= {(b, j, s, m) for j in cfg["judges"] for s in cfg["settings"] for m in cfg["methods"]
                 for b in cfg["benchmarks"]}
    return sorted(jobs)


def answer_tokens(bench_name: str, bench: dict) -> int:
    """Expected answer tokens per turn: the protocol's stated default, capped by max_new_tokens."""
    default = A.DEFAULT_ANSWER_TOKENS.get(bench["protocol"], A.DEFAULT_ANSWER_TOKENS_OTHER)
    return min(default, int(bench.get("decoding", {}).get("max_new_tokens", default)))


class BenchmarkInputs:
    """Questions, judge templates and reference answers of one benchmark, loaded once."""

    def __init__(self, name: str, bench: dict, results: Path):
        from reproduce.benchmarks.protocol import get_protocol
        from reproduce.benchmarks.questions import load_questions

        self.name, self.bench, self.results = name, bench, results
        self.proto = get_protocol(bench["protocol"])
        self.questions = load_questions(bench)
        self.templates = self.proto.load_templates(bench)
        self.answer_tokens = answer_tokens(name, bench)
        self._refs: dict = {}
        self._renders: dict = {}

    def answers(self, setting: str, model: str) -> tuple[dict, bool]:
        """({question_id: answer}, generated): the model's answers if its file exists, else markers."""
        from reproduce.generate.run import load_answers

        path = Path(ResultPaths(self.results).answers(self.name, setting, model))
        if path.is_file():
            return load_answers(path, {q["question_id"] for q in self.questions}), True
        return {q["question_id"]: {"question_id": q["question_id"], "model": model,
                                   "turns": [MARKER] * len(q["turns"])} for q in self.questions}, False

    def reference(self, setting: str) -> dict | None:
        """{question_id: answer} of the benchmark's reference (a model's answers, or markers), or None."""
        ref = self.bench.get("reference") or {}
        if not ref:
            return None
        key = setting if ref.get("kind") == "model" else ""
        if key not in self._refs:
            if ref.get("kind") == "model":
                self._refs[key] = self.answers(setting, ref["name"])[0]
            else:
                from reproduce.benchmarks.reference import reference_answers

                self._refs[key] = {a["question_id"]: a for a in reference_answers(self.bench, self.questions)}
        return self._refs[key]

    def requests(self, setting: str, model: str, judge_config: dict | None = None) -> tuple[list, bool]:
        """([(question_id, game, request)], answers generated) as the judge job renders them for the judge of
        ``judge_config`` (a judge without log-probs is asked for discrete verdicts: other requests)."""
        from reproduce.judges.run import bench_for_judge

        answers, generated = self.answers(setting, model)
        reference = self.reference(setting)
        bench = bench_for_judge(self.bench, judge_config or {})
        discrete = bench is not self.bench  # the one judge property that changes what is rendered
        out = []
        for q in self.questions:
            a = answers.get(q["question_id"])
            if a is None:
                continue
            ref = reference.get(q["question_id"]) if reference is not None else None
            # markers are the same for every model, so their renders are shared (the one thing that tells
            # them apart is whether the model is its own baseline, whose games are never asked)
            memo = (q["question_id"], a.get("model") if generated else None, tuple(a["turns"]),
                    (ref.get("model"), tuple(ref["turns"])) if ref else None,
                    bool(ref) and ref.get("model") == a.get("model"), discrete)
            if memo not in self._renders:
                self._renders[memo] = self.proto.build_requests(q, a, ref, bench, self.templates)
            out += [(q["question_id"], g, r) for g, r in self._renders[memo]]
        return out, generated


def plan_judge_job(inputs: BenchmarkInputs, costing: JudgeCosting, setting: str, model: str,
                   batch: bool = False, asked: set | None = None) -> dict:
    """What one judge job asks: requests (all / cached / asked by an earlier job / to send), tokens and
    dollars of those it sends, expected and at the upper bound (every reply ``max_tokens`` long).

    ``asked``: the cache keys earlier jobs sharing this judge's cache (same judge, same benchmark) will have
    sent; this job's new keys are added to it. A request already there is answered from the cache, as the
    judge job finds it there when the jobs run one after another (jobs running at once may both send it).
    """
    from reproduce.judges.cache import JudgmentCache

    requests, generated = inputs.requests(setting, model, costing.config)
    cache = costing.cache(inputs.name)
    _, completion_basis = costing.completion_tokens(inputs.name, inputs.bench["protocol"])
    asked = set() if asked is None else asked
    todo: dict[str, object] = {}
    cached = earlier = 0
    for i, (qid, game, req) in enumerate(requests):
        has_marker = any(MARKER in str(m.get("content", "")) for m in req.messages or ()) or \
            any(MARKER in str(v) for v in req.fields.values())
        if has_marker:  # an answer not generated yet: never known to repeat another's
            todo[f"marker-{i}"] = req
            continue
        key = JudgmentCache.key(costing.identity, req)
        if cache.get(key) is not None:
            cached += 1
        elif key in asked:
            earlier += 1
        elif key not in todo:
            todo[key] = req
    asked.update(k for k in todo if not k.startswith("marker-"))
    priced = price_requests(costing, inputs.name, inputs.bench["protocol"], list(todo.values()), inputs.answer_tokens)
    prompt, out_tokens, usd = priced["prompt_tokens"], priced["completion_tokens"], priced["usd_standard"]
    caps = [costing.max_tokens(r) for r in todo.values()] if costing.config["kind"] == "openai" else [0] * len(todo)
    upper = None if any(c is None for c in caps) else (prompt * costing.price_in + sum(caps) * costing.price_out) / 1e6
    factor = A.BATCH_PRICE_FACTOR if batch else 1.0
    latency = A.JUDGE_LATENCY_BASE_S + (out_tokens / len(todo) if todo else 0) / A.JUDGE_OUTPUT_TOKENS_PER_S
    concurrency = int(costing.config.get("concurrency", 8))
    return {"benchmark": inputs.name, "judge": costing.name, "setting": setting, "model": model,
            "questions": len(inputs.questions), "requests": len(requests), "cached": cached,
            "asked_by_earlier_job": earlier, "to_send": len(todo), "answers_generated": generated,
            "prompt_tokens": prompt, "completion_tokens": round(out_tokens),
            "usd_standard": round(usd, 4), "usd_batch": round(usd * A.BATCH_PRICE_FACTOR, 4),
            "usd": round(usd * factor, 4),
            "usd_upper_standard": None if upper is None else round(upper, 4),
            "usd_upper_batch": None if upper is None else round(upper * A.BATCH_PRICE_FACTOR, 4),
            "wall_s": 0.0 if costing.config["kind"] != "openai" else len(todo) * latency / concurrency,
            "token_basis": costing.token_basis if not generated else f"{costing.token_basis}; answers counted",
            "completion_basis": completion_basis}


def plan_judging(cfg: dict, results: Path, target: str = "reproduce_table1", log=None,
                 ignore_cache: bool = False) -> list[dict]:
    """One :func:`plan_judge_job` row per judge job of ``target`` (``judging.mode: batch`` priced at half);
    a benchmark whose questions cannot be read gives its jobs a row with ``error`` (the reason) instead.
    ``ignore_cache``: as if no judgment were cached yet (what a finished run's answers made the jobs send)."""
    from reproduce.io import DataError
    from reproduce.judges.cache import JudgmentCache

    batch = (cfg.get("judging") or {}).get("mode") == "batch"
    inputs: dict[str, BenchmarkInputs | Exception] = {}
    costings: dict[str, JudgeCosting] = {}
    asked: dict[tuple[str, str], set] = {}  # (judge, benchmark): one cache folder, shared by its jobs
    rows = []
    for b, j, s, m in judge_jobs(cfg, target):
        if b not in inputs:
            try:
                inputs[b] = BenchmarkInputs(b, cfg["benchmarks"][b], results)
            except DataError as e:  # an official file not at hand (or unreadable): say so, plan the rest
                inputs[b] = e
        if isinstance(inputs[b], Exception):
            rows.append({"benchmark": b, "judge": j, "setting": s, "model": m, "error": f"questions unavailable: {inputs[b]}"})
            continue
        if j not in costings:
            empty = JudgmentCache(Path(results) / "_plan_no_cache.jsonl") if ignore_cache else None  # read, never written
            costings[j] = JudgeCosting(j, cfg["judges"][j], results, cache=empty)
        rows.append(plan_judge_job(inputs[b], costings[j], s, m, batch, asked.setdefault((j, b), set())))
    return rows
