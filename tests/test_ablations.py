"""The paper's ablations: step models as names and jobs, the preset's 'ablations' checked, its models kept out
of Table 1 and method_differences, step saves published as models, the DAG of reproduce_ablations, and the
table (ours beside the paper's, paired differences) and figures on a synthetic results tree."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.ablation_models import ablation_methods, ablation_models, ablation_spec
from reproduce.config import ConfigError, job_config, load_config
from reproduce.io import DataError
from reproduce.step_models import parse_step_model, step_model

ROOT = Path(__file__).resolve().parent.parent


def test_step_model_names_and_jobs():
    assert step_model("tgdpo_a1", 60) == "tgdpo_a1-step60" and parse_step_model("tgdpo_a1-step60") == ("tgdpo_a1", 60)
    assert parse_step_model("dpo-s43") is None and parse_step_model("tgdpo") is None
    cfg = load_config({"preset": "paper"})
    job = job_config(cfg, "generate", setting="llama3-8b-pairrm", method="tgdpo_a1-step60", benchmark="arena_hard")
    final = job_config(cfg, "generate", setting="llama3-8b-pairrm", method="tgdpo_a1", benchmark="arena_hard")
    assert job["checkpoint_step"] == 60 and job["method_config"] == final["method_config"]
    assert job["config_hash"] != final["config_hash"]  # a step model's answers are never the final model's
    with pytest.raises(ConfigError, match=r"llama3-8b-pairrm.yaml: method 'tgdpo_a1' lists no eval_step 70"):
        job_config(cfg, "generate", setting="llama3-8b-pairrm", method="tgdpo_a1-step70", benchmark="arena_hard")


def test_the_presets_ablations_and_their_errors():
    cfg = load_config({"preset": "paper"})
    spec = ablation_spec(cfg)
    assert spec["benchmarks"] == ["alpaca_eval2", "arena_hard"] and spec["compare_step"] == 50
    methods = ablation_methods(cfg)
    assert methods.index("dpo_beta0_1") < methods.index("tgdpo_g0_1")  # a guide trains before what it guides
    assert {"tgdpo_a05-step50", "tgdpo_a2-step400", "tgdpo_conv", "dpo_beta0_1"} <= set(ablation_models(cfg))

    def bad(change, match):
        c = copy.deepcopy(cfg)
        change(c)
        with pytest.raises(ConfigError, match=match):
            ablation_spec(c)

    bad(lambda c: c["ablations"].update(setting="nope"), r"ablations.setting': 'nope' is not one of settings")
    bad(lambda c: c["ablations"].update(alpha=["tgdpo"]), r"ablations.alpha': recipe llama3-8b-pairrm method 'tgdpo' lists no eval_steps")
    bad(lambda c: c["ablations"].update(alpha=["dpo"]), r"ablations.alpha': 'dpo' is not a TGDPO method")
    bad(lambda c: c["ablations"].update(convergence={"dpo": "simpo"}), r"ablations.convergence': method 'simpo' .* has no max_epochs")
    bad(lambda c: c["ablations"].update(compare_step=70), r"ablations.compare_step': 70 is not an eval_step of every alpha")
    bad(lambda c: c["ablations"].update(comparisons=[["tgdpo_a1-step70", "tgdpo"]]), r"'tgdpo_a1-step70' is not an ablation model")


def test_ablation_models_stay_out_of_table1_and_method_differences():
    from reproduce.workflow import Paths

    cfg = load_config({"preset": "paper"})
    P = Paths(cfg)
    only_ablation = set(ablation_models(cfg)) - set(cfg["methods"]) - {"dpo"}
    table_inputs = P.all_scores(cfg["table_judge"]) + P.differences_inputs()
    assert not [p for p in table_inputs for m in only_ablation if f"/{m}." in p]
    assert all("/mt_bench/" not in p for p in P.ablation_scores())  # AlpacaEval 2 and Arena-Hard only
    assert len(P.ablation_scores()) == 2 * len(ablation_models(cfg))


def test_a_step_save_becomes_a_model_without_copying(tmp_path):
    from reproduce.train.milestones import STEP_SUMMARY, publish_step

    save = tmp_path / "ck" / "eval" / "step-4"
    save.mkdir(parents=True)
    (save / "model.safetensors").write_bytes(b"w" * 100)
    (save / "config.json").write_text("{}")
    with pytest.raises(DataError, match=r"step-4: no complete eval-step save"):
        publish_step(save, tmp_path / "m")
    (save / STEP_SUMMARY).write_text(json.dumps({"step": 4}))
    assert publish_step(save, tmp_path / "m") > 100
    assert os.stat(tmp_path / "m" / "model.safetensors").st_ino == os.stat(save / "model.safetensors").st_ino


def test_tiny_ablations_dag(tmp_path):
    """reproduce_ablations plans step models from their trained runs, judges the ablation models on the two
    ablation benchmarks only, and trains each guide once."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path),
                          "--cores", "1", "reproduce_ablations"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    table = out.stdout[out.stdout.index("Job stats:"):]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    cfg = load_config({"preset": "tiny"})
    models = ablation_models(cfg)
    assert counts["step_model"] == sum(1 for m in models if parse_step_model(m)) == 6
    assert counts["train"] == len(ablation_methods(cfg)) and counts["judge"] == counts["score"] == 2 * len(models)
    assert "tiny_mt_bench/verifier" not in out.stdout.split("rule ablations_table")[1]
    assert "judgments/tiny_mt_bench" not in "".join(re.findall(r"rule judge:\n(?:\s+.*\n)*?\s+output: (.*)", out.stdout))


