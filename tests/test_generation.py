"""Generation: multi-turn prompts, per-category decoding, the context policy, resumability, answer formats,
and the errors bad input must raise (tiny random Llama, transformers backend)."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import official_file

from reproduce.generate.base import Completion
from reproduce.generate.formats import export_answers, import_answers, official_relpath, to_official
from reproduce.generate.run import cache_path, generate_answers, load_answers
from reproduce.io import DataError

GREEDY = {"temperature": 0.0, "max_new_tokens": 6, "seed": 3}


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    from reproduce.generate.hf import HFBackend

    return HFBackend(str(tiny_model_dir), batch_size=8, threads=2)


class Spy:
    """Wraps a backend and records every generate() call (conversations and decoding)."""

    def __init__(self, inner):
        self.inner, self.name, self.model_dir, self.calls = inner, inner.name, inner.model_dir, []

    def generate(self, conversations, **kw):
        self.calls.append({"convs": [list(c) for c in conversations], **kw})
        return self.inner.generate(conversations, **kw)

    def generated_prompts(self) -> list[str]:
        """The first user message of every conversation generated for at turn 1."""
        return [c[0]["content"] for call in self.calls for c in call["convs"] if len(c) == 1]


def _questions(n: int, turns: int = 1, categories=("math",)) -> list[dict]:
    return [{"question_id": f"q{i}", "category": categories[i % len(categories)],
             "turns": [f"{10 + i}+{20 + i}="] + [f"and {i}+{t}=" for t in range(1, turns)]} for i in range(n)]


def _run(questions, backend, out, decoding=GREEDY, **kw):
    return generate_answers(questions, backend, decoding, "m", "tiny", out, batch_size=4, log=lambda m: None,
                            progress=False, **kw)


@pytest.mark.slow
def test_multi_turn_sees_own_answer(backend, tmp_path):
    spy = Spy(backend)
    _run(_questions(3, turns=2), spy, tmp_path / "a.jsonl")
    answers = load_answers(tmp_path / "a.jsonl")
    turn2 = [c for call in spy.calls for c in call["convs"] if len(c) == 3]
    assert len(turn2) == 3
    for conv in turn2:
        rec = answers[next(q for q in answers if _questions(3, 2)[int(q[1:])]["turns"][0] == conv[0]["content"])]
        assert conv[1] == {"role": "assistant", "content": rec["turns"][0]}
        assert conv[2]["role"] == "user" and conv[2]["content"].startswith("and ")
        # the turn-1 answer's tokens sit inside turn 2's prompt tokens, between the two user turns
        prompt = backend.encode(conv)
        first = backend.encode(conv[:1])
        assert prompt[: len(first)] == first and len(prompt) > len(first) + rec["meta"]["n_tokens"][0]
        assert backend.tokenizer.decode(prompt).count(rec["turns"][0]) >= 1
    assert all(len(r["turns"]) == 2 and len(r["meta"]["n_tokens"]) == 2 for r in answers.values())


@pytest.mark.slow
def test_per_category_temperature(backend, tmp_path):
    decoding = {"temperature": 0.7, "max_new_tokens": 4, "seed": 1, "category_temperature": {"math": 0.0, "stem": 0.1}}
    spy = Spy(backend)
    _run(_questions(6, categories=("math", "writing", "stem")), spy, tmp_path / "a.jsonl", decoding)
    answers = load_answers(tmp_path / "a.jsonl")
    temps = {r["question_id"]: r["meta"]["decoding"]["temperature"] for r in answers.values()}
    assert temps == {"q0": 0.0, "q1": 0.7, "q2": 0.1, "q3": 0.0, "q4": 0.7, "q5": 0.1}
    seen = {(call["temperature"], tuple(c[0]["content"] for c in call["convs"])) for call in spy.calls}
    assert seen == {(0.0, ("10+20=", "13+23=")), (0.7, ("11+21=", "14+24=")), (0.1, ("12+22=", "15+25="))}


def test_prompt_longer_than_context_is_an_error_naming_the_question(backend, tmp_path):
    long_q = {"question_id": "long", "category": "math", "turns": [" ".join(["12+34="] * 40)]}
    with pytest.raises(DataError, match=r"question 'long' turn 1: prompt of \d+ tokens does not fit the context of 64"):
        _run(_questions(2) + [long_q], backend, tmp_path / "a.jsonl")
    assert not (tmp_path / "a.jsonl").exists()


@pytest.mark.slow
def test_prompt_truncation_and_context_clipping_are_recorded(tiny_model_dir, tmp_path):
    from reproduce.generate.hf import HFBackend

    cut = HFBackend(str(tiny_model_dir), batch_size=8, threads=2, overflow="truncate")
    long_q = {"question_id": "long", "category": "math", "turns": [" ".join(["12+34="] * 40)]}
    near = {"question_id": "near", "category": "math", "turns": [" ".join(["1+2="] * 9)]}
    summary = _run([long_q, near] + _questions(1), cut, tmp_path / "a.jsonl", {**GREEDY, "max_new_tokens": 20})
    answers = load_answers(tmp_path / "a.jsonl")
    m = answers["long"]["meta"]
    assert m["prompt_tokens_dropped"][0] > 0 and m["prompt_tokens"][0] + m["n_tokens"][0] <= 64
    n_near = answers["near"]["meta"]["prompt_tokens"][0]
    assert 64 - 20 < n_near < 64, "fixture prompt should leave less room than max_new_tokens"
    assert answers["near"]["meta"]["finish_reason"] == ["context"] and answers["near"]["meta"]["truncated"] == [True]
    assert answers["near"]["meta"]["n_tokens"][0] <= 64 - n_near
    assert summary["prompt_truncated"] == 1 and summary["truncated"] >= 2


@pytest.mark.slow
def test_resume_after_kill_regenerates_only_missing(backend, tmp_path):
    qs, out = _questions(10), tmp_path / "a.jsonl"
    first = _run(qs, backend, out)
    assert first["generated"] == 10
    full = out.read_text()
    # simulate a kill: the final file was never written, the cache holds 2 batches (8 answers) + a torn line
    lines = cache_path(out).read_text().splitlines(keepends=True)
    cache_path(out).write_text("".join(lines[:8]) + lines[8][: len(lines[8]) // 2])
    out.unlink()
    spy = Spy(backend)
    second = _run(qs, spy, out)
    assert (second["generated"], second["cached"]) == (2, 8)
    assert sorted(spy.generated_prompts()) == sorted(q["turns"][0] for q in qs[8:])
    assert [r["turns"] for r in map(json.loads, out.read_text().splitlines())] == \
        [r["turns"] for r in map(json.loads, full.splitlines())]  # greedy: same answers as the uninterrupted run


@pytest.mark.slow
def test_unchanged_inputs_not_regenerated_changed_decoding_is(backend, tmp_path):
    out = tmp_path / "a.jsonl"
    qs = _questions(6, categories=("math", "writing"))
    decoding = {"temperature": 0.0, "max_new_tokens": 4, "seed": 0, "category_temperature": {"writing": 0.0}}
    _run(qs, backend, out, decoding)
    spy = Spy(backend)
    assert _run(qs, spy, out, decoding)["generated"] == 0 and not spy.calls
    out.unlink()  # e.g. Snakemake removed the output: the cache still answers
    assert _run(qs, spy, out, decoding)["generated"] == 0 and not spy.calls
    changed = {**decoding, "category_temperature": {"writing": 0.5}}
    assert _run(qs, spy, out, changed)["generated"] == 3
    assert sorted(spy.generated_prompts()) == ["11+21=", "13+23=", "15+25="]
    assert _run(qs + _questions(8)[6:], spy, out, changed)["generated"] == 2  # new questions only


def test_corrupt_cache_line_is_an_error(backend, tmp_path):
    out = tmp_path / "a.jsonl"
    _run(_questions(4), backend, out)
    lines = cache_path(out).read_text().splitlines(keepends=True)
    cache_path(out).write_text(lines[0] + "{not json\n" + "".join(lines[1:]))
    with pytest.raises(DataError, match=rf"{cache_path(out).name}:2: not valid JSON"):
        _run(_questions(4), backend, out)


def test_corrupt_answers_file_names_file_and_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"question_id": "1", "turns": ["a"]}\n{"question_id": "2", "turns": ["b"\n')
    with pytest.raises(DataError, match=r"answers.jsonl:2: not valid JSON"):
        load_answers(path)
    path.write_text('{"question_id": "1", "turns": ["a"]}\n{"question_id": "2", "turns": [7]}\n')
    with pytest.raises(DataError, match=r"answers.jsonl:2: .*no turns"):
        load_answers(path)
    with pytest.raises(DataError, match=r"m.jsonl:3: not valid JSON"):
        (tmp_path / "m.jsonl").write_text('{"question_id": 1, "choices": [{"turns": ["x"]}]}\n\nnope\n')
        import_answers(tmp_path / "m.jsonl", "fastchat")


def test_model_without_chat_template_is_an_error(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.generate.hf import HFBackend

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tok.chat_template = None
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    with pytest.raises(DataError, match="no chat template"):
        HFBackend("plain-model", model=model, tokenizer=tok)


# Llama-3.2's date logic (its chat template's first lines): today's date unless date_string is given
DATED_TEMPLATE = ("{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}{%- endif %}"
                  "Today Date: {{ date_string }}\n{% for m in messages %}{{ m['content'] }}\n{% endfor %}")


def test_pinned_date_string_keeps_prompts_off_the_calendar(tiny_model_dir):
    """The recipe's chat_template_kwargs reach the template (the pinned date, not today's) and the answer
    cache's identity; the Llama-3.2 recipe pins date_string and its generation jobs record it."""
    import datetime

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.config import job_config, load_config
    from reproduce.generate.backends import make_backend
    from reproduce.generate.hf import HFBackend
    from reproduce.generate.run import backend_identity

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    tok.chat_template = DATED_TEMPLATE
    backend = HFBackend("dated", model=AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)), tokenizer=tok)
    today = datetime.date.today().strftime("%d %b %Y")
    assert f"Today Date: {today}" in tok.decode(backend.encode([{"role": "user", "content": "hi"}]))
    backend.template_kwargs = {"date_string": "26 Jul 2024"}
    prompt = tok.decode(backend.encode([{"role": "user", "content": "hi"}]))
    assert "Today Date: 26 Jul 2024" in prompt and today not in prompt
    assert backend_identity(backend, "m")["template_kwargs"] == {"date_string": "26 Jul 2024"}
    assert make_backend({"backend": "hf"}, str(tiny_model_dir), template_kwargs={"date_string": "x"}).template_kwargs == \
        {"date_string": "x"}
    cfg = load_config({"preset": "paper"})
    job = job_config(cfg, "generate", setting="llama3.2-3b-armorm", method="sft", benchmark="mt_bench")
    assert job["chat_template_kwargs"] == {"date_string": "26 Jul 2024"}
    other = job_config(cfg, "generate", setting="llama3-8b-armorm", method="sft", benchmark="mt_bench")
    assert "chat_template_kwargs" not in other


