"""`reproduce plan`'s GPU time from the GPU benchmark's figures file: tokens ÷ measured tokens/s plus the
precompute at its measured rate for the run of the job's size, conversion through the run's 6·N MFU for
other sizes, each line saying which; the stated FLOP model without a file; a bad file named by key; totals
marked INCOMPLETE with the reason."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from reproduce.io import DataError

ROOT = Path(__file__).resolve().parent.parent
# the paper preset's training data when no local copy is at hand (assumptions.DEFAULT_PAIRS x
# DEFAULT_TOKENS_PER_PAIR, one epoch): 59,904 pairs x 1,360 tokens
TOKENS = 59_904 * 1_360


def _gpu_train():
    spec = importlib.util.spec_from_file_location("gpu_train", ROOT / "perf" / "gpu_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(size, params, method, tokens_per_s, forward_tokens_per_s=None, fsdp=True):
    """A run as perf/gpu_train.py records it (its own run_record), with the figures given."""
    precompute = None if forward_tokens_per_s is None else {
        "hit": False, "rows": 40, "tokens": 60_000, "seconds": 60_000 / forward_tokens_per_s,
        "forward_tokens_per_s": forward_tokens_per_s}
    figures = {"wall_s": 100.0, "setup_s": 20.0, "train_s": 12.0, "steps": 10, "processes": 1, "distributed_type": "FSDP",
               "step_s": 1.2, "tokens_per_s": tokens_per_s, "tokens_per_s_per_gpu": tokens_per_s,
               "precompute": precompute, "peak_gpu_bytes": None, "disk": {}}
    return _gpu_train().run_record(size, params, method, True, fsdp, (4, 1, 40), figures)


@pytest.fixture
def figures_file(tmp_path):
    gt = _gpu_train()
    figures = gt.start_figures(None, False, "NVIDIA H200", {"torch": "2.11"})
    figures["runs"] = [_run("8b", 8.03e9, "dpo", 5000.0, 20_000.0), _run("8b", 8.03e9, "tgdpo", 4800.0, 18_000.0),
                       _run("1b", 1.24e9, "dpo", 30_000.0, 100_000.0)]
    path = tmp_path / "gpu_train_h200.json"
    path.write_text(json.dumps(figures))
    return path


def _train_rows(plan):
    return {(s["setting"], s["method"]): s for s in plan["stages"] if s["stage"] == "train"}


def test_the_plan_gives_the_hours_a_figures_file_implies(figures_file, tmp_path):
    """Hours computed here by hand from the file's numbers: training tokens ÷ tokens/s plus the precompute's
    forwarded tokens ÷ its forward tokens/s (DPO: one model, TGDPO: two)."""
    from reproduce.config import load_config
    from reproduce.plan.build import build_plan

    plan = build_plan(load_config({"preset": "paper"}), tmp_path / "results", throughput=figures_file)
    rows = _train_rows(plan)
    dpo8, tgdpo8 = rows[("llama3-8b-armorm", "dpo")], rows[("llama3-8b-armorm", "tgdpo")]
    assert dpo8["gpu_hours"] == pytest.approx((TOKENS / 5000 + TOKENS / 20_000) / 3600, rel=1e-9)
    assert tgdpo8["gpu_hours"] == pytest.approx((TOKENS / 4800 + 2 * TOKENS / 18_000) / 3600, rel=1e-9)
    assert dpo8["wall_hours"] == pytest.approx(dpo8["gpu_hours"] / 8)  # 8 GPUs (fsdp_full_shard.yaml)
    assert "measured: the dpo 8B FSDP run, 5,000 tokens/s per GPU" in dpo8["basis"]
    # SimPO: no SimPO run, so DPO's at the same size, and no precompute (SimPO reads no other model)
    simpo8 = rows[("llama3-8b-armorm", "simpo")]
    assert simpo8["gpu_hours"] == pytest.approx(TOKENS / 5000 / 3600, rel=1e-9)
    assert "no simpo run, so dpo's" in simpo8["basis"]
    # 3.21B (Llama-3.2-3B): nearer the 8B run than the 1B one; converted through its 6·N MFU, i.e.
    # tokens/s scaled by 8.03 / 3.21, and the precompute likewise
    dpo3 = rows[("llama3.2-3b-armorm", "dpo")]
    scale = 3.21e9 / 8.03e9
    assert dpo3["gpu_hours"] == pytest.approx((TOKENS * scale / 5000 + TOKENS * scale / 20_000) / 3600, rel=1e-9)
    mfu8 = 6 * 8.03e9 * 5000 / 989e12
    assert f"converted from the dpo 8B FSDP run through its 6·N MFU {mfu8:.1%}" in dpo3["basis"]
    assert "scaled by N_run / N" in dpo3["basis"]
    # 2.61B (Gemma-2-2B): nearer the 1B run
    gemma = rows[("gemma2-2b-armorm", "dpo")]
    scale = 2.61e9 / 1.24e9
    assert gemma["gpu_hours"] == pytest.approx((TOKENS * scale / 30_000 + TOKENS * scale / 100_000) / 3600, rel=1e-9)
    assert "converted from the dpo 1.2B FSDP run" in gemma["basis"]
    assert "measured on NVIDIA H200" in plan["gpu"]["rates"]


def test_without_a_figures_file_the_stated_flop_model_counts_model_flops(tmp_path, monkeypatch):
    """6N per training token and 2N per extra model forward at the stated model-FLOP MFU (gradient
    checkpointing's recomputation not counted: the MFU definition of the benchmark)."""
    from reproduce.config import load_config
    from reproduce.plan import assumptions as A
    from reproduce.plan import gpu
    from reproduce.plan.build import build_plan

    monkeypatch.setattr(gpu, "COMMITTED_FIGURES", str(tmp_path / "none"))
    monkeypatch.chdir(tmp_path)  # no results/perf/gpu_train.json here
    plan = build_plan(load_config({"preset": "paper"}), tmp_path / "results")
    rows = _train_rows(plan)
    n = 8.03e9
    rate = 989e12 * A.DEFAULT_MFU
    assert rows[("llama3-8b-armorm", "tgdpo")]["gpu_hours"] == pytest.approx((6 * n * TOKENS + 2 * n * TOKENS * 2) / rate / 3600)
    assert rows[("llama3-8b-armorm", "simpo")]["gpu_hours"] == pytest.approx(6 * n * TOKENS / rate / 3600)
    assert "stated FLOP model" in rows[("llama3-8b-armorm", "dpo")]["basis"]


def test_a_bad_figures_file_is_named_with_its_key(tmp_path):
    from reproduce.plan.gpu import Rates

    path = tmp_path / "f.json"
    path.write_text(json.dumps({"format": 1, "runs": []}))
    with pytest.raises(DataError, match=r"f.json: 'format' is 1, the plan reads format 2"):
        Rates(path)
    path.write_text(json.dumps({"format": 2, "gpu": "H200", "peak_flops": 1e15, "runs": [{"method": "dpo", "params": 8e9}]}))
    with pytest.raises(DataError, match=r"f.json: runs\[0\] key 'tokens_per_s_per_gpu' missing"):
        Rates(path)


def test_another_gpu_than_the_files_is_converted_and_says_so(figures_file, tmp_path):
    from reproduce.config import load_config
    from reproduce.plan.build import build_plan

    plan = build_plan(load_config({"preset": "paper"}), tmp_path / "results", throughput=figures_file, gpu="h100")
    dpo8 = _train_rows(plan)[("llama3-8b-armorm", "dpo")]
    assert "converted to h100" in plan["gpu"]["rates"] and "at the planned GPU's peak" in dpo8["basis"]


def test_totals_say_incomplete_with_the_reason_when_jobs_are_unpriced(tmp_path, monkeypatch):
    """Without the official question files the judge jobs cannot be priced: the summary lines say so
    instead of totalling $0.00 as if nothing were to be spent."""
    from reproduce.config import load_config
    from reproduce.plan.build import build_plan
    from reproduce.plan.render import summary_lines

    import reproduce.official as official

    monkeypatch.setenv("REPRODUCE_BENCHMARK_MIRROR", str(tmp_path / "empty"))
    monkeypatch.setenv("REPRODUCE_CACHE", str(tmp_path / "cache"))

    def offline(spec, timeout):
        raise OSError("no network in this test")

    monkeypatch.setattr(official, "download", offline)
    plan = build_plan(load_config({"preset": "paper"}), tmp_path / "results", throughput=None)
    lines = summary_lines(plan)
    judging = next(line for line in lines if line.startswith("judging:"))
    assert judging.startswith("judging: INCOMPLETE (48 judge jobs unpriced: questions of alpaca_eval2, arena_hard, "
                              "mt_bench unavailable")
    gpu = next(line for line in lines if line.startswith("GPU:"))
    assert "INCOMPLETE (generation leaves out alpaca_eval2, arena_hard, mt_bench" in gpu
