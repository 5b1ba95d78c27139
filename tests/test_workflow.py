"""The workflow plans: SLURM profile dry run of the paper preset, accelerate configs, DAG shape.

Every dry run plans from an empty scratch working directory (``-d``), never from the checkout: results a
demo run left in ``results/`` would otherwise make Snakemake plan nothing ("Nothing to be done").
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(workdir: Path, *args: str) -> str:
    """Snakemake's dry-run plan of the repository's Snakefile in the empty directory ``workdir``."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          *args], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Nothing to be done" not in out.stdout, f"{workdir} is not empty: nothing was planned"
    return out.stdout


def _counts(text: str) -> dict[str, int]:
    table = text[text.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def _planned_answers(text: str) -> list[str]:
    """The answers files the plan's generate jobs write (one job may answer several benchmarks)."""
    outputs = re.findall(r"^(?:local)?rule generate:\n(?:\s+\w+: .*\n)*?\s+output: (.*)$", text, re.M)
    return [path.strip() for line in outputs for path in line.split(",")]


@pytest.mark.slow
def test_slurm_profile_dry_runs_the_paper_preset(tmp_path):
    text = _dry_run(tmp_path, "--profile", str(ROOT / "config" / "slurm"), "reproduce_table1", "--config", "preset=paper")
    counts = _counts(text)
    # 4 settings x (dpo, simpo, tgdpo); TGDPO's guidance is the DPO model, trained once.
    assert counts["train"] == 12
    assert counts["base_model"] == 4 and counts["preference_pairs"] == 4
    # 4 settings x 4 models x 3 benchmarks, each generated, judged and scored once for the table judge
    answers = _planned_answers(text)
    assert len(answers) == len(set(answers)) == counts["judge"] == counts["score"] == 48
    assert 16 <= counts["generate"] <= 48  # grouped per model or per (model, benchmark)


@pytest.mark.slow
def test_paper_training_runs_under_accelerate_fsdp(tmp_path):
    text = _dry_run(tmp_path, "-p", "--cores", "1", "reproduce_table1", "--config", "preset=paper")
    # the config path is the repository's, so the workflow runs in any working directory (-d)
    assert f"accelerate launch --config_file {ROOT}/config/accelerate/fsdp_full_shard.yaml -m reproduce.cli train" in text


@pytest.mark.slow
def test_tiny_dag_wildcards_are_config_keys(tmp_path):
    text = _dry_run(tmp_path, "--cores", "1", "reproduce_table1")
    counts = _counts(text)
    answers = _planned_answers(text)
    assert counts["train"] == 3 and len(answers) == len(set(answers)) == 12 and 4 <= counts["generate"] <= 12
    for path in re.findall(r"results/models/([^/\s]+)/([^/\s,;'\"]+)", text):
        assert path[0] == "tiny-add" and path[1] in {"sft", "dpo", "simpo", "tgdpo"}


def test_accelerate_configs():
    fsdp = yaml.safe_load((ROOT / "config/accelerate/fsdp_full_shard.yaml").read_text())
    zero3 = yaml.safe_load((ROOT / "config/accelerate/deepspeed_zero3.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert zero3["distributed_type"] == "DEEPSPEED" and zero3["deepspeed_config"]["zero_stage"] == 3
    assert fsdp["mixed_precision"] == zero3["mixed_precision"] == "bf16"


def _planned_answers(text: str) -> list[str]:
    """The answers files the plan's generate jobs write (one job may answer several benchmarks)."""
    outputs = re.findall(r"^(?:local)?rule generate:\n(?:\s+\w+: .*\n)*?\s+output: (.*)$", text, re.M)
    return [path.strip() for line in outputs for path in line.split(",")]


def test_slurm_profile_leaves_job_resources_to_the_preset():
    # GPUs, memory and runtime come from the preset's resources (tests/test_slurm.py checks the plan)
    profile = yaml.safe_load((ROOT / "config/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert "set-resources" not in profile and "set-threads" not in profile