def _records(questions, model="mine"):
    return [{"question_id": q["question_id"], "model": model, "turns": [f"answer {i}.{t}" for t in range(len(q["turns"]))],
             "meta": {"n_tokens": [3] * len(q["turns"]), "tstamp": 1.5}} for i, q in enumerate(questions)]


@pytest.mark.parametrize("fmt,turns", [("alpaca_eval", 1), ("arena_hard", 1), ("fastchat", 2)])
def test_export_import_round_trip(tmp_path, fmt, turns):
    questions = [{"question_id": str(81 + i), "category": "writing", "turns": [f"Instruction {i}"] + ["more"] * (turns - 1)}
                 for i in range(5)]
    records = _records(questions)
    out = export_answers(records, questions, fmt, tmp_path / official_relpath(fmt, "mine"))
    raw = out.read_text()
    if fmt == "alpaca_eval":
        rows = json.loads(raw)
        assert rows[0] == {"dataset": "writing", "instruction": "Instruction 0", "output": "answer 0.0",
                           "generator": "mine", "datasplit": "eval"}
    else:
        row = json.loads(raw.splitlines()[0])
        assert row["model_id"] == "mine" and row["choices"][0]["index"] == 0 and row["tstamp"] == 1.5
        if fmt == "fastchat":  # FastChat keys MT-Bench questions by int
            assert row["question_id"] == 81 and row["choices"][0]["turns"] == ["answer 0.0", "answer 0.1"]
        else:
            assert row["question_id"] == "81" and row["choices"][0]["turns"] == [{"content": "answer 0.0", "token_len": 3}]
    back = import_answers(out, fmt, questions)
    assert [(r["question_id"], r["model"], r["turns"]) for r in back] == \
        [(r["question_id"], r["model"], r["turns"]) for r in records]
    assert to_official(back, questions, fmt) == raw  # lossless: ids, token_len, tstamp survive the round trip


