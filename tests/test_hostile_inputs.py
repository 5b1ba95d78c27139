"""Hostile-but-fair input to every user-facing command: `score`, `judge`, `table`, `export-answers`,
`import-answers`, `check-config` and the workflow's dry run.

Each case runs the real entry point (``reproduce.cli.main`` in this process, Snakemake as a subprocess for
the dry run) in a scratch directory and asserts: exit status 2 (Snakemake: non-zero), one line on stderr
matching the expected message (no traceback), that no file appeared or changed anywhere under the scratch
directory (so nothing was written outside its root either), that no secret value is echoed, and that the
case finished within its time limit: 10 s of CPU time (this process, or the Snakemake subprocess), and an
alarm interrupts a case still running after 120 s of wall time (a hang). Wall time is not the limit
because the shared 2-core test machine runs at a load of 15 or more, where a 4-CPU-second case takes 16 s.

One home per case: bad input already covered in tests/test_bad_input.py (e.g. a duplicate answer, a
missing judgments file) or tests/test_config.py (schema errors of the repository's own files) is not
repeated here. The partial-input cases at the end are not errors: they check that a score computed from
fewer questions than the benchmark has is marked incomplete in the line and in the score file.
``pytest tests/test_hostile_inputs.py -v`` prints the table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIMIT_S = 10  # CPU seconds per case (this process, or the Snakemake subprocess)
ALARM_S = 120  # wall seconds before a case counts as hanging (the 2-core CI machine runs at load 15+)
# official question files, for the one case that scores against a real benchmark
MIRROR = any((Path(d) / "alpaca_eval").is_dir() for d in os.environ.get("REPRODUCE_BENCHMARK_MIRROR", "").split(":") if d)
KEY = "sk-proj-HOSTILEabcdefghijklmnopqrstuvwxyz0123456789"  # a key-looking value that must never be echoed


# ----- inputs -----

def _jsonl(*recs) -> str:
    return "".join(json.dumps(r) + "\n" for r in recs)


def _tiny_questions(bench: str) -> list[dict]:
    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import load_config

    return load_questions(load_config({"preset": "tiny"})["benchmarks"][bench])


def arena_records(n=None, model="m", **extra) -> list[dict]:
    """Native Arena-Hard judgments of the tiny benchmark's questions (all, or the first ``n``)."""
    qs = _tiny_questions("tiny_arena_hard")[:n]
    return [{"question_id": q["question_id"], "model": model, "baseline": "demonstrator",
             "games": [{"score": "A>B"}, {"score": "B>A" if i % 2 else "A=B"}], **extra} for i, q in enumerate(qs)]


def alpaca_records(n=None) -> list[dict]:
    """Native AlpacaEval judgments of the tiny benchmark's instructions."""
    qs = _tiny_questions("tiny_alpaca_eval2")[:n]
    return [{"question_id": q["question_id"], "instruction": q["turns"][0], "output_1": "1", "generator_1": "ref",
             "output_2": "2", "generator_2": "m", "preference": 1.0 + (i % 2)} for i, q in enumerate(qs)]


def mt_records(n=None) -> list[dict]:
    """Native MT-Bench judgments (single ratings only) of the tiny benchmark's questions."""
    qs = _tiny_questions("tiny_mt_bench")[:n]
    return [{"question_id": q["question_id"], "model": "m", "judge": "j", "category": "math",
             "single": [{"turn": 1, "score": 5.0 + i % 3}], "pairwise": []} for i, q in enumerate(qs)]


