"""What sending judge requests costs: prompt tokens (counted offline, or estimated as characters / 4),
expected completion tokens (the mean of the judge's cached replies, else a stated default per protocol) and
dollars at the judge file's prices. The plan (``reproduce/plan/``) prices whole runs with it. (The cost guard,
``judges/guard.py``, reserves each request's upper bound instead: prompt plus ``max_tokens``.)"""

from __future__ import annotations

from pathlib import Path

from reproduce.judges.tokens import TOKENS_PER_MESSAGE, token_counter
from reproduce.paths import ResultPaths

ANSWER_MARKER = "\u27e6answer\u27e7"  # in a planned request, stands in for an answer not generated yet
# Mean judge completion tokens per request by protocol when the judge's cache holds no replies of the
# benchmark (capped by the request's max_tokens): Arena-Hard's judge first answers the prompt itself,
# then compares; MT-Bench explanations are a paragraph; AlpacaEval 2 asks for one token. Stated defaults.
DEFAULT_JUDGE_COMPLETION_TOKENS = {"alpaca_eval2": 1, "arena_hard": 700, "mt_bench": 250}
DEFAULT_JUDGE_COMPLETION_OTHER = 300
BATCH_PRICE_FACTOR = 0.5  # OpenAI bills Batch API tokens at half the standard price


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
        return (float(DEFAULT_JUDGE_COMPLETION_TOKENS.get(protocol, DEFAULT_JUDGE_COMPLETION_OTHER)),
                f"stated default for {protocol} (judges/pricing.py DEFAULT_JUDGE_COMPLETION_TOKENS)")

    def prompt_tokens(self, request, answer_tokens: int) -> int:
        """Prompt tokens of one request; each answer marker counts as ``answer_tokens``."""
        total = 0
        for m in request.messages or ():
            text = str(m.get("content", ""))
            if text not in self._tokens:
                markers = text.count(ANSWER_MARKER)
                self._tokens[text] = self.count(text.replace(ANSWER_MARKER, "")) + markers * answer_tokens
            total += self._tokens[text]
        return total + TOKENS_PER_MESSAGE * len(request.messages or ())

    def max_tokens(self, request) -> int | None:
        """The completion cap the judge will send for ``request``."""
        decoding = dict(request.decoding)
        if self.config.get("max_tokens") is not None:
            decoding["max_tokens"] = self.config["max_tokens"]
        if self.config.get("max_completion_tokens") is not None:  # a reasoning model's cap (reasoning included)
            return self.config["max_completion_tokens"]
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