def test_import_errors(tmp_path):
    questions = [{"question_id": "1", "category": "c", "turns": ["Say hi"]}]
    bad = tmp_path / "model_outputs.json"
    bad.write_text(json.dumps([{"instruction": "Something else", "output": "x", "generator": "g"}]))
    with pytest.raises(DataError, match=r"model_outputs.json\[0\]: instruction .* is not one of"):
        import_answers(bad, "alpaca_eval", questions)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"question_id": 1, "choices": [{"turns": ["x"]}]}\n{"question_id": 1, "choices": [{"turns": ["y"]}]}\n')
    with pytest.raises(DataError, match=r"dup.jsonl:2: duplicate answer for question '1'"):
        import_answers(dup, "fastchat", questions)
    with pytest.raises(DataError, match="have no answer"):
        to_official([], questions, "fastchat")


def test_import_real_arena_hard_baseline_file(tmp_path):
    from reproduce.benchmarks.questions import load_questions
    from reproduce.benchmarks.reference import _turns
    from reproduce.generate.commands import load_benchmark

    path = official_file("arena_hard_v0.1/model_answer/gpt-4-0314.jsonl")
    official_file("arena_hard_v0.1/question.jsonl")
    questions = load_questions(load_benchmark("arena_hard"))
    records = import_answers(path, "arena_hard", questions)
    assert len(records) == len(questions) == 500
    assert {r["model"] for r in records} == {"gpt-4-0314"}
    first_raw = json.loads(path.read_text().splitlines()[0])
    first = next(r for r in records if r["question_id"] == first_raw["uid"])
    assert first["turns"] == [first_raw["messages"][1]["content"]["answer"]]
    # exported again in the v0.1 layout, the answers read back identically (ours and the reference reader)
    out = export_answers(records, questions, "arena_hard", tmp_path / "model_answer" / "gpt-4-0314.jsonl")
    again = import_answers(out, "arena_hard", questions)
    assert [r["turns"] for r in again] == [r["turns"] for r in records]
    line = json.loads(out.read_text().splitlines()[0])
    assert _turns(line, out, 1) == records[0]["turns"]