def fastchat_rows() -> list[dict]:
    return [{"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 7, "turn": 1},
            {"question_id": 82, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 6, "turn": 1}]


def _tiny_answers(n=3, **extra) -> str:
    qs = _tiny_questions("tiny_arena_hard")[:n]
    return _jsonl(*({"question_id": q["question_id"], "model": "m", "turns": ["12"], **extra} for q in qs))


# ----- the case table -----
# (case id, what it is, files to write {relative path: text or bytes}, argv, message pattern)
# argv runs in the scratch directory's "work" folder; "{tmp}" is replaced by the scratch directory.

ARENA = ["score", "--benchmark", "tiny_arena_hard", "--judgments", "j.jsonl"]
ALPACA = ["score", "--benchmark", "tiny_alpaca_eval2", "--judgments", "j.jsonl"]
ALPACA_OFFICIAL = ["score", "--benchmark", "tiny_alpaca_eval2", "--format", "alpaca_eval", "--judgments", "ann.json"]
MT = ["score", "--benchmark", "tiny_mt_bench", "--judgments", "j.jsonl"]
FASTCHAT = ["score", "--benchmark", "tiny_mt_bench", "--format", "fastchat", "--judgments", "j.jsonl"]
JUDGE = ["judge", "--benchmark", "tiny_arena_hard", "--judge", "verifier", "--answers", "a.jsonl"]  # JUDGE[:4]: to --judge
EXPORT = ["export-answers", "--benchmark", "tiny_arena_hard", "--answers", "a.jsonl"]
IMPORT = ["import-answers", "--benchmark", "tiny_arena_hard", "--file", "in.jsonl", "--out", "a.jsonl"]


def _arena_dup():
    recs = arena_records()
    return _jsonl(*recs, recs[3])


def _alpaca_official(rows):
    return json.dumps([{k: v for k, v in r.items() if k != "question_id"} for r in rows])


CASES = [
    # --- score: empty, duplicated, foreign ---
    ("score-empty-jsonl", "an empty judgments file", {"j.jsonl": ""}, ARENA, r"j.jsonl: no judgments to score \(empty input\)"),
    ("score-blank-lines", "only blank lines", {"j.jsonl": "\n\n  \n"}, ARENA, r"j.jsonl: no judgments to score \(empty input\)"),
    ("score-empty-official-alpaca", "annotations.json holding []", {"ann.json": "[]"}, ALPACA_OFFICIAL, r"ann.json: no judgments to score \(empty input\)"),
    ("score-empty-fastchat", "an empty FastChat file", {"j.jsonl": ""}, FASTCHAT, r"j.jsonl: no judgments to score \(empty input\)"),
    ("score-duplicate-arena", "a judgment repeated at the end of the file", {"j.jsonl": _arena_dup}, ARENA, r"j.jsonl:401: question 'addition-0003' is judged twice \(first at .*j.jsonl:4\)"),
    ("score-duplicated-file", "the whole file concatenated twice", {"j.jsonl": lambda: _jsonl(*arena_records(), *arena_records())}, ARENA, r"j.jsonl:401: question 'addition-0000' is judged twice \(first at .*j.jsonl:1\)"),
    ("score-duplicate-alpaca-official", "an annotation row given twice", {"ann.json": lambda: _alpaca_official(alpaca_records() + alpaca_records(1))}, ALPACA_OFFICIAL, r"ann.json: record 400: question 'addition-0000' is judged twice \(first at .*ann.json: record 0\)"),
    ("score-duplicate-mt-native", "an MT-Bench record given twice", {"j.jsonl": lambda: _jsonl(*mt_records(), mt_records(2)[1])}, MT, r"j.jsonl:81: question 'addition-0001' is judged twice"),
    ("score-duplicate-fastchat", "a FastChat rating row given twice", {"j.jsonl": lambda: _jsonl(*fastchat_rows(), fastchat_rows()[0])}, FASTCHAT, r"j.jsonl:3: question '81' turn 1 of m is judged twice \(first on line 1\)"),
    pytest.param("score-foreign-benchmark", "the tiny task's judgments scored as AlpacaEval 2", {"j.jsonl": lambda: _jsonl(*alpaca_records(3))}, ["score", "--benchmark", "alpaca_eval2", "--judgments", "j.jsonl"], r"j.jsonl:1: question 'addition-0000' is not a question of benchmark alpaca_eval2 \(805 questions", id="score-foreign-benchmark", marks=pytest.mark.skipif(not MIRROR, reason="needs the official AlpacaEval questions ($REPRODUCE_BENCHMARK_MIRROR)")),
    ("score-foreign-fastchat", "FastChat (official MT-Bench) rows scored as the tiny MT-Bench", {"j.jsonl": _jsonl(*fastchat_rows())}, FASTCHAT, r"j.jsonl:1: question '81' is not a question of benchmark tiny_mt_bench"),
    ("score-foreign-alpaca-official", "annotations of other instructions", {"ann.json": json.dumps([{"instruction": "Write a poem", "output_1": "a", "generator_1": "r", "output_2": "b", "generator_2": "m", "preference": 2}])}, ALPACA_OFFICIAL, r"ann.json: record 0: instruction 'Write a poem' is not one of benchmark tiny_alpaca_eval2's 400 instructions"),
    # --- score: non-finite, out of range, wrong types ---
    ("score-fastchat-nan", "a FastChat rating NaN", {"j.jsonl": '{"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": NaN, "turn": 1}\n'}, FASTCHAT, r"j.jsonl:1: key 'score' is nan, not a finite number"),
    ("score-fastchat-infinity", "a FastChat rating Infinity", {"j.jsonl": '{"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": Infinity, "turn": 1}\n'}, FASTCHAT, r"j.jsonl:1: key 'score' is inf, not a finite number"),
    ("score-mt-native-nan", "a native MT-Bench rating NaN", {"j.jsonl": '{"question_id": "addition-0000", "model": "m", "single": [{"turn": 1, "score": NaN}], "pairwise": []}\n'}, MT, r"j.jsonl:1: key 'single.score' is nan, not a finite number"),
    ("score-mt-native-text", "a native MT-Bench rating '8'", {"j.jsonl": _jsonl({"question_id": "addition-0000", "model": "m", "single": [{"turn": 1, "score": "8"}], "pairwise": []})}, MT, r"j.jsonl:1: key 'single.score' is '8', not a finite number"),
    ("score-mt-native-turn-twice", "two turn-1 ratings in one record", {"j.jsonl": _jsonl({"question_id": "addition-0000", "model": "m", "single": [{"turn": 1, "score": 8}, {"turn": 1, "score": 2}], "pairwise": []})}, MT, r"j.jsonl:1: key 'single.turn' must be 1 or 2, each once"),
    ("score-alpaca-infinity", "an AlpacaEval preference Infinity", {"j.jsonl": '{"question_id": "addition-0000", "instruction": "i", "output_1": "a", "generator_1": "r", "output_2": "b", "generator_2": "m", "preference": Infinity}\n'}, ALPACA, r"j.jsonl:1: key 'preference' is inf, outside \[1, 2\]"),
    ("score-alpaca-list-preference", "an AlpacaEval preference [2]", {"j.jsonl": _jsonl({"question_id": "addition-0000", "instruction": "i", "output_1": "a", "generator_1": "r", "output_2": "b", "generator_2": "m", "preference": [2]})}, ALPACA, r"j.jsonl:1: key 'preference' is not a number \('\[2\]'\)"),
    ("score-alpaca-null-model", "generator_2 null", {"ann.json": json.dumps([{"instruction": "i", "output_1": "a", "generator_1": "r", "output_2": "b", "generator_2": None, "preference": 2}])}, ALPACA_OFFICIAL, r"ann.json: record 0: key 'generator_2' must be a string, got NoneType"),
    ("score-alpaca-not-list", "annotations.json holding an object", {"ann.json": '{"preference": 2}'}, ALPACA_OFFICIAL, r"ann.json: expected a JSON list of annotations"),
    ("score-arena-list-model", "an Arena-Hard model that is a list", {"j.jsonl": _jsonl({"question_id": "addition-0000", "model": ["m"], "games": [{"score": "A>B"}, {"score": "A>B"}]})}, ARENA, r"j.jsonl:1: key 'model' must be a string, got list"),
    ("score-arena-null-baseline", "an Arena-Hard baseline that is an object", {"j.jsonl": _jsonl({"question_id": "addition-0000", "model": "m", "baseline": {"x": 1}, "games": [{"score": "A>B"}, {"score": "A>B"}]})}, ARENA, r"j.jsonl:1: key 'baseline' must be a string, got dict"),
    ("score-fastchat-null-model", "a FastChat model null", {"j.jsonl": _jsonl({"question_id": 81, "model": None, "judge": ["gpt-4", "single-v1"], "score": 7, "turn": 1})}, FASTCHAT, r"j.jsonl:1: key 'model' must be a string, got NoneType"),
    ("score-fastchat-bool-turn", "a FastChat turn true", {"j.jsonl": _jsonl({"question_id": 81, "model": "m", "judge": ["gpt-4", "single-v1"], "score": 7, "turn": True})}, FASTCHAT, r"j.jsonl:1: turn True is not 1 or 2"),
    ("score-not-utf8", "judgments in Latin-1", {"j.jsonl": b'{"question_id": "caf\xe9"}\n'}, ARENA, r"j.jsonl: not UTF-8 text \(byte \d+\)"),
    ("score-directory", "judgments path is a directory", {"j.jsonl/x": ""}, ARENA, r"j.jsonl: is a directory, not a file"),
    ("score-json-in-jsonl", "a JSON array where JSONL belongs", {"j.jsonl": "[1, 2]\n"}, ARENA, r"j.jsonl:1: expected a JSON object, got list"),
    # --- score: flags ---
    ("score-no-benchmark", "no --benchmark", {"j.jsonl": _jsonl(*fastchat_rows())}, ["score", "--judgments", "j.jsonl"], r"--benchmark: name the benchmark whose questions the score must cover"),
    ("score-benchmark-path", "--benchmark ../../x", {"j.jsonl": "x"}, ["score", "--benchmark", "../../x", "--judgments", "j.jsonl"], r"--benchmark: benchmark '../../x' is not a plain name"),
    ("score-protocol-mismatch", "--protocol arena_hard for an MT-Bench benchmark", {"j.jsonl": "x"}, ["score", "--benchmark", "tiny_mt_bench", "--protocol", "arena_hard", "--judgments", "j.jsonl"], r"--protocol: benchmark 'tiny_mt_bench' uses protocol 'mt_bench', not 'arena_hard'"),
    ("score-unknown-baseline", "--baseline nosuch", {"j.jsonl": lambda: _jsonl(*arena_records())}, ARENA + ["--baseline", "nosuch"], r"baseline 'nosuch' is not the one these records were judged against \(demonstrator\)"),
    ("score-unknown-model", "--model nosuch", {"j.jsonl": lambda: _jsonl(*arena_records(3))}, ARENA + ["--model", "nosuch"], r"j.jsonl: no judgments for model 'nosuch' \(models in the file: m\)"),
    ("score-two-models-out", "two models' judgments with --out", {"j.jsonl": lambda: _jsonl(*arena_records(2), *arena_records(2, model="n"))}, ARENA + ["--out", "s.json"], r"judgments of 2 models \(m, n\); pick one with --model"),
    ("score-out-under-a-file", "--out below a file", {"j.jsonl": lambda: _jsonl(*arena_records()), "f": "x"}, ARENA + ["--out", "f/s.json"], r"f/s.json: cannot be written \(f is a file, not a folder\)"),
    ("score-job-not-json", "--job that is not JSON", {"j.jsonl": "x"}, ["score", "--job", "{not json", "--judgments", "j.jsonl"], r"--job: not valid JSON"),
    ("score-preset-path", "--preset ../../x", {"j.jsonl": "x"}, ARENA + ["--preset", "../../x"], r"--config: key 'preset': preset '../../x' is not a plain name"),
    # --- judge ---
    ("judge-empty-answers", "an empty answers file", {"a.jsonl": ""}, JUDGE, r"a.jsonl: no answers to judge \(empty input\)"),
    ("judge-answers-not-utf8", "answers in Latin-1", {"a.jsonl": b'{"question_id": "addition-0000", "turns": ["\xe9"]}\n'}, JUDGE, r"a.jsonl: not UTF-8 text"),
    ("judge-answers-list-model", "an answer whose model is a list", {"a.jsonl": lambda: _tiny_answers(1, model=["m"])}, JUDGE, r"a.jsonl:1: key 'model' must be a string, got list"),
    ("judge-answers-foreign", "answers to another benchmark's questions", {"a.jsonl": _jsonl({"question_id": "81", "turns": ["x"]})}, JUDGE, r"a.jsonl:1: answer for unknown question '81'"),
    ("judge-name-path", "--judge ../../../x", {"a.jsonl": lambda: _tiny_answers(400)}, ["judge", "--benchmark", "tiny_arena_hard", "--judge", "../../../x", "--answers", "a.jsonl"], r"--judge: judge '../../../x' is not a plain name"),
    ("judge-name-absolute", "--judge /etc/passwd", {"a.jsonl": lambda: _tiny_answers(400)}, ["judge", "--benchmark", "tiny_arena_hard", "--judge", "/etc/passwd", "--answers", "a.jsonl"], r"--judge: judge '/etc/passwd' is not a plain name"),
    ("judge-benchmark-unknown", "--benchmark ../x", {"a.jsonl": lambda: _tiny_answers(400)}, ["judge", "--benchmark", "../x", "--judge", "verifier", "--answers", "a.jsonl"], r"--benchmark: unknown benchmark '../x'"),
    ("judge-reference-missing", "--reference that does not exist", {"a.jsonl": lambda: _tiny_answers(400)}, JUDGE + ["--reference", "nope.jsonl"], r"nope.jsonl: file not found"),
    ("judge-out-under-a-file", "--out below a file", {"a.jsonl": lambda: _tiny_answers(400), "r.jsonl": lambda: _tiny_answers(400), "f": "x"}, JUDGE + ["--reference", "r.jsonl", "--out", "f/j.jsonl", "--cache", "c.jsonl"], r"f/j.jsonl: cannot be written \(f is a file, not a folder\)"),
    ("judge-preset-path", "--preset ../x", {"a.jsonl": lambda: _tiny_answers(400)}, JUDGE + ["--preset", "../x"], r"--config: key 'preset': preset '../x' is not a plain name"),
    # --- table ---
    ("table-config-json-broken", "--config-json that is not JSON", {}, ["table", "--config-json", "{preset: tiny"], r"--config-json: not valid JSON"),
    ("table-config-json-list", "--config-json holding a list", {}, ["table", "--config-json", "[1]"], r"--config-json: expected a JSON object, got a list"),
    ("table-config-bool-word", "accept_incomplete 'maybe'", {}, ["table", "--config-json", '{"accept_incomplete": "maybe"}'], r"--config: key 'accept_incomplete': 'maybe' is not of type 'boolean'"),
    ("table-config-nan", "a NaN in --config-json", {}, ["table", "--config-json", '{"seeds": [NaN]}'], r"--config: key 'seeds.0': not a finite number"),
    ("table-config-unknown-key", "an unknown --config key", {}, ["table", "--config-json", '{"acept_incomplete": true}'], r"--config: key 'acept_incomplete': unknown key"),
    ("table-judge-path", "--judge ../x", {}, ["table", "--judge", "../x"], r"--judge: '../x' is not a judge of preset 'tiny'"),
    ("table-preset-path", "--preset ../../config/x", {}, ["table", "--preset", "../../config/x"], r"--config: key 'preset': preset '../../config/x' is not a plain name"),
    ("table-score-not-json", "a score file that is not JSON", {"results/scores/tiny_alpaca_eval2/verifier/tiny-add/sft.json": "{nan"}, ["table", "--out-dir", "t"], r"sft.json: not valid JSON"),
    # --- export-answers ---
    ("export-model-path-in-file", "answers whose model is ../../x", {"a.jsonl": lambda: _tiny_answers(400, model="../../x")}, EXPORT + ["--out-dir", "o"], r"a.jsonl: key 'model': model name '../../x' is not a plain name"),
    ("export-model-flag-path", "--model ../../x", {"a.jsonl": lambda: _tiny_answers(400)}, EXPORT + ["--out-dir", "o", "--model", "../../x"], r"--model: model name '../../x' is not a plain name"),
    ("export-model-slash", "--model org/name", {"a.jsonl": lambda: _tiny_answers(400)}, EXPORT + ["--out-dir", "o", "--model", "org/name"], r"--model: model name 'org/name' is not a plain name"),
    ("export-empty", "an empty answers file", {"a.jsonl": ""}, EXPORT + ["--out-dir", "o"], r"a.jsonl: no answers to export \(empty input\)"),
    ("export-partial", "answers to 3 of 400 questions", {"a.jsonl": lambda: _tiny_answers(3)}, EXPORT + ["--out", "o.jsonl"], r"397 questions have no answer"),
    ("export-both-outs", "--out and --out-dir", {"a.jsonl": lambda: _tiny_answers(400)}, EXPORT + ["--out", "x", "--out-dir", "y"], r"give exactly one of --out FILE or --out-dir DIR"),
    ("export-out-dir-under-file", "--out-dir below a file", {"a.jsonl": lambda: _tiny_answers(400), "f": "x"}, EXPORT + ["--out-dir", "f/o"], r"f/o/model_answer/m.jsonl: cannot be written \(\S*f is a file, not a folder\)"),
    # --- import-answers ---
    ("import-empty", "an empty official answers file", {"in.jsonl": ""}, IMPORT, r"in.jsonl: no answers to import \(empty input\)"),
    ("import-duplicate", "an official answer given twice", {"in.jsonl": _jsonl({"question_id": "addition-0000", "model_id": "m", "choices": [{"turns": ["1"]}]}, {"question_id": "addition-0000", "model_id": "m", "choices": [{"turns": ["2"]}]})}, IMPORT, r"in.jsonl:2: duplicate answer for question 'addition-0000'"),
    ("import-foreign", "official answers to another benchmark", {"in.jsonl": _jsonl({"question_id": "81", "model_id": "m", "choices": [{"turns": ["1"]}]})}, IMPORT, r"in.jsonl:1: answer for unknown question '81'"),
    ("import-list-model", "an official model_id that is a list", {"in.jsonl": _jsonl({"question_id": "addition-0000", "model_id": ["m"], "choices": [{"turns": ["1"]}]})}, IMPORT, r"in.jsonl:1: the model name must be a string, got list"),
    ("import-model-flag-path", "--model ../x", {"in.jsonl": _jsonl({"question_id": "addition-0000", "model_id": "m", "choices": [{"turns": ["1"]}]})}, IMPORT + ["--model", "../x"], r"--model: model name '../x' is not a plain name"),
    ("import-not-utf8", "an official file in Latin-1", {"in.jsonl": b'{"question_id": "\xe9"}\n'}, IMPORT, r"in.jsonl: not UTF-8 text"),
    ("import-out-under-file", "--out below a file", {"in.jsonl": _jsonl({"question_id": "addition-0000", "model_id": "m", "choices": [{"turns": ["1"]}]}), "f": "x"}, ["import-answers", "--benchmark", "tiny_arena_hard", "--file", "in.jsonl", "--out", "f/a.jsonl"], r"f/a.jsonl: cannot be written \(f is a file, not a folder\)"),
    # --- check-config (the repository's presets) ---
    ("check-preset-path", "--preset ../../x", {}, ["check-config", "--preset", "../../x"], r"--config: key 'preset': preset '../../x' is not a plain name"),
    ("check-preset-dot", "--preset .", {}, ["check-config", "--preset", "."], r"--config: key 'preset': preset '.' is not a plain name"),
]


# check-config on a copy of the repository's config tree with one file edited: (case id, what, file, text, pattern)
CONFIG_CASES = [
    ("config-alias-bomb", "a 9-level YAML alias bomb in a preset", "config/presets/tiny.yaml",
     "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
     r"config/presets/tiny.yaml: line 1: malformed YAML \(YAML anchors \(&name\) are not allowed in this file\)"),
    ("config-recipe-nan", "beta: .nan in a recipe", "config/recipes/tiny-add.yaml", "@beta: .nan",
     r"config/recipes/tiny-add.yaml: key 'methods.dpo.beta': not a finite number"),
    ("config-recipe-overflow", "beta: 1.0e+400 (infinite) in a recipe", "config/recipes/tiny-add.yaml", "@beta: 1.0e+400",
     r"config/recipes/tiny-add.yaml: key 'methods.dpo.beta': not a finite number"),
    ("config-judge-key-pasted", "a key pasted as api_key_env", "evals/judges/verifier-lenient.yaml",
     f"kind: openai\nmodel: gpt-4o\napi_key_env: {KEY}\n",
     r"evals/judges/verifier-lenient.yaml: key 'api_key_env': must be the name of an environment variable .* the value is not shown"),
    ("config-judge-file-url", "base_url file://", "evals/judges/verifier-lenient.yaml",
     "kind: openai\nmodel: gpt-4o\nbase_url: file:///etc/passwd\napi_key_env: null\n",
     r"evals/judges/verifier-lenient.yaml: key 'base_url': only http:// and https:// endpoints are supported \(got file\)"),
    ("config-judge-ftp-url", "base_url ftp://", "evals/judges/verifier-lenient.yaml",
     "kind: openai\nmodel: gpt-4o\nbase_url: ftp://example.org/v1\n",
     r"key 'base_url': only http:// and https:// endpoints are supported \(got ftp\)"),
    ("config-judge-timeout-inf", "timeout_s: .inf", "evals/judges/verifier-lenient.yaml",
     "kind: openai\nmodel: gpt-4o\ntimeout_s: .inf\n", r"evals/judges/verifier-lenient.yaml: key 'timeout_s': not a finite number"),
    ("config-preset-not-utf8", "a preset in Latin-1", "config/presets/tiny.yaml", b"description: caf\xe9\n",
     r"config/presets/tiny.yaml: not UTF-8 text"),
    ("config-preset-judge-path", "a preset naming judge ../../x", "config/presets/tiny.yaml", "@verifier-lenient]=../../x]",
     r"config/presets/tiny.yaml: key 'judges.1': '../../x' does not match"),
]


# the workflow's dry run: (case id, what, --config words, pattern of the error line)
WORKFLOW_CASES = [
    ("dryrun-preset-path", "--config preset=../x", ["preset=../x"], r"config error: --config: key 'preset': preset '../x' is not a plain name"),
    ("dryrun-bool-word", "--config accept_incomplete=maybe", ["accept_incomplete=maybe"], r"config error: --config: key 'accept_incomplete': 'maybe' is not of type 'boolean'"),
    ("dryrun-unknown-key", "--config a misspelt key", ["acept_incomplete=true"], r"config error: --config: key 'acept_incomplete': unknown key"),
]


# ----- running -----

def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root``: relative path -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


class _Alarm(Exception):
    pass


def _run_main(argv: list[str], capsys) -> tuple[int, str, str, float]:
    """``reproduce.cli.main(argv)`` with a wall-time alarm: (status, stdout, stderr, CPU seconds)."""
    from reproduce.cli import main

    def ring(signum, frame):
        raise _Alarm(f"still running after {ALARM_S} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(ALARM_S)
    t0 = time.process_time()
    try:
        try:
            status = main(argv)
        except SystemExit as e:  # argparse errors exit through SystemExit
            status = e.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    captured = capsys.readouterr()
    return status, captured.out, captured.err, time.process_time() - t0


def _check(case: str, status, out: str, err: str, pattern: str, before: dict, after: dict) -> None:
    assert "Traceback" not in err and "Traceback" not in out, f"{case}: a traceback\n{err[-2000:]}"
    assert status == 2, f"{case}: exit status {status}, expected 2\n{err[-2000:]}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"{case}: stderr is not one line:\n{err[-2000:]}"
    assert lines[0].startswith("error: ") and re.search(pattern, lines[0]), f"{case}: {lines[0]!r} !~ {pattern!r}"
    assert KEY not in out + err, f"{case}: the key was echoed"
    assert after == before, f"{case}: files appeared or changed: {sorted(set(after.items()) ^ set(before.items()))}"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A scratch directory whose "work" folder is the current directory; the environment holds a key."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return tmp_path


@pytest.mark.slow
@pytest.mark.parametrize("case, what, files, argv, pattern", CASES, ids=[c.id if hasattr(c, "marks") else c[0] for c in CASES])
def test_command_refuses_in_one_line(case, what, files, argv, pattern, scratch, capsys):
    work = scratch / "work"
    for rel, text in files.items():
        path = work / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        text = text() if callable(text) else text
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    before = _tree(scratch)
    status, out, err, took = _run_main([a.replace("{tmp}", str(scratch)) for a in argv], capsys)
    _check(case, status, out, err, pattern, before, _tree(scratch))
    assert took < LIMIT_S


def _config_copy(tmp: Path, rel: str, text) -> Path:
    """A copy of the repository's config/ and evals/ trees under ``tmp`` with ``rel`` replaced by ``text``
    (a text starting with '@' is 'old=new' applied to the original file, or '@key: value' for the dpo method's key)."""
    for folder in ("config", "evals"):
        shutil.copytree(ROOT / folder, tmp / folder)
    path = tmp / rel
    if isinstance(text, str) and text.startswith("@"):
        original = path.read_text()
        if "=" in text:
            old, new = text[1:].split("=", 1)
            assert old in original
            path.write_text(original.replace(old, new, 1))
        else:  # "@beta: .nan": the dpo method's beta
            key = text[1:].split(":")[0]
            dpo = original.index("  dpo:")
            at = original.index(f"{key}:", dpo)
            end = original.index("\n", at)
            comma = original.find(",", at, end)
            brace = original.find("}", at, end)
            stop = min(x for x in (comma, brace, end) if x != -1)
            path.write_text(original[:at] + text[1:] + original[stop:])
    else:
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


@pytest.mark.parametrize("case, what, rel, text, pattern", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_check_config_refuses_in_one_line(case, what, rel, text, pattern, scratch, capsys, monkeypatch):
    """check-config on a copy of the repository's config tree (the product reads its own tree only)."""
    import reproduce.config as config

    tree = scratch / "repo"
    _config_copy(tree, rel, text)
    monkeypatch.setattr(config, "ROOT", tree)
    monkeypatch.setattr(config.load_config, "__defaults__", (None, tree))
    before = _tree(scratch)
    status, out, err, took = _run_main(["check-config", "--preset", "tiny"], capsys)
    _check(case, status, out, err, pattern, before, _tree(scratch))
    assert took < LIMIT_S


@pytest.mark.slow
@pytest.mark.parametrize("case, what, words, pattern", WORKFLOW_CASES, ids=[c[0] for c in WORKFLOW_CASES])
def test_workflow_dry_run_refuses_in_one_line(case, what, words, pattern, tmp_path):
    """``snakemake -n`` with bad --config values: the config error line, no traceback, nothing written."""
    before = _tree(tmp_path)
    t0 = os.times()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n",
                          "reproduce_table1", "--config", *words], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    t1 = os.times()
    err = out.stdout + out.stderr
    assert out.returncode != 0, f"{case}: exit status 0"
    assert "Traceback" not in err, f"{case}: a traceback\n{err[-2000:]}"
    assert re.search(pattern, err), f"{case}: {err[-1500:]}"
    assert [line for line in err.splitlines() if "config error:" in line] == [re.search(r"config error:.*", err).group(0)]
    after = {k: v for k, v in _tree(tmp_path).items() if not k.startswith(".snakemake")}
    assert after == before, f"{case}: files appeared: {sorted(after)}"
    assert (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system) < LIMIT_S


@pytest.mark.slow
def test_workflow_dry_run_takes_booleans_as_the_readme_writes_them(tmp_path):
    """`--config accept_incomplete=true` (README) is a boolean, not a string the schema refuses."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "-n",
                          "reproduce_table1", "--config", "accept_incomplete=true"], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, (out.stdout + out.stderr)[-2000:]


# ----- partial input: a number, never complete-looking -----

PARTIAL = [
    ("partial-arena", ARENA, lambda: _jsonl(*arena_records(10)), 10, 400),
    ("partial-alpaca", ALPACA + ["--protocol", "alpaca_eval2"], lambda: _jsonl(*alpaca_records(10)), 10, 400),
    ("partial-mt", MT, lambda: _jsonl(*mt_records(10)), 10, 80),
]


@pytest.mark.slow
@pytest.mark.parametrize("case, argv, text, n, n_all", PARTIAL, ids=[c[0] for c in PARTIAL])
def test_partial_judgments_score_incomplete(case, argv, text, n, n_all, scratch, capsys):
    """Judgments of the first n questions: the line says INCOMPLETE and names the missing questions, the score
    file says complete: false with the benchmark's count, and nothing else is written."""
    (scratch / "work" / "j.jsonl").write_text(text())
    status, out, err, took = _run_main(argv + ["--out", "s.json"], capsys)
    assert status == 0, err[-2000:]
    assert "INCOMPLETE" in err and f"{n_all - n} of {n_all} questions of" in err, err
    score = json.loads((scratch / "work" / "s.json").read_text())
    assert score["complete"] is False and score["n_questions_missing"] == n_all - n
    assert score["n_judged"] < score["n_expected"]
    assert sorted(p.name for p in (scratch / "work").iterdir()) == ["j.jsonl", "s.json"]
    assert took < LIMIT_S


def test_one_judgment_scores_without_nan(scratch, capsys):
    """One AlpacaEval judgment: alpaca_eval's standard error is NaN; the score file holds null, names the key
    under 'undefined', is valid JSON, and the score is INCOMPLETE."""
    (scratch / "work" / "j.jsonl").write_text(_jsonl(*alpaca_records(1)))
    status, out, err, took = _run_main(ALPACA + ["--out", "s.json"], capsys)
    assert status == 0 and "Traceback" not in err, err[-2000:]
    score = json.loads((scratch / "work" / "s.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in a score"))
    assert score["standard_error"] is None and "standard_error" in score["undefined"] and score["complete"] is False
    assert took < LIMIT_S


def test_case_table_is_large_and_unique():
    ids = [c.id if hasattr(c, "marks") else c[0] for c in CASES + CONFIG_CASES + WORKFLOW_CASES + PARTIAL]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


if __name__ == "__main__":  # print the case table
    for c in CASES + CONFIG_CASES + WORKFLOW_CASES:
        c = c.values if hasattr(c, "marks") else c
        print(f"| {c[0]} | {c[1]} | `{c[-1]}` |")


# ----- nothing hangs: a judge endpoint that accepts connections and never answers -----

@pytest.mark.server
@pytest.mark.skipif(not MIRROR, reason="the LLM judge needs the official Arena-Hard judge prompt ($REPRODUCE_BENCHMARK_MIRROR)")
def test_silent_endpoint_fails_the_job_within_its_bounds(scratch, capsys):
    """40 games against a server that accepts and reads every request but never writes a byte: the calls
    time out (timeout_s 0.5, no SDK retries), after the first 8 games without a reply the rest are not asked,
    nothing is re-asked for the 30-minute retry budget, and the job exits 2 in one line without judgments."""
    import socket
    import threading

    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import load_config

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []

    def accept_forever():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)  # read nothing back, answer nothing, keep it open

    threading.Thread(target=accept_forever, daemon=True).start()
    bench = load_config()["benchmarks"]["tiny_arena_hard"]
    questions = load_questions(bench)[:20]
    work = scratch / "work"
    for name in ("a.jsonl", "r.jsonl"):
        (work / name).write_text(_jsonl(*({"question_id": q["question_id"], "turns": ["42"]} for q in questions)))
    judge = {"kind": "openai", "model": "m", "base_url": f"http://127.0.0.1:{listener.getsockname()[1]}/v1",
             "api_key_env": None, "timeout_s": 0.5, "max_retries": 0, "concurrency": 2}
    job = {"stage": "judge", "benchmark": "tiny_arena_hard", "judge": "silent", "benchmark_config": bench,
           "judge_config": judge}
    t0 = time.monotonic()
    try:
        status, out, err, _ = _run_main(["judge", "--job", json.dumps(job), "--answers", "a.jsonl", "--reference",
                                         "r.jsonl", "--out", "j/a.jsonl"], capsys)
    finally:
        listener.close()
        for conn in held:
            conn.close()
    took = time.monotonic() - t0
    assert status == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "40 of 40 judge games failed" in errors[0], err[-2000:]
    assert not (work / "j" / "a.jsonl").exists()
    reasons = [f["reason"] for f in json.loads((work / "j" / "a.failures.json").read_text())["failures"]]
    assert sum("gave no reply within timeout_s (0.5s)" in r for r in reasons) >= 8
    assert sum("not asked: the first 8 games got no reply" in r for r in reasons) >= 20
    # 8 games of 0.5 s at concurrency 2 is about 2 s of waiting; far from the 30-minute retry budget
    assert took < ALARM_S


@pytest.mark.skipif(not MIRROR, reason="the LLM judge needs the official Arena-Hard judge prompt ($REPRODUCE_BENCHMARK_MIRROR)")
def test_judge_without_its_key_variable_refuses_in_one_line(scratch, capsys, monkeypatch):
    """An OpenAI judge whose api_key_env is not set: one line naming the variable, exit 2, nothing written."""
    monkeypatch.delenv("OPENAI_API_KEY")
    work = scratch / "work"
    for name in ("a.jsonl", "r.jsonl"):
        (work / name).write_text(_tiny_answers(400))
    before = _tree(scratch)
    status, out, err, took = _run_main(JUDGE[:4] + ["gpt-4o", "--answers", "a.jsonl", "--reference", "r.jsonl"], capsys)
    _check("judge-key-variable-unset", status, out, err,
           r"judge 'gpt-4o': environment variable OPENAI_API_KEY is not set", before, _tree(scratch))
    assert took < LIMIT_S
