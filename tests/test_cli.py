"""The ``reproduce`` CLI on files made elsewhere: score official files, judge answers without Snakemake."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_dir

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reproduce.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def test_score_alpaca_eval_annotations_json():
    path = shared_dir("fixtures", "alpaca_eval_annotations", "claude-2", "annotations.json")
    out = _run("score", "--benchmark", "alpaca_eval2", "--judgments", str(path), "--format", "alpaca_eval", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for key in ("win_rate", "standard_error", "n_wins", "n_wins_base", "n_draws", "n_total", "discrete_win_rate",
                "avg_length", "length_controlled_winrate"):
        assert key in result
    assert result["n_total"] == 805
    assert result["length_controlled_winrate"] is None and result["length_controlled_reason"]


def test_score_wrong_format_is_a_clear_error(tmp_path):
    bad = tmp_path / "judgments.jsonl"
    bad.write_text('{"question_id": "1", "games": "not a list"}\n')
    out = _run("score", "--benchmark", "alpaca_eval2", "--judgments", str(bad), "--format", "alpaca_eval", "--json")
    assert out.returncode == 2
    assert str(bad) in out.stderr


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
    assert (tmp_path / "judgments" / "_cache.jsonl").exists()
    scored = _run("score", "--benchmark", "arena_hard", "--judgments", str(out_file), "--json")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    assert result["n"] == 40
    # half ties, half strong losses: the win rate is well below 50 but above 0 (ties count for both)
    assert 0 < result["score"] < 50
    again = _run("judge", "--benchmark", "tiny_arena_hard", "--answers", str(answers), "--reference", str(reference),
                 "--judge", "verifier", "--out", str(out_file))
    assert '"new_requests": 0' in again.stderr  # everything came from the cache


def test_unknown_benchmark_and_judge():
    out = _run("judge", "--benchmark", "nope", "--answers", "x.jsonl", "--judge", "verifier")
    assert out.returncode == 2 and "unknown benchmark 'nope'" in out.stderr
    out = _run("judge", "--benchmark", "tiny_arena_hard", "--answers", "x.jsonl", "--judge", "gpt-17")
    assert out.returncode == 2 and "unknown judge 'gpt-17'" in out.stderr


def test_failed_games_fail_the_job_and_keep_nothing_that_looks_finished(tmp_path):
    """Every game fails (nothing listens at the local judge's base_url): exit 2, no judgments file,
    the failures listed with reasons, and no failure in the cache."""
    import socket

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.skip("something listens on 127.0.0.1:8000 (the local-vllm judge's base_url)")
    from reproduce.benchmarks.questions import load_questions
    from reproduce.config import load_config

    shared_dir("benchmarks", "arena_hard_v0.1", "judge_config.yaml")  # the LLM judge needs the official prompt
    questions = load_questions(load_config()["benchmarks"]["tiny_arena_hard"])[:3]
    answers, reference = tmp_path / "a.jsonl", tmp_path / "r.jsonl"
    for path in (answers, reference):
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "turns": ["42"]}) + "\n" for q in questions))
    out_file = tmp_path / "j" / "a.jsonl"
    out = _run("judge", "--benchmark", "tiny_arena_hard", "--answers", str(answers), "--reference", str(reference),
               "--judge", "local-vllm", "--out", str(out_file))
    assert out.returncode == 2, out.stderr
    assert "6 of 6 judge games failed" in out.stderr
    assert not out_file.exists()
    failures = json.loads((tmp_path / "j" / "a.failures.json").read_text())["failures"]
    assert len(failures) == 6 and all("127.0.0.1:8000" in f["reason"] for f in failures)
    cache = tmp_path / "j" / "_cache.jsonl"
    assert not cache.exists() or cache.read_text() == ""
