"""Training under a real 2-process ``accelerate launch`` (gloo on CPU, config/accelerate/rehearsal_cpu.yaml).

One TGDPO run of a tiny model whose tokenizer has no pad token (as Llama-3's), per-device batch 2 with
gradient accumulation 2, is SIGKILLed after its first mid-run checkpoint and rerun; the same method also
runs uninterrupted in one process with per-device batch 4 (the same 8 pairs per optimizer step, in the
same order). Both trajectories must agree step by step: that holds only if the rank-0 log carries metrics
reduced over both ranks, the sharded precompute gathered every row in order, and the resume was exact.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import build_tiny_model, near_miss_pairs

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # minutes: real trainings in subprocesses
ACCELERATE_CONFIG = ROOT / "config/accelerate/rehearsal_cpu.yaml"
MAX_STEPS, SAVE_STEPS = 12, 3
METHOD = {"loss": "tgdpo", "beta": 0.1, "alpha": 0.5, "guide": "dpo", "learning_rate": 1e-3, "max_length": 64,
          "gradient_accumulation_steps": 2, "max_steps": MAX_STEPS, "save_steps": SAVE_STEPS, "seed": 42}
COMPARED = ("loss", "grad_norm", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
            "token_reward/mean", "token_reward/std", "token_reward/min", "token_reward/max")


def _no_pad_copy(src: Path, out: Path) -> Path:
    """A copy of a model directory whose tokenizer has no pad token (Llama-3's case)."""
    from transformers import AutoTokenizer

    shutil.copytree(src, out)
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.pad_token = None
    tok.save_pretrained(str(out))
    assert AutoTokenizer.from_pretrained(str(out)).pad_token is None
    return out


def _perturbed_copy(src: Path, out: Path) -> Path:
    """A guidance model: the same tokenizer, weights moved by a seeded perturbation."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, out)
    model = AutoModelForCausalLM.from_pretrained(str(src))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.save_pretrained(str(out))
    return out


def _argv(work: Path, run: str, halt: list[str] | None = None) -> list[str]:
    """The launch of a 2-process training run; ``halt``: tests/support/halt_at.py's options, to stop it there."""
    job = json.dumps({"method_config": {**METHOD, "per_device_batch_size": 2}})
    entry = ["-m", "reproduce.cli"] if halt is None else [str(ROOT / "tests/support/halt_at.py"), *halt, "--"]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
            *entry, "train", "--job", job, "--threads", "2", "--base", str(work / "sft"),
            "--prefs", str(work / "prefs.jsonl"), "--guide", str(work / "guide"), "--cache", str(work / f"{run}-cache"),
            "--checkpoints", str(work / f"{run}-checkpoints"), "--out", str(work / f"{run}-model")]


def _env() -> dict:
    return dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")


def _latest_complete_checkpoint(ckpt: Path) -> int:
    steps = []
    for d in ckpt.glob("checkpoint-*"):
        try:
            json.loads((d / "trainer_state.json").read_text())
            steps.append(int(d.name.split("-")[-1]))
        except (OSError, ValueError):
            pass
    return max(steps, default=0)


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and every rank (torch's elastic agent starts the ranks in their own sessions)."""
    import psutil

    tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in tree:
        p.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=30)
    proc.wait()


