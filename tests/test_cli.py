"""The ``reproduce`` CLI on files made elsewhere: score official files, judge answers without Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import official_file

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reproduce.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


@pytest.mark.slow
def test_score_alpaca_eval_annotations_json():
    """The CLI's figures on a real annotations file are alpaca_eval's own (its get_winrate on the same
    preferences; avg_length as its leaderboard: the integer mean length of the model's outputs)."""
    import warnings

    path = official_file("alpaca_eval_annotations/claude-2/annotations.json")
    out = _run("score", "--benchmark", "alpaca_eval2", "--judgments", str(path), "--format", "alpaca_eval", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alpaca_eval imports pkg_resources
        from alpaca_eval.metrics import get_winrate
    annotations = json.loads(path.read_text())
    official = get_winrate(annotations)
    for key in ("win_rate", "standard_error", "discrete_win_rate"):
        assert result[key] == pytest.approx(float(official[key]), rel=1e-12, abs=1e-12), key
    for key in ("n_wins", "n_wins_base", "n_draws", "n_total"):
        assert result[key] == int(official[key]), key
    assert result["n_total"] == 805 and result["complete"] is True
    assert result["avg_length"] == int(sum(len(a["output_2"]) for a in annotations) / len(annotations))
    assert result["length_controlled_winrate"] is None and result["length_controlled_reason"]


def test_score_wrong_format_is_a_clear_error(tmp_path):
    bad = tmp_path / "judgments.jsonl"
    bad.write_text('{"question_id": "1", "games": "not a list"}\n')
    out = _run("score", "--benchmark", "alpaca_eval2", "--judgments", str(bad), "--format", "alpaca_eval", "--json")
    assert out.returncode == 2
    assert str(bad) in out.stderr


@pytest.mark.slow
def test_judge_and_score_without_snakemake(tmp_path):
    """Judge answers made 'elsewhere' on the tiny Arena-Hard benchmark with the verifier, then score them."""
    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import load_config
    from reproduce.tiny.task import load_task

    bench = load_config()["benchmarks"]["tiny_arena_hard"]
    task = load_task("addition")
    questions = load_questions(bench)[:40]
    answers = tmp_path / "mine.jsonl"
    reference = tmp_path / "baseline.jsonl"
    # our "model" is right on even questions; the baseline is always right
    answers.write_text("".join(json.dumps({"question_id": q["question_id"], "model": "mine",
                                           "turns": [str(task.solve(q["turns"][0]) + (i % 2))]}) + "\n"
                               for i, q in enumerate(questions)))
    reference.write_text("".join(json.dumps({"question_id": q["question_id"], "model": "demonstrator",
                                             "turns": [str(task.solve(q["turns"][0]))]}) + "\n" for q in questions))
    out_file = tmp_path / "judgments" / "mine.jsonl"
    out = _run("judge", "--benchmark", "tiny_arena_hard", "--answers", str(answers), "--reference", str(reference),
               "--judge", "verifier", "--out", str(out_file))
    assert out.returncode == 0, out.stderr
    cached = [p for p in (tmp_path / "judgments").glob("_cache*") for p in ([p] if p.is_file() else p.rglob("*.jsonl"))]
    # one verdict per distinct request: 20 wrong answers x 2 games, and 20 right ones whose two games are the
    # same request (both answers equal, so swapping them changes nothing): 60 cached beside the judgments
    assert sum(p.read_text().count("\n") for p in cached) == 60
    assert "answers to 40 of" in out.stderr  # a subset of the benchmark is judged, and the judge says so
    scored = _run("score", "--benchmark", "tiny_arena_hard", "--judgments", str(out_file), "--json")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    assert result["n"] == 40
    # the benchmark, not the file, says what a complete score covers: the other questions count as missing
    n_all = len(load_questions(bench))
    assert result["complete"] is False and result["n_questions_missing"] == n_all - 40
    assert (result["n_expected"], result["n_judged"]) == (2 * n_all, 80)
    # 20 questions tie in both games (2 tie battles each); 20 are strong losses in both games, each counted
    # weight 3 (6 battles each): 40 ties + 120 losses. A two-player Bradley-Terry MLE reproduces the empirical
    # rate, a tie being half a win: (40 / 2) / 160 = 12.5 %.
    assert result["n_battles"] == 160
    assert result["score"] == pytest.approx(12.5, abs=1e-4)
    again = _run("judge", "--benchmark", "tiny_arena_hard", "--answers", str(answers), "--reference", str(reference),
                 "--judge", "verifier", "--out", str(out_file))
    assert '"new_requests": 0' in again.stderr  # everything came from the cache


@pytest.mark.slow
def test_unknown_benchmark_and_judge():
    out = _run("judge", "--benchmark", "nope", "--answers", "x.jsonl", "--judge", "verifier")
    assert out.returncode == 2 and "unknown benchmark 'nope'" in out.stderr
    out = _run("judge", "--benchmark", "tiny_arena_hard", "--answers", "x.jsonl", "--judge", "gpt-17")
    assert out.returncode == 2 and "unknown judge 'gpt-17'" in out.stderr


@pytest.mark.slow
def test_failed_games_fail_the_job_and_keep_nothing_that_looks_finished(tmp_path):
    """Every game fails (nothing listens at the judge's base_url): exit 2, no judgments file, the failures
    listed with reasons, and no failure in the cache. The one home of the unreachable-endpoint case at the
    job level (the client's own error is tested in test_openai_judge.py)."""
    import socket

    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import ROOT as CONFIG_ROOT, _load_named, load_config

    official_file("arena_hard_v0.1/judge_config.yaml")  # the LLM judge needs the official prompt
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    judge = dict(_load_named("judge", CONFIG_ROOT / "evals" / "judges", "local-vllm", "judge", "--judge"), base_url=url)
    bench = load_config()["benchmarks"]["tiny_arena_hard"]
    # no second round for transient failures: the failures are final at once
    bench = {**bench, "judging": {**bench.get("judging", {}), "retry_budget_s": 0}}
    questions = load_questions(bench)[:3]
    answers, reference = tmp_path / "a.jsonl", tmp_path / "r.jsonl"
    for path in (answers, reference):
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "turns": ["42"]}) + "\n" for q in questions))
    job = {"stage": "judge", "benchmark": "tiny_arena_hard", "judge": "local-vllm", "benchmark_config": bench,
           "judge_config": judge}
    out_file = tmp_path / "j" / "a.jsonl"
    out = _run("judge", "--job", json.dumps(job), "--answers", str(answers), "--reference", str(reference),
               "--out", str(out_file))
    assert out.returncode == 2, out.stderr
    assert "6 of 6 judge games failed" in out.stderr
    assert not out_file.exists()
    failures = json.loads((tmp_path / "j" / "a.failures.json").read_text())["failures"]
    assert sorted((f["question_id"], f["game"]) for f in failures) == \
        sorted((q["question_id"], g) for q in questions for g in ("game1", "game2"))
    assert all(f"cannot connect to {url}" in f["reason"] for f in failures), failures[0]
    cached = [p for p in (tmp_path / "j").glob("_cache*") for p in ([p] if p.is_file() else p.rglob("*.jsonl"))]
    assert all(p.read_text() == "" for p in cached)