@pytest.fixture()
def synthetic(tmp_path_factory):
    """The paper preset's ablation setting with every ablation model's answers, judgments and scores made up
    (30 questions per benchmark), and train summaries/logs for the convergence pairs."""
    from reproduce.workflow import Paths
    from tests.support.report_fixture import write_report_fixture

    cfg = copy.deepcopy(load_config({"preset": "paper"}))
    for m in cfg["ablations"]["alpha"]:  # two of the six common steps keep the tree small; the paper's points stay
        cfg["settings"]["llama3-8b-pairrm"]["methods"][m]["eval_steps"] = [50, 60]
    spec = ablation_spec(cfg)
    small = {**cfg, "settings": {spec["setting"]: cfg["settings"][spec["setting"]]}, "judges": {"gpt-4.1": cfg["judges"]["gpt-4.1"]},
             "benchmarks": {b: cfg["benchmarks"][b] for b in spec["benchmarks"]}, "methods": ablation_models(cfg)}
    qs = {"alpaca_eval2": [{"question_id": str(i), "turns": [f"instruction {i}"]} for i in range(30)],
          "arena_hard": [{"question_id": f"q{i}", "category": "x", "turns": [f"prompt {i}"]} for i in range(30)]}
    root = tmp_path_factory.mktemp("abl")
    results = write_report_fixture(root, small, long_text=False, rounds=10, questions=qs)
    P = Paths(small, results=str(results))
    for short, long in spec["convergence"].items():
        for m, steps in ((short, 40), (long, 90)):
            d = Path(P.model_dir(spec["setting"], m))
            (d / "train_log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in range(1, steps + 1)))
            conv = {"max_epochs": 3, "window": 20, "tolerance": 0.01, "fired": {"step": 80, "epoch": 2}} if m == long else None
            (d / "train_summary.json").write_text(json.dumps({"steps": steps, "convergence": conv}))
    return small, results


@pytest.mark.slow
def test_ablations_table_beside_the_papers_numbers(synthetic, tmp_path):
    from reproduce.report.ablations import build_ablations
    from reproduce.report.provenance import load_score

    cfg, results = synthetic
    rows = build_ablations(cfg, results, tmp_path / "tables", tmp_path / "figures", rounds=50, log=lambda *_: None)
    by = {(r["ablation"], r["model"]): r for r in rows}
    # the paper's numbers land on the model they describe: alpha 1.0 at step 60, alpha 0.5 at its end
    assert by[("alpha", "tgdpo_a1-step60")]["AE-WR_paper"] == 42.5 and by[("alpha", "tgdpo_a1-step50")]["AE-WR_paper"] is None
    assert by[("alpha", "tgdpo_a05")]["AH_paper"] == 34.3 and by[("alpha", "tgdpo_a05")]["paper_note"] == "end of epoch 1"
    assert by[("guidance", "dpo_beta0_1")]["AE-WR_paper"] == 34.8 and by[("guidance", "tgdpo_g0_1")]["AH_paper"] == 34.3
    assert by[("convergence", "simpo_conv")]["AE-WR_paper"] == 4.6
    assert by[("convergence", "tgdpo_conv")]["convergence_fired_step"] == 80
    r = by[("alpha", "tgdpo_a2-step50")]
    sc = load_score(results, cfg, "arena_hard", "gpt-4.1", "llama3-8b-pairrm", "tgdpo_a2-step50")
    assert r["AH"] == round(sc.get("score"), 2) and r["AH_ci_low"] <= r["AH"] <= r["AH_ci_high"]
    assert r["AE-WR_se"] is not None
    data = json.loads((tmp_path / "tables" / "ablations.json").read_text())
    faster = [p for p in data["pairs"] if p["question"].startswith("converges faster: α=2 vs α=0.5 at step 50")]
    assert {p["benchmark"] for p in faster} == {"alpaca_eval2", "arena_hard"}
    ah = next(p for p in faster if p["metric"] == "AH")
    assert ah["diff"] == pytest.approx(ah["score_a"] - ah["score_b"]) and ah["ci_low"] <= ah["diff"] <= ah["ci_high"]
    collapse = [p for p in data["pairs"] if p["ablation"] == "convergence" and p["metric"] == "AE-WR"]
    assert {(p["model_a"], p["model_b"]) for p in collapse} == {("dpo_conv", "dpo"), ("simpo_conv", "simpo"), ("tgdpo_conv", "tgdpo")}
    assert next(p for p in collapse if p["model_a"] == "simpo_conv")["paper_diff"] == pytest.approx(4.6 - 39.8)
    md = (tmp_path / "tables" / "ablations.md").read_text()
    assert "## alpha sensitivity" in md and "(rule fired at 80)" in md and "docs/paper.md" in md
    assert "mean loss over its last 20 steps moved by less than 0.01" in md
    assert (tmp_path / "tables" / "ablations.csv").read_text().count("\n") == len(rows) + 1
    assert data["loss_curves"]["tgdpo_conv"][-1] == [90, 1 / 90]
    for name in ("ablation_alpha", "ablation_guidance", "ablation_convergence"):
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000


@pytest.mark.slow
def test_plan_of_the_ablations_gives_their_extra_over_table1(tmp_path):
    """`reproduce plan --target reproduce_ablations`: the step models' disk (weights only, ~16 GB each at 8B in
    bf16), the ablation-only training, generation and judge jobs, their requests and dollars, apart from Table 1's."""
    from reproduce.plan.build import build_plan
    from reproduce.plan.render import summary_lines

    cfg = load_config({"preset": "paper"})
    plan = build_plan(cfg, tmp_path / "results", "reproduce_ablations")
    steps = [s for s in plan["stages"] if s["stage"] == "step_model"]
    assert [s["method"] for s in steps] == ["tgdpo_a05", "tgdpo_a1", "tgdpo_a2"] and all(s["jobs"] == 6 for s in steps)
    assert 15 < steps[0]["disk_gb"] / 6 < 17  # one save: the 8B model's bf16 weights, no optimizer state
    x = plan["extra_over_table1"]
    only = set(ablation_models(cfg)) - {"dpo", "simpo", "tgdpo"}
    assert x["jobs"]["step_model"] == 18 and x["jobs"]["judge"] == 2 * len(only) and x["jobs"]["train"] == 8
    assert 0 < x["usd_standard"] < plan["totals"]["usd_standard"] and x["gpu_hours"] > 0
    assert any(line.startswith("beyond reproduce_table1: 8 training, 18 step models") for line in summary_lines(plan))


@pytest.mark.slow
def test_step_model_command_records_its_job(tmp_path):
    """`reproduce step-model` publishes a complete save and writes the step model's resolved config (its
    method's recipe entry and the step), which the score files' provenance reads."""
    save = tmp_path / "ck" / "eval" / "step-60"
    save.mkdir(parents=True)
    (save / "config.json").write_text("{}")
    (save / "step_summary.json").write_text(json.dumps({"step": 60}))
    job = job_config(load_config({"preset": "paper"}), "train", setting="llama3-8b-pairrm", method="tgdpo_a1-step60")
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "step-model", "--job", json.dumps(job), "--save", str(save),
                          "--out", str(tmp_path / "m")], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    resolved = json.loads((tmp_path / "m" / "resolved_config.json").read_text())
    assert resolved["checkpoint_step"] == 60 and resolved["method"] == "tgdpo_a1-step60"
    assert resolved["config_hash"] == job["config_hash"] and (tmp_path / "m" / "config.json").exists()
