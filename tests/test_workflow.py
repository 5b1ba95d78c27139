"""The workflow plans: SLURM profile dry run of the paper preset, accelerate configs, DAG shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", *args], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    return out.stdout


def _counts(text: str) -> dict[str, int]:
    table = text[text.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_slurm_profile_dry_runs_the_paper_preset():
    text = _dry_run("--profile", "config/slurm", "reproduce_table1", "--config", "preset=paper")
    counts = _counts(text)
    # 4 settings x (dpo, simpo, tgdpo); TGDPO's guidance is the DPO model, trained once.
    assert counts["train"] == 12
    assert counts["base_model"] == 4 and counts["preference_pairs"] == 4
    # 4 settings x 4 models x 3 benchmarks, each generated, judged and scored once for the table judge
    assert counts["generate"] == counts["judge"] == counts["score"] == 48


def test_paper_training_runs_under_accelerate_fsdp():
    text = _dry_run("-p", "--cores", "1", "reproduce_table1", "--config", "preset=paper")
    assert "accelerate launch --config_file config/accelerate/fsdp_full_shard.yaml -m reproduce.cli train" in text


def test_tiny_dag_wildcards_are_config_keys():
    text = _dry_run("--cores", "1", "reproduce_table1")
    counts = _counts(text)
    assert counts["train"] == 3 and counts["generate"] == 12
    for path in re.findall(r"results/models/([^/\s]+)/([^/\s,;'\"]+)", text):
        assert path[0] == "tiny-add" and path[1] in {"sft", "dpo", "simpo", "tgdpo"}


def test_accelerate_configs():
    fsdp = yaml.safe_load((ROOT / "config/accelerate/fsdp_full_shard.yaml").read_text())
    zero3 = yaml.safe_load((ROOT / "config/accelerate/deepspeed_zero3.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert zero3["distributed_type"] == "DEEPSPEED" and zero3["deepspeed_config"]["zero_stage"] == 3
    assert fsdp["mixed_precision"] == zero3["mixed_precision"] == "bf16"


def test_slurm_profile_gives_gpus_to_gpu_rules():
    profile = yaml.safe_load((ROOT / "config/slurm/config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["set-resources"]["train"]["gpus"] == 8
    assert profile["set-resources"]["generate"]["gpus"] == 1
    assert "gpus" not in profile["set-resources"]["judge"]
