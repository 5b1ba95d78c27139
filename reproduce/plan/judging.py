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

from reproduce.config import judge_for
from reproduce.paths import ResultPaths
from reproduce.plan import assumptions as A
from reproduce.judges.tokens import message_tokens, token_counter

MARKER = "\u27e6answer\u27e7"  # stands in for an answer not generated yet


def judge_jobs(cfg: dict, target: str = "reproduce_table1") -> list[tuple[str, str, str, str]]:
    """(benchmark, judge, setting, model) of every judge job ``target`` runs: ``reproduce_table1`` the table
    judge's (each benchmark routed to its ``benchmark_judges`` judge), ``all`` every judge on everything."""
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

    def requests(self, setting: str, model: str) -> tuple[list, bool]:
        """([(question_id, game, request)], answers generated) as the judge job renders them."""
        answers, generated = self.answers(setting, model)
        reference = self.reference(setting)
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
                    bool(ref) and ref.get("model") == a.get("model"))
            if memo not in self._renders:
                self._renders[memo] = self.proto.build_requests(q, a, ref, self.bench, self.templates)
            out += [(q["question_id"], g, r) for g, r in self._renders[memo]]
        return out, generated


class JudgeCosting:
    """Per judge: identity (for cache keys), token counter, prices, cache, completion-token figures."""

    def __init__(self, name: str, config: dict, results: Path | None, cache=None):
        from reproduce.judges.kinds import make_judge

        self.name, self.config = name, config
        if config["kind"] == "openai":
            from reproduce.judges.openai_judge import OpenAIJudge

            self.judge = OpenAIJudge(name, config, require_key=False)
            self.count, self.token_basis = token_counter(config["model"])
        else:
            self.judge = make_judge(name, config)
            self.count, self.token_basis = (lambda s: 0), "a program, no tokens"
        self.identity = self.judge.identity()
        self.price_in = float(config.get("price_per_million_input", 0.0))
        self.price_out = float(config.get("price_per_million_output", 0.0))
        self.results = results
        self._given_cache = cache  # a judge job's own cache (the cost guard); else the judge's folder per benchmark
        self._caches: dict = {}
        self._tokens: dict = {}

    def cache(self, benchmark: str):
        """The judge's judgment cache for ``benchmark`` (every file of its ``_cache/`` folder, read only)."""
        if self._given_cache is not None:
            return self._given_cache
        if benchmark not in self._caches:
            from reproduce.judges.cache import JudgmentCache

            folder = Path(ResultPaths(self.results).judge_cache(benchmark, self.name))
            self._caches[benchmark] = JudgmentCache(folder / "_plan_reads_only.jsonl", shared_dir=folder)
        return self._caches[benchmark]

    def completion_tokens(self, benchmark: str, protocol: str) -> tuple[float, str]:
        """Mean completion tokens per request: measured from cached replies, else the stated default."""
        cache = self.cache(benchmark)
        seen = [e["reply"].get("completion_tokens") or 0 for e in cache._entries.values()]
        seen = [t for t in seen if t > 0]
        if seen:
            return sum(seen) / len(seen), f"mean of {len(seen)} cached replies"
        if self.config["kind"] != "openai":
            return 0.0, "a program, no tokens"
        return (float(A.DEFAULT_JUDGE_COMPLETION_TOKENS.get(protocol, A.DEFAULT_JUDGE_COMPLETION_OTHER)),
                f"stated default for {protocol} (assumptions.DEFAULT_JUDGE_COMPLETION_TOKENS)")

    def prompt_tokens(self, request, answer_tokens: int) -> int:
        """Prompt tokens of one request; each answer marker counts as ``answer_tokens``."""
        total = 0
        for m in request.messages or ():
            text = str(m.get("content", ""))
            if text not in self._tokens:
                markers = text.count(MARKER)
                self._tokens[text] = self.count(text.replace(MARKER, "")) + markers * answer_tokens
            total += self._tokens[text]
        from reproduce.judges.tokens import TOKENS_PER_MESSAGE

        return total + TOKENS_PER_MESSAGE * len(request.messages or ())

    def max_tokens(self, request) -> int | None:
        """The completion cap the judge will send for ``request``."""
        decoding = dict(request.decoding)
        if self.config.get("max_tokens") is not None:
            decoding["max_tokens"] = self.config["max_tokens"]
        return decoding.get("max_tokens")


