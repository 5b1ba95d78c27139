"""Judges that exist today: the paper's retired judges stay as files but are refused before any job runs
(check-config, the workflow, `reproduce judge`), with one line naming the file and its replacement; the
paper preset judges with judges that exist; the rehearsal's stand-ins are not retired."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.config import ConfigError, load_config, load_yaml, validate

ROOT = Path(__file__).resolve().parent.parent
JUDGES = ROOT / "evals" / "judges"
RETIRED = {"gpt-4-1106-preview": "2026-03-26", "gpt-4": "2026-10-23", "gpt-4-0314": "2026-03-26"}


def _judge(name: str) -> dict:
    return validate(load_yaml(JUDGES / f"{name}.yaml"), "judge", JUDGES / f"{name}.yaml")


def test_paper_judges_are_files_marked_retired_with_a_live_replacement():
    for name, date in RETIRED.items():
        data = _judge(name)
        assert data["retired"] == date and data["retired_source"]
        replacement = _judge(data["replacement"])
        assert not replacement.get("retired"), (name, data["replacement"])


def test_current_judges_pin_dated_snapshots_and_state_logprobs():
    assert _judge("gpt-4.1")["model"] == "gpt-4.1-2025-04-14"
    assert _judge("gpt-4o")["model"] == "gpt-4o-2024-08-06"
    qwen = _judge("qwen2.5-72b-instruct")
    assert qwen["base_url"].startswith("http://127.0.0.1") and qwen["logprobs"] is True
    # the file says how to start the server so it can return the log-probs AlpacaEval 2 reads
    assert "vllm serve Qwen/Qwen2.5-72B-Instruct" in qwen["serve_command"]
    assert f"--max-logprobs {qwen['top_logprobs']}" in qwen["serve_command"]
    for path in JUDGES.glob("*.yaml"):
        data = load_yaml(path)
        if data["kind"] == "openai":
            assert isinstance(data["logprobs"], bool), path.name


def test_a_judge_file_without_logprobs_or_with_retired_but_no_replacement_is_refused(tmp_path):
    data = {k: v for k, v in load_yaml(JUDGES / "gpt-4.1.yaml").items() if k != "logprobs"}
    with pytest.raises(ConfigError, match=r"'logprobs' is a required property"):
        validate(data, "judge", tmp_path / "x.yaml")
    with pytest.raises(ConfigError, match=r"'replacement' is a dependency of 'retired'"):
        validate({**data, "logprobs": True, "retired": "2026-01-01"}, "judge", tmp_path / "x.yaml")


def test_paper_preset_judges_with_judges_that_exist_and_records_the_papers():
    cfg = load_config({"preset": "paper"})
    assert cfg["table_judge"] == "gpt-4.1" and not cfg.get("benchmark_judges")  # MT-Bench too
    assert all(not j.get("retired") for j in cfg["judges"].values())
    assert cfg["paper_judges"] == {"alpaca_eval2": "gpt-4-1106-preview", "arena_hard": "gpt-4-1106-preview",
                                   "mt_bench": "gpt-4"}


def test_rehearsal_standins_impersonate_the_papers_judges_without_being_retired():
    cfg = load_config({"preset": "rehearsal"})
    for name, judge in cfg["judges"].items():
        assert name.startswith("standin-") and not judge.get("retired")
    assert {j["model"] for j in cfg["judges"].values()} == {"gpt-4-1106-preview", "gpt-4"}


@pytest.mark.parametrize("judge, replacement", [("gpt-4-1106-preview", "gpt-4.1"), ("gpt-4", "gpt-4.1")])
def test_config_refuses_a_retired_judge_naming_file_date_and_replacement(judge, replacement):
    with pytest.raises(ConfigError) as err:
        load_config({"preset": "paper", "judges": ["gpt-4.1", judge], "table_judge": "gpt-4.1"})
    msg = str(err.value)
    assert msg.startswith(f"evals/judges/{judge}.yaml: ") and f"evals/judges/{replacement}.yaml" in msg
    assert RETIRED[judge] in msg and "config/presets/paper.yaml: key 'judges'" in msg and "\n" not in msg


def _tree(tmp_path: Path) -> Path:
    """A copy of the package and its config with a preset that asks a retired judge."""
    for d in ("reproduce", "config", "evals"):
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("__pycache__"))
    preset = (tmp_path / "config/presets/paper.yaml").read_text()
    preset = preset.replace("judges: [gpt-4.1, gpt-4o]\ntable_judge: gpt-4.1",
                            "judges: [gpt-4-1106-preview, gpt-4]\ntable_judge: gpt-4-1106-preview")
    assert "table_judge: gpt-4-1106-preview" in preset
    (tmp_path / "config/presets/old-paper.yaml").write_text(preset)
    return tmp_path


def test_check_config_refuses_a_retired_judge_in_one_line(tmp_path):
    tree = _tree(tmp_path)
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "check-config", "--preset", "old-paper"], cwd=tree,
                         capture_output=True, text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and out.stdout == ""
    line = out.stderr.strip()
    assert "\n" not in line and "evals/judges/gpt-4-1106-preview.yaml" in line and "evals/judges/gpt-4.1.yaml" in line


def test_workflow_refuses_a_retired_judge_before_any_job(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(work),
                          "reproduce_table1", "--config", "preset=paper", "judges=[gpt-4.1,gpt-4]", "table_judge=gpt-4.1"],
                         cwd=work, capture_output=True, text=True)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    lines = [ln for ln in text.splitlines() if "config error:" in ln]
    assert len(lines) == 1 and "evals/judges/gpt-4.yaml" in lines[0] and "evals/judges/gpt-4.1.yaml" in lines[0]
    assert "Job stats" not in text and "rule judge" not in text  # nothing was planned, let alone run
    assert not any(work.iterdir()) or {p.name for p in work.iterdir()} <= {".snakemake"}


def test_reproduce_judge_refuses_a_retired_judge_before_reading_answers(tmp_path):
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "judge", "--preset", "paper", "--benchmark", "mt_bench",
                          "--judge", "gpt-4", "--answers", str(tmp_path / "absent.jsonl"), "--out",
                          str(tmp_path / "j.jsonl")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    line = out.stderr.strip()
    assert "\n" not in line and "evals/judges/gpt-4.yaml: " in line and "evals/judges/gpt-4.1.yaml" in line
    assert "absent.jsonl" not in line and not (tmp_path / "j.jsonl").exists()
