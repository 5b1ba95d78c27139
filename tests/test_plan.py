"""`reproduce plan`: exact request counts from the protocols, dollars at the judge files' prices, batch at
half, cache hits not counted again, no self-games; and the waste cuts it made visible (MT-Bench's model
against itself, LC where it cannot exist)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import official_benchmark

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mirror():
    official_benchmark("alpaca_eval2", "arena_hard", "mt_bench")


@pytest.mark.slow
def test_paper_plan_counts_every_judge_request_once_and_prices_it(mirror, tmp_path):
    from reproduce.config import load_config
    from reproduce.plan.build import build_plan

    cfg = load_config({"preset": "paper"})
    plan = build_plan(cfg, tmp_path / "results")
    rows = plan["judge_jobs"]
    assert len(rows) == 4 * 4 * 3 and not any("error" in r for r in rows)
    by = {(r["judge"], r["benchmark"]): r for r in plan["by_judge"]}
    models = 4 * 4
    assert by[("gpt-4.1", "alpaca_eval2")]["requests"] == models * 805
    assert by[("gpt-4.1", "arena_hard")]["requests"] == models * 500 * 2
    # MT-Bench: 80 questions x 2 turns single grading for all 16; both-order pairwise against the setting's
    # SFT for the 12 trained models only (SFT against itself is never asked)
    assert by[("gpt-4.1", "mt_bench")]["requests"] == models * 160 + 12 * 160 * 2
    sft_mt = [r for r in rows if r["benchmark"] == "mt_bench" and r["model"] == "sft"]
    assert {r["requests"] for r in sft_mt} == {160}
    # dollars are the tokens at the judge file's prices; batch mode half of that
    for r in rows:
        judge = cfg["judges"][r["judge"]]
        usd = (r["prompt_tokens"] * judge["price_per_million_input"]
               + r["completion_tokens"] * judge["price_per_million_output"]) / 1e6
        assert r["usd_standard"] == pytest.approx(usd, abs=0.01)
        assert r["usd_batch"] == pytest.approx(usd / 2, abs=0.01)
        assert r["cached"] == 0 and r["to_send"] == r["requests"]
        assert "estimated" in r["token_basis"] or "tiktoken" in r["token_basis"]
    t = plan["totals"]
    assert t["jobs"]["train"] == 12 and t["jobs"]["generate"] == 16 and t["gpu_hours"] > 0
    assert t["usd_batch"] == pytest.approx(t["usd_standard"] / 2, abs=0.05)
    # the paper's own judges are retired: flagged, with their replacement, never priced
    assert plan["paper_judges"]["mt_bench"]["retired"] and plan["paper_judges"]["mt_bench"]["replacement"] == "gpt-4.1"


def test_plan_does_not_count_cached_judgments_again(mirror, tmp_path):
    """Answers already generated are rendered as they are; requests whose judgment is in the judge's cache
    are counted as cached, the rest as to send."""
    from reproduce.config import load_config
    from reproduce.judges.base import JudgeReply
    from reproduce.judges.cache import JudgmentCache
    from reproduce.plan.build import build_plan
    from reproduce.judges.pricing import JudgeCosting
    from reproduce.plan.judging import BenchmarkInputs

    cfg = load_config({"preset": "paper", "settings": ["llama3.2-3b-armorm"], "methods": ["sft"],
                       "benchmarks": ["arena_hard"], "paper_judges": {}})
    res = tmp_path / "results"
    inputs = BenchmarkInputs("arena_hard", cfg["benchmarks"]["arena_hard"], res)
    answers = res / "answers" / "arena_hard" / "llama3.2-3b-armorm" / "sft.jsonl"
    answers.parent.mkdir(parents=True)
    answers.write_text("".join(json.dumps({"question_id": q["question_id"], "model": "sft", "turns": [f"answer {i}"]}) + "\n"
                               for i, q in enumerate(inputs.questions)))
    requests, generated = inputs.requests("llama3.2-3b-armorm", "sft")
    assert generated and len(requests) == 1000
    costing = JudgeCosting("gpt-4.1", cfg["judges"]["gpt-4.1"], res)
    cache = JudgmentCache(res / "judgments" / "arena_hard" / "gpt-4.1" / "_cache" / "x" / "sft.jsonl")
    for _, _, req in requests[:300]:
        cache.put(JudgmentCache.key(costing.identity, req), JudgeReply(text="[[A>B]]", completion_tokens=500), "A>B")
    [row] = build_plan(cfg, res)["judge_jobs"]
    assert (row["requests"], row["cached"], row["to_send"]) == (1000, 300, 700)
    assert "mean of 300 cached replies" in row["completion_basis"] and row["completion_tokens"] == 700 * 500


@pytest.mark.slow
def test_plan_command_prints_and_writes_plan_files(tmp_path):
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "plan", "--preset", "tiny", "--out-dir", str(tmp_path),
                          "--results", str(tmp_path / "results")], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["preset"] == "tiny" and plan["totals"]["usd_standard"] == 0
    assert plan["totals"]["jobs"]["judge"] == 1 * 4 * 3
    assert "planned in" in out.stdout and "# Plan: preset `tiny`" in (tmp_path / "plan.md").read_text()


def test_retired_judges_are_flagged():
    from reproduce.plan.build import retired

    assert retired({"retired": "2025-06: OpenAI no longer serves gpt-4-1106-preview"}).startswith("2025-06")
    assert retired({"retired": True}) == "retired" and retired({}) is None


def test_mt_bench_never_asks_a_model_against_itself():
    from reproduce.benchmarks import mt_bench

    bench = {"protocol": "mt_bench", "judging": {"modes": ["single", "pairwise"]}, "decoding": {}}
    q = {"question_id": "81", "category": "writing", "turns": ["a?", "b?"]}
    sft = {"question_id": "81", "model": "sft", "turns": ["x", "y"]}
    dpo = {**sft, "model": "dpo"}
    assert [g for g, _ in mt_bench.build_requests(q, sft, sft, bench, None)] == ["single-t1", "single-t2"]
    assert len(mt_bench.build_requests(q, dpo, sft, bench, None)) == 6
    record = mt_bench.make_record(q, sft, sft, bench, "j", {"single-t1": 5.0, "single-t2": 6.0}, {})
    assert record["pairwise"] == [] and record["pairwise_skipped"] == "own baseline"
    score = mt_bench.score([record])
    assert score["score"] == 5.5 and score["win_rate"] is None
    assert score["win_rate_reason"].startswith("not applicable") and score["complete"]


def test_length_control_is_not_applicable_to_task_prompts():
    from reproduce.benchmarks import alpaca_eval2

    recs = [{"question_id": f"add-{i}", "generator_2": "m", "output_1": "1", "output_2": "22", "preference": 2.0}
            for i in range(4)]
    s = alpaca_eval2.score(recs, {"questions": {"task": "addition"}, "judging": {"length_controlled": True}})
    assert s["length_controlled_winrate"] is None and s["length_controlled_reason"].startswith("not applicable")


def test_the_rehearsal_plans_before_and_compares_after(tmp_path):
    """run_rehearsal's two plan steps: the plan is written before the run, the comparison reads it after
    (here nothing ran: every job is listed as not finished, none counted as zero)."""
    from reproduce.config import load_config
    from reproduce.rehearsal.run import compare_after, plan_before

    logs: list[str] = []
    cfg = load_config({"preset": "tiny"})
    path = plan_before(cfg, tmp_path / "results", "reproduce_table1", logs.append)
    assert path == tmp_path / "results" / "plan.json" and (tmp_path / "results" / "plan.md").is_file()
    assert any(line.startswith("plan: planned in") for line in logs)
    totals = compare_after(path, tmp_path / "results", logs.append, cfg)
    assert totals["finished"] == 0 and totals["jobs"] == 12
    text = (tmp_path / "results" / "plan_compare.md").read_text()
    assert "Not finished (12" in text
    # planned again on the answers (none generated here: the same requests as before) for the cause of a gap
    planned = sum(r["to_send"] for r in json.loads(path.read_text())["judge_jobs"])
    assert totals["replanned_on_answers_to_send"] == planned > 0
    assert f"Planned again on the generated answers, nothing cached: {planned:,} requests to send" in text