def price_requests(costing: JudgeCosting, benchmark: str, protocol: str, requests: list,
                   answer_tokens: int = 0) -> dict:
    """Prompt tokens, expected completion tokens and standard-tier dollars of sending ``requests``."""
    completion, _ = costing.completion_tokens(benchmark, protocol)
    prompt = sum(costing.prompt_tokens(r, answer_tokens) for r in requests)
    out_tokens = 0.0
    for r in requests:
        cap = costing.max_tokens(r)
        out_tokens += min(completion, cap) if cap else completion
    return {"prompt_tokens": prompt, "completion_tokens": out_tokens,
            "usd_standard": (prompt * costing.price_in + out_tokens * costing.price_out) / 1e6}


def plan_judge_job(inputs: BenchmarkInputs, costing: JudgeCosting, setting: str, model: str,
                   batch: bool = False) -> dict:
    """What one judge job asks: requests (all / cached / to send), tokens and dollars of those it sends."""
    from reproduce.judges.cache import JudgmentCache

    requests, generated = inputs.requests(setting, model)
    cache = costing.cache(inputs.name)
    _, completion_basis = costing.completion_tokens(inputs.name, inputs.bench["protocol"])
    todo: dict[str, object] = {}
    cached = 0
    for i, (qid, game, req) in enumerate(requests):
        has_marker = any(MARKER in str(m.get("content", "")) for m in req.messages or ()) or \
            any(MARKER in str(v) for v in req.fields.values())
        if has_marker:
            todo[f"marker-{i}"] = req
            continue
        key = JudgmentCache.key(costing.identity, req)
        if cache.get(key) is not None:
            cached += 1
        elif key not in todo:
            todo[key] = req
    priced = price_requests(costing, inputs.name, inputs.bench["protocol"], list(todo.values()), inputs.answer_tokens)
    prompt, out_tokens, usd = priced["prompt_tokens"], priced["completion_tokens"], priced["usd_standard"]
    factor = A.BATCH_PRICE_FACTOR if batch else 1.0
    latency = A.JUDGE_LATENCY_BASE_S + (out_tokens / len(todo) if todo else 0) / A.JUDGE_OUTPUT_TOKENS_PER_S
    concurrency = int(costing.config.get("concurrency", 8))
    return {"benchmark": inputs.name, "judge": costing.name, "setting": setting, "model": model,
            "questions": len(inputs.questions), "requests": len(requests), "cached": cached, "to_send": len(todo), "answers_generated": generated,
            "prompt_tokens": prompt, "completion_tokens": round(out_tokens),
            "usd_standard": round(usd, 4), "usd_batch": round(usd * A.BATCH_PRICE_FACTOR, 4),
            "usd": round(usd * factor, 4),
            "wall_s": 0.0 if costing.config["kind"] != "openai" else len(todo) * latency / concurrency,
            "token_basis": costing.token_basis if not generated else f"{costing.token_basis}; answers counted",
            "completion_basis": completion_basis}


def plan_judging(cfg: dict, results: Path, target: str = "reproduce_table1", log=None) -> list[dict]:
    """One :func:`plan_judge_job` row per judge job of ``target`` (``judging.mode: batch`` priced at half)."""
    batch = (cfg.get("judging") or {}).get("mode") == "batch"
    inputs: dict[str, BenchmarkInputs | Exception] = {}
    costings: dict[str, JudgeCosting] = {}
    rows = []
    for b, j, s, m in judge_jobs(cfg, target):
        if b not in inputs:
            try:
                inputs[b] = BenchmarkInputs(b, cfg["benchmarks"][b], results)
            except Exception as e:  # an official file not at hand: say so, plan the rest
                inputs[b] = e
        if isinstance(inputs[b], Exception):
            rows.append({"benchmark": b, "judge": j, "setting": s, "model": m, "error": f"questions unavailable: {inputs[b]}"})
            continue
        if j not in costings:
            costings[j] = JudgeCosting(j, cfg["judges"][j], results)
        rows.append(plan_judge_job(inputs[b], costings[j], s, m, batch))
    return rows