@pytest.mark.slow
def test_score_file_finds_its_judgments_in_a_copied_results_tree(tmp_path):
    """A score file records where its judgments lie relative to itself, so a copy of the results tree under
    another name reads the copy's judgments, never ./results or the original's."""
    import shutil

    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import load_config
    from reproduce.report.provenance import load_score

    cfg = load_config()
    questions = load_questions(cfg["benchmarks"]["tiny_arena_hard"])
    judgments = tmp_path / "results" / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / "dpo.jsonl"
    judgments.parent.mkdir(parents=True)
    judgments.write_text("".join(json.dumps({"question_id": q["question_id"], "model": "dpo", "baseline": "demonstrator",
                                             "games": [{"score": "A>B"}, {"score": "B>A"}]}) + "\n" for q in questions))
    score = tmp_path / "results" / "scores" / "tiny_arena_hard" / "verifier" / "tiny-add" / "dpo.json"
    out = _run("score", "--benchmark", "tiny_arena_hard", "--judgments", str(judgments), "--out", str(score))
    assert out.returncode == 0, out.stderr
    copy = tmp_path / "elsewhere" / "my-results"
    shutil.copytree(tmp_path / "results", copy)
    shutil.rmtree(tmp_path / "results")
    loaded = load_score(copy, cfg, "tiny_arena_hard", "verifier", "tiny-add", "dpo", check_records=False)
    assert loaded.judgments.resolve() == (copy / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / "dpo.jsonl").resolve()


# a judge whose code is broken (as the client's constructor was by a transport release): every call raises
BROKEN_JUDGE = """
import sys
from reproduce import cli
from reproduce.judges.verifier import VerifierJudge
calls = []
async def broken(self, request):
    calls.append(1)
    raise KeyError("top_logprobs")
VerifierJudge.complete = broken
rc = cli.main(sys.argv[1:])
print(f"complete() called {len(calls)} time(s)", file=sys.stderr)
sys.exit(rc)
"""


def test_a_fault_in_the_judges_code_exits_2_with_one_line_and_the_traceback_in_the_log(tmp_path):
    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import load_config

    questions = load_questions(load_config()["benchmarks"]["tiny_arena_hard"])[:30]
    answers, reference = tmp_path / "a.jsonl", tmp_path / "r.jsonl"
    for path, text in ((answers, "41"), (reference, "42")):
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "turns": [text]}) + "\n" for q in questions))
    out_file = tmp_path / "j" / "a.jsonl"
    out = subprocess.run([sys.executable, "-c", BROKEN_JUDGE, "judge", "--benchmark", "tiny_arena_hard", "--judge",
                          "verifier", "--answers", str(answers), "--reference", str(reference), "--out", str(out_file)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[-1] == "complete() called 1 time(s)", out.stderr  # 60 games, stopped at the first
    error = lines[-2]
    assert error.startswith("error: judge 'verifier' raised KeyError: 'top_logprobs' (game "), error
    assert error.split("(game ")[1].split("/")[0] in {q["question_id"] for q in questions}
    # the log (the job's stderr) holds the traceback down to the faulty line, once
    assert out.stderr.count("Traceback (most recent call last)") == 1 and ", in broken" in out.stderr
    assert not out_file.exists()