def test_cli_export_import_and_unknown_benchmark(tmp_path, capsys):
    from reproduce.cli import main

    assert main(["import-answers", "--benchmark", "no_such_bench", "--file", "x.jsonl", "--out", str(tmp_path / "o")]) == 2
    assert "unknown benchmark 'no_such_bench'" in capsys.readouterr().err
    src = official_file("arena_hard_v0.1/model_answer/gpt-3.5-turbo-0125.jsonl")
    ours = tmp_path / "ours.jsonl"
    assert main(["import-answers", "--benchmark", "arena_hard", "--file", str(src), "--out", str(ours)]) == 0
    assert len(load_answers(ours)) == 500
    assert main(["export-answers", "--benchmark", "arena_hard", "--answers", str(ours), "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "model_answer" / "gpt-3.5-turbo-0125.jsonl").exists()
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(ours.read_text().splitlines()[0] + "\n{oops\n")
    assert main(["export-answers", "--benchmark", "arena_hard", "--answers", str(corrupt), "--out", str(tmp_path / "x")]) == 2
    assert "corrupt.jsonl:2: not valid JSON" in capsys.readouterr().err


def test_completion_defaults():
    assert Completion("x", 1, True).finish_reason == "length"
    assert Completion("x", 1, False).finish_reason == "stop"


def test_preset_overflow_policy_reaches_the_backend(tiny_model_dir):
    from reproduce.config import load_config
    from reproduce.generate.backends import make_backend

    assert make_backend({"backend": "hf", "overflow": "truncate"}, str(tiny_model_dir)).overflow == "truncate"
    assert make_backend({"backend": "hf"}, str(tiny_model_dir)).overflow == "error"
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match=r"key 'generation.overflow'"):
        load_config({"generation": {"backend": "hf", "overflow": "drop"}})
