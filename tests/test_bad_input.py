"""Bad input, table-driven: each case must fail with a clear error naming the item (file, key, line,
question id, game), and nothing computed before may be lost (files that existed are byte-identical after).

One home per case: cases of a module whose own test file covers them live there, not here (config and
judge-file validation: test_config.py; a corrupt answers line: test_generation.py; an unreachable judge
endpoint: test_cli.py for the job, test_openai_judge.py for the client). An MT-Bench rating outside 1..10 is
not bad input: it is kept and counted, as FastChat does (test_mt_bench.py).

Each case builds its input in a temporary directory and returns ``(action, precious files)``; the action
must raise the expected exception with a message matching the pattern, or (kind "failure") finish with
the item listed as a failed judgment and no verdict. ``pytest tests/test_bad_input.py -v`` prints the table.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from reproduce.config import load_config
from reproduce.io import DataError, read_jsonl, sha256_file
from reproduce.judges.base import JudgeError

from support.standin_server import StandinServer

KEY_ENV = "BAD_INPUT_KEY"


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def _jsonl(*recs) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs)


def _answers(text: str, qids=None):
    from reproduce.generate.run import load_answers

    def build(tmp):
        p = _write(tmp, "answers.jsonl", text)
        return (lambda: load_answers(p, qids)), [p]
    return build


def _pairs(text: str):
    from reproduce.data.prefs import load_pairs

    def build(tmp):
        p = _write(tmp, "prefs.jsonl", text)
        return (lambda: load_pairs(p)), [p]
    return build


def _judgments(protocol: str, text: str, fmt: str, name: str = "j.jsonl", score: bool = False):
    def build(tmp):
        from reproduce.benchmarks.protocol import get_protocol

        proto = get_protocol(protocol)
        p = _write(tmp, name, text)

        def act():
            recs = proto.read_judgments(p, fmt)
            if score:
                proto.score(recs, None, length_controlled=False)
        return act, [p]
    return build


def _official(mutate, sha: str | None = None, dup: bool = False):
    """An official question file in a mirror directory, pinned by sha256 in the benchmark spec."""
    from reproduce.benchmarks.questions import load_questions

    def build(tmp):
        mirror = tmp / "mirror"
        (mirror / "ah").mkdir(parents=True)
        rows = [{"question_id": "q1", "category": "c", "turns": [{"content": "hi"}]},
                {"question_id": "q2", "category": "c", "turns": [{"content": "there"}]}]
        if dup:
            rows[1]["question_id"] = "q1"
        path = mirror / "ah" / "question.jsonl"
        path.write_text(mutate(_jsonl(*rows)))
        spec = {"path": "ah/question.jsonl", "url": "http://127.0.0.1:9/none", "sha256": sha or sha256_file(path)}
        bench = {"_file": "evals/benchmarks/x.yaml", "protocol": "arena_hard", "questions": {"files": {"questions": spec}}}
        return (lambda: load_questions(bench, mirror)), [path]
    return build


def _tiny_setup(protocol: str, n: int = 4):
    from reproduce.benchmarks.questions import load_questions
    from reproduce.benchmarks.reference import reference_answers

    bench = dict(load_config({"preset": "tiny"})["benchmarks"][f"tiny_{protocol}"])
    bench["questions"] = dict(bench["questions"], n=n)
    qs = load_questions(bench)
    refs = {r["question_id"]: r for r in reference_answers(bench, qs)}
    answers = {q["question_id"]: {"question_id": q["question_id"], "model": "m", "turns": [refs[q["question_id"]]["turns"][0] + "7"]}
               for q in qs}
    return bench, qs, answers, refs


def _judge_run(protocol: str, verdict: str, templates, drop_ref: bool = False, key: bool = True):
    """Judge a few tiny questions with an OpenAIJudge on the stand-in."""
    from reproduce.judges.cache import JudgmentCache
    from reproduce.judges.openai_judge import OpenAIJudge
    from reproduce.judges.run import judge_model

    def build(tmp):
        bench, qs, answers, refs = _tiny_setup(protocol)
        if drop_ref:
            refs.pop(qs[-1]["question_id"])
        cache_path = tmp / "_cache.jsonl"
        cache_path.write_text(_jsonl({"key": "0" * 32, "reply": {"text": "[[A>B]]"}, "verdict": "A>B"}))

        def act():
            with StandinServer(verdict=verdict) as srv:
                cfg = {"kind": "openai", "model": "s", "base_url": srv.base_url,
                       "api_key_env": KEY_ENV if key else "BAD_INPUT_UNSET_KEY", "max_retries": 1, "timeout_s": 2}
                judge = OpenAIJudge("standin", cfg, backoff_base_s=0.01, max_wait_s=0.05)
                return asyncio.run(judge_model(bench, judge, JudgmentCache(cache_path), qs, answers, refs,
                                               templates, log=lambda m: None))
        return act, [cache_path]
    return build


ARENA_T = {"system_prompt": "Labels [[A>>B]] [[A>B]] [[A=B]] [[B>A]] [[B>>A]]", "prompt_template": ["{question_1}|{answer_1}|{answer_2}"]}
MT_T = {n: {"system_prompt": "judge", "prompt_template": t} for n, t in {
    "single-v1": "{question} {answer} Rating: [[rating]]", "single-math-v1": "{question} {ref_answer_1} {answer} [[rating]]",
    "pair-v2": "{question} {answer_a} {answer_b} [[A]] [[B]] [[C]]",
    "pair-math-v1": "{question} {ref_answer_1} {answer_a} {answer_b} [[A]] [[B]] [[C]]"}.items()}


def _cache_corrupt(tmp):
    from reproduce.judges.cache import JudgmentCache

    p = _write(tmp, "_cache.jsonl", _jsonl({"key": "a" * 32, "reply": {"text": "x"}, "verdict": 1})
               + "{not json\n" + _jsonl({"key": "b" * 32, "reply": {"text": "y"}, "verdict": 2}))
    return (lambda: JudgmentCache(p)), [p]


def _tokenizers(vocab_b: dict, template_b: str | None):
    from reproduce.train.trainer import check_same_tokenizer

    a = SimpleNamespace(get_vocab=lambda: {"a": 0, "b": 1}, chat_template="T")
    b = SimpleNamespace(get_vocab=lambda: vocab_b, chat_template=template_b)
    return lambda tmp: (lambda: check_same_tokenizer(a, b, "results/models/x/dpo"), [])


def _cli(*args: str):
    """The ``reproduce`` CLI: exit 2 and one line on stderr; raises CalledProcessError-like AssertionError."""
    def build(tmp):
        def act():
            out = subprocess.run([sys.executable, "-m", "reproduce.cli", *args], cwd=tmp, capture_output=True, text=True)
            if out.returncode == 2 and out.stderr.strip().count("\n") == 0:
                raise DataError(out.stderr.strip())
            raise AssertionError(f"rc {out.returncode}: {out.stderr[-1500:]}")
        _write(tmp, "answers.jsonl", _jsonl({"question_id": "addition-0000", "model": "m", "turns": ["1"]},
                                            {"question_id": "addition-0000", "model": "m", "turns": ["2"]}))
        return act, [tmp / "answers.jsonl"]
    return build


def _bench_logprobs_false(tmp):
    from reproduce.benchmarks import alpaca_eval2

    bench, qs, answers, refs = _tiny_setup("alpaca_eval2")
    bench["judging"] = dict(bench["judging"], logprobs=False)
    q = qs[0]
    return (lambda: alpaca_eval2.build_requests(q, answers[q["question_id"]], refs[q["question_id"]], bench, None)), []


def _mt_short_answer(tmp):
    from reproduce.benchmarks import mt_bench

    q = {"question_id": "81", "category": "writing", "turns": ["a", "b"], "reference": None}
    return (lambda: mt_bench.build_requests(q, {"question_id": "81", "model": "m", "turns": ["x"]}, None,
                                            {"judging": {"modes": ["single"]}}, MT_T)), []


def _arena_no_baseline(tmp):
    from reproduce.benchmarks import arena_hard

    q = {"question_id": "q7", "turns": ["hi"]}
    return (lambda: arena_hard.build_requests(q, {"question_id": "q7", "model": "m", "turns": ["x"]}, None, {}, ARENA_T)), []


# (case id, what it is, builder, expected exception or "failure", message pattern)
CASES = [
    ("answers-duplicate-id", "two answers to one question", _answers(_jsonl({"question_id": "q1", "turns": ["a"]}, {"question_id": "q1", "turns": ["b"]})), DataError, r"answers.jsonl:2: duplicate answer for question 'q1' \(first on line 1\)"),
    ("answers-unknown-id", "answer to a question not in the benchmark", _answers(_jsonl({"question_id": "zz", "turns": ["a"]}), {"q1"}), DataError, r"answers.jsonl:1: answer for unknown question 'zz'"),
    ("answers-empty", "turns: []", _answers(_jsonl({"question_id": "q1", "turns": []})), DataError, r"answers.jsonl:1: answer for question 'q1' has no turns"),
    ("answers-no-id", "record without question_id", _answers(_jsonl({"turns": ["a"]})), DataError, r"answers.jsonl:1: answer has no question_id"),
    ("answers-wrong-format", "a JSON array instead of JSONL", _answers('[{"question_id": "q1", "turns": ["a"]}]\n'), DataError, r"answers.jsonl:1: expected a JSON object, got list"),
    ("questions-duplicate-id", "official file with a repeated question_id", _official(lambda s: s, dup=True), DataError, r"duplicate question id 'q1'"),
    ("questions-sha256-mismatch", "benchmark file edited after pinning", _official(lambda s: s, sha="0" * 64), DataError, r"question.jsonl: sha256 [0-9a-f]+\.\.\. does not match the pinned 000000000000"),
    ("questions-not-jsonl", "question file is not JSONL", _official(lambda s: "<html>rate limited</html>\n"), DataError, r"question.jsonl:1: not valid JSON"),
    ("pairs-missing-field", "pair without 'rejected'", _pairs(_jsonl({"pair_id": "a", "prompt": [{"role": "user", "content": "1+1="}], "chosen": [{"role": "assistant", "content": "2"}]})), DataError, r"prefs.jsonl:1: pair 'a' has no 'rejected'"),
    ("pairs-empty-answer", "chosen response is blank", _pairs(_jsonl({"pair_id": "b", "prompt": [{"role": "user", "content": "1+1="}], "chosen": [{"role": "assistant", "content": " "}], "rejected": [{"role": "assistant", "content": "3"}]})), DataError, r"prefs.jsonl:1: pair 'b': empty 'chosen' response"),
    ("pairs-wrong-type", "chosen is a string, not messages", _pairs(_jsonl({"pair_id": "c", "prompt": [{"role": "user", "content": "q"}], "chosen": "2", "rejected": [{"role": "assistant", "content": "3"}]})), DataError, r"pair 'c': 'chosen' must be a list of messages"),
    ("pairs-empty-file", "no pairs at all", _pairs(""), DataError, r"prefs.jsonl: no preference pairs"),
    ("tokenizer-vocab-mismatch", "guide model with another vocabulary", _tokenizers({"a": 0, "c": 1}, "T"), ValueError, r"guidance model results/models/x/dpo: tokenizer vocabulary differs"),
    ("tokenizer-template-mismatch", "guide model with another chat template", _tokenizers({"a": 0, "b": 1}, "U"), ValueError, r"guidance model results/models/x/dpo: chat template differs"),
    ("alpaca-out-of-range", "preference 3.0 in annotations.json", _judgments("alpaca_eval2", json.dumps([{"instruction": "i", "output_1": "a", "output_2": "b", "generator_1": "r", "generator_2": "m", "preference": 3.0}]), "alpaca_eval", "ann.json"), DataError, r"ann.json: record 0: key 'preference' is 3.0, outside \[1, 2\]"),
    ("alpaca-prose-preference", "preference 'B is better'", _judgments("alpaca_eval2", json.dumps([{"instruction": "i", "output_1": "a", "output_2": "b", "generator_1": "r", "generator_2": "m", "preference": "B is better"}]), "alpaca_eval", "ann.json"), DataError, r"record 0: key 'preference' is not a number \('B is better'\)"),
    ("alpaca-wrong-format", "JSONL given as annotations.json", _judgments("alpaca_eval2", _jsonl({"a": 1}, {"b": 2}), "alpaca_eval", "ann.json"), DataError, r"ann.json: not valid JSON"),
    ("arena-missing-games", "judgment without 'games'", _judgments("arena_hard", _jsonl({"question_id": "q1", "model": "m"}), "arena_hard"), DataError, r"j.jsonl:1: record lacks 'games'"),
    ("mt-rating-not-number", "FastChat score 'high'", _judgments("mt_bench", _jsonl({"question_id": 80, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 5, "turn": 1}, {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": "high", "turn": 1}), "fastchat"), DataError, r"j.jsonl:2: score 'high' is not a number"),
    ("mt-bad-turn", "FastChat turn 3", _judgments("mt_bench", _jsonl({"question_id": 80, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 5, "turn": 1}, {"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 5, "turn": 3}), "fastchat"), DataError, r"j.jsonl:2: turn 3 is not 1 or 2"),
    ("mt-bad-winner", "FastChat g1_winner 'model_3'", _judgments("mt_bench", _jsonl({"question_id": 81, "model_1": "m", "model_2": "b", "g1_winner": "model_3", "g2_winner": "tie", "turn": 1}), "fastchat"), DataError, r"j.jsonl:1: g1_winner 'model_3' is not model_1, model_2, tie or error"),
    ("arena-all-failed", "every game failed: nothing to score", _judgments("arena_hard", _jsonl({"question_id": "q1", "model": "m", "baseline": "b", "games": [{"score": None}, {"score": "A>>>B"}]}), "native", score=True), DataError, r"no game has a verdict"),
    ("mt-answer-too-short", "one answer turn for a two-turn question", _mt_short_answer, DataError, r"answer to '81' has 1 turns, the question 2"),
    ("arena-no-baseline", "no baseline answer for a question", _arena_no_baseline, DataError, r"question 'q7' has no baseline answer"),
    ("alpaca-no-logprobs-config", "judging.logprobs: false", _bench_logprobs_false, DataError, r"judging.logprobs must be true"),
    ("cache-corrupt-line", "judgment cache with a corrupt middle line", _cache_corrupt, DataError, r"_cache.jsonl:2: not valid JSON"),
    ("reference-missing-question", "reference answers lack a question", _judge_run("arena_hard", "[[A>B]]", ARENA_T, drop_ref=True), ValueError, r"reference answers lack question 'addition-0003'"),
    ("missing-api-key", "api_key_env names an unset variable", _judge_run("arena_hard", "[[A>B]]", ARENA_T, key=False), JudgeError, r"environment variable BAD_INPUT_UNSET_KEY is not set"),
    ("verdict-prose", "judge answers prose, no verdict", _judge_run("arena_hard", "Both are fine, really.", ARENA_T), "failure", r"no verdict parsed after 2 attempt\(s\): 'Both are fine, really.'"),
    ("cli-duplicate-answer", "reproduce judge on answers with a duplicate id", _cli("judge", "--benchmark", "tiny_arena_hard", "--judge", "verifier", "--answers", "answers.jsonl", "--preset", "tiny"), DataError, r"^error: answers.jsonl:2: duplicate answer for question 'addition-0000' \(first on line 1\)$"),
    ("cli-missing-file", "reproduce score on a file that does not exist", _cli("score", "--benchmark", "arena_hard", "--judgments", "nope.jsonl"), DataError, r"^error: nope.jsonl: file not found$"),
]


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-bad-input")
    monkeypatch.delenv("BAD_INPUT_UNSET_KEY", raising=False)


@pytest.mark.slow
@pytest.mark.parametrize("case, what, build, exc, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, what, build, exc, pattern, tmp_path):
    act, precious = build(tmp_path)
    before = {p: p.read_bytes() for p in precious}
    if exc == "failure":
        records, failures, stats = act()
        assert failures, f"{case}: nothing listed as failed"
        import re

        for f in failures:
            assert f["question_id"] and f["game"] and re.search(pattern, f["reason"]), f
        # the failure is not a verdict anywhere: not in the cache, not in the records
        cache = read_jsonl(precious[0])
        assert len(cache) == 1, f"{case}: a failure was cached"
        assert stats["failed_games"] == len(failures) == stats["requests"]
    else:
        with pytest.raises(exc, match=pattern) as info:
            act()
        assert "\n" not in str(info.value).strip(), f"{case}: error is not one line: {info.value}"
    for p, data in before.items():
        assert p.read_bytes() == data, f"{case}: {p} was changed"


def test_case_table_is_large_and_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30


if __name__ == "__main__":  # print the case table
    for c in CASES:
        print(f"| {c[0]} | {c[1]} | {c[3] if isinstance(c[3], str) else c[3].__name__} | `{c[4]}` |")