def _log_rows(model_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (model_dir / "train_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The killed-then-resumed 2-process run and the uninterrupted 1-process run of the same method."""
    from reproduce.data.prefs import write_pairs
    from reproduce.train.run import train_method

    work = tmp_path_factory.mktemp("distributed")
    base = build_tiny_model(work / "with_pad")
    _no_pad_copy(base, work / "sft")
    _perturbed_copy(work / "sft", work / "guide")
    write_pairs(near_miss_pairs(32), {"pairs": 32}, work / "prefs.jsonl")

    # 2 processes, SIGKILLed (the launcher and both ranks) once the first mid-run checkpoint is complete: rank 0
    # halts inside its log write of step SAVE_STEPS + 1 (the Trainer logs a step, then saves, so that
    # checkpoint is complete; rank 1 waits for rank 0 at the next collective), and the kill follows that event
    marker = work / "halted"
    halt = ["--file", str(work / "two-model/train_log.jsonl"), "--lines", str(SAVE_STEPS + 1), "--marker", str(marker)]
    first_log = (work / "first.stderr").open("wb")
    proc = subprocess.Popen(_argv(work, "two", halt), cwd=ROOT, env=_env(), stdout=first_log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600  # bounds a hang only: the halt is an event, the run cannot pass it
    try:
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            _kill_tree(proc)
        first_log.close()
    assert marker.exists(), f"no halt (rc {proc.returncode}):\n{(work / 'first.stderr').read_text()[-3000:]}"
    killed_at = _latest_complete_checkpoint(work / "two-checkpoints")
    assert killed_at == SAVE_STEPS, killed_at
    assert not (work / "two-model/train_summary.json").exists(), "the run finished before the kill"

    rerun = subprocess.run(_argv(work, "two"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-4000:]

    train_method({**METHOD, "per_device_batch_size": 4}, work / "sft", work / "prefs.jsonl", work / "one-model",
                 guide_dir=work / "guide", cache_dir=work / "one-cache", checkpoint_dir=work / "one-checkpoints",
                 threads=2, log=lambda _: None)
    return {"work": work, "killed_at": killed_at, "first": (work / "first.stderr").read_text(errors="replace"),
            "rerun": rerun.stderr}


def test_rerun_resumed_from_the_mid_run_checkpoint(runs):
    summary = json.loads((runs["work"] / "two-model/train_summary.json").read_text())
    assert summary["processes"] == 2
    assert 0 < runs["killed_at"] < MAX_STEPS
    assert summary["resumed_from"] == f"checkpoint-{runs['killed_at']}"
    assert summary["steps"] == MAX_STEPS
    assert summary["steps_this_run"] == MAX_STEPS - runs["killed_at"] < MAX_STEPS  # strictly less work


def test_log_has_each_step_once(runs):
    assert [r["step"] for r in _log_rows(runs["work"] / "two-model")] == list(range(1, MAX_STEPS + 1))


def test_precompute_written_once_by_one_rank_and_reused(runs):
    written = [line for line in runs["first"].splitlines() if "token log-probs of 2 rank(s) written to" in line]
    assert len(written) == 1, runs["first"][-3000:]
    assert "written to" not in runs["rerun"] and "token log-probs read from" in runs["rerun"]
    cache_files = list((runs["work"] / "two-cache").iterdir())
    assert [p.suffix for p in cache_files] == [".pt"], cache_files  # no temp file left behind
    two = torch.load(cache_files[0])["columns"]
    one = torch.load(next((runs["work"] / "one-cache").glob("*.pt")))["columns"]
    assert set(two) == {f"{s}_{side}_token_logps" for s in ("ref", "guide") for side in ("chosen", "rejected")}
    for col in one:  # gathered from two shards, in dataset order, equal to one process's pass
        assert torch.equal(two[col]["lengths"], one[col]["lengths"]), col
        torch.testing.assert_close(two[col]["values"], one[col]["values"], atol=1e-5, rtol=0)


def test_logged_metrics_are_means_over_both_ranks(runs):
    two, one = _log_rows(runs["work"] / "two-model"), _log_rows(runs["work"] / "one-model")
    assert len(two) == len(one) == MAX_STEPS
    assert any(r["rewards/margins"] != 0 for r in one)  # the comparison is not between zeros
    for a, b in zip(two, one):
        for key in COMPARED:
            assert a[key] == pytest.approx(b[key], abs=1e-5), (a["step"], key, a[key], b[key])


def test_progress_bar_on_rank_zero_only(runs):
    lines = runs["rerun"].replace("\r", "\n").splitlines()
    assert any(f"/{MAX_STEPS} [" in line and "loss=" in line for line in lines), runs["rerun"][-2000:]
    starts = [line for line in lines if f" 0/{MAX_STEPS} [" in line]
    assert len(starts) == 1, starts  # one bar (rank 0), not one per rank


def test_finished_runs_leave_no_resumable_checkpoint(runs):
    """Once the model is saved its checkpoints are deleted (no checkpoint at the final step either); the
    resolved config is written by rank 0."""
    work = runs["work"]
    for run in ("two", "one"):
        assert not list((work / f"{run}-checkpoints").glob("checkpoint-*")), run
        assert (work / f"{run}-model/model.safetensors").exists()
    assert json.loads((work / "two-model/resolved_config.json").read_text())["method_config"]["loss"] == "tgdpo"
