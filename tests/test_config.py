"""Config validation: every bad input is a one-line error naming the file and the key.

The home of every bad preset / recipe / benchmark / judge file case (test_bad_input.py holds the others).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.config import ConfigError, job_config, load_config, validate

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def tree(tmp_path) -> Path:
    """A copy of the config tree to corrupt."""
    for d in ("config", "evals"):
        shutil.copytree(ROOT / d, tmp_path / d)
    return tmp_path


def test_both_presets_load():
    tiny = load_config({"preset": "tiny"})
    paper = load_config({"preset": "paper"})
    assert list(tiny["settings"]) == ["tiny-add"]
    assert len(paper["settings"]) == 4
    assert paper["settings"]["llama3-8b-pairrm"]["methods"]["tgdpo"]["alpha"] == 0.5


@pytest.mark.parametrize("overrides, match", [
    ({"preset": "nope"}, r"--config: key 'preset': unknown preset 'nope' \(known: "
     + ", ".join(sorted(p.stem for p in (ROOT / "config" / "presets").glob("*.yaml"))) + r"\)"),
    ({"generation": {"batch_size": "two"}}, r"--config: key 'generation.batch_size': 'two' is not of type"),
    ({"methods": "dpo"}, r"--config: key 'methods': 'dpo' is not of type 'array'"),
    ({"bogus": 1}, r"--config: key 'bogus': unknown key"),
    ({"benchmarks": ["tiny_alpaca_eval2", "nope"]}, r"config/presets/tiny.yaml: key 'benchmarks': unknown benchmark 'nope'"),
    ({"judges": ["gpt-5-typo"], "table_judge": "gpt-5-typo"}, r"key 'judges': unknown judge 'gpt-5-typo'"),
    ({"settings": ["missing-setting"]}, r"key 'settings': unknown setting 'missing-setting'"),
    ({"methods": ["sft", "ipo"]}, r"config/recipes/tiny-add.yaml: key 'methods': preset method 'ipo' has no recipe"),
    ({"table_judge": "gpt-4o"}, r"key 'table_judge': 'gpt-4o' is not one of judges"),
    ({"generation": {"backend": "tgi"}}, r"key 'generation.backend': 'tgi' is not one of"),
])
def test_bad_overrides(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(overrides)
    assert "\n" not in str(err.value).strip()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("file, old, new, match", [
    ("config/recipes/tiny-add.yaml", "beta: 0.1", "beta: -0.1", r"tiny-add.yaml: key 'methods.dpo.beta': -0.1 is less than or equal"),
    ("config/recipes/tiny-add.yaml", "loss: simpo", "loss: orpo", r"key 'methods.simpo.loss': 'orpo' is not one of"),
    ("config/recipes/tiny-add.yaml", "alpha: 0.5", "alpha: lots", r"key 'methods.tgdpo.alpha': 'lots' is not of type 'number'"),
    ("config/recipes/tiny-add.yaml", "guide: dpo", "guide: nonexistent", r"key 'methods.tgdpo.guide': unknown method 'nonexistent'"),
    ("config/recipes/tiny-add.yaml", "  samples_per_prompt: 8", "  samples_per_prompt: 8\n  sampels: 3", r"key 'preference_data.sampels': unknown key"),
    ("config/recipes/tiny-add.yaml", "label: Tiny", "label: [Tiny", r"tiny-add.yaml: line \d+: malformed YAML"),
    ("evals/benchmarks/tiny_arena_hard.yaml", "protocol: arena_hard", "protocol: arena_harder", r"tiny_arena_hard.yaml: key 'protocol'"),
    ("evals/benchmarks/tiny_mt_bench.yaml", "task: addition", "task: division", r"key 'questions.task': unknown task 'division'"),
    ("evals/judges/verifier.yaml", "kind: verifier", "kind: oracle", r"verifier.yaml: key 'kind': 'oracle' is not one of"),
])
def test_bad_files(tree, file, old, new, match):
    _edit(tree / file, old, new)
    with pytest.raises(ConfigError, match=match) as err:
        load_config({"preset": "tiny"}, root=tree)
    assert "\n" not in str(err.value).strip()


@pytest.mark.parametrize("data, match", [
    ({"kind": "openai", "modle": "x"}, r"evals/judges/x.yaml: key 'modle': unknown key"),
    ({"kind": "openai", "model": "x", "concurrency": "many"}, r"x.yaml: key 'concurrency': 'many' is not of type 'integer'"),
    ({"kind": "openai", "model": "x", "api_key": "sk-x"}, r"x.yaml: key 'api_key': unknown key"),  # keys only from env
])
def test_bad_judge_files(data, match):
    with pytest.raises(ConfigError, match=match) as err:
        validate(data, "judge", "evals/judges/x.yaml")
    assert "\n" not in str(err.value).strip() and "sk-x" not in str(err.value)


def test_job_config_holds_only_what_the_job_needs():
    cfg = load_config({"preset": "tiny"})
    job = job_config(cfg, "train", setting="tiny-add", method="tgdpo")
    assert job["method_config"]["loss"] == "tgdpo" and job["guide_config"]["loss"] == "dpo"
    assert "benchmark_config" not in job
    other = job_config(cfg, "train", setting="tiny-add", method="dpo")
    assert other["config_hash"] != job["config_hash"]


@pytest.mark.slow
def test_snakemake_refuses_bad_config_before_any_job(tmp_path):
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", "preset=nope"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0
    assert "unknown preset 'nope'" in out.stderr + out.stdout


def test_cli_bad_input_exits_2_with_one_line():
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "check-config", "--preset", "nope"],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "unknown preset 'nope'" in out.stderr


@pytest.mark.slow
def test_benchmark_judges_route_table_cells_to_the_official_judge():
    from reproduce.config import judge_for
    from reproduce.workflow import Paths

    # the rehearsal's stand-ins route MT-Bench to their gpt-4 as the paper routed it to gpt-4
    cfg = load_config({"preset": "rehearsal"})
    tj, mt = "standin-gpt-4-1106-preview", "standin-gpt-4"
    assert judge_for(cfg, "mt_bench", tj) == mt
    assert judge_for(cfg, "arena_hard", tj) == tj
    assert judge_for(cfg, "mt_bench", mt) == mt  # other judges' tables judge everything themselves
    scores = Paths(cfg).all_scores(tj)
    assert any(f"/scores/mt_bench/{mt}/" in p for p in scores)
    assert not any(f"/scores/mt_bench/{tj}/" in p for p in scores)
    with pytest.raises(ConfigError, match=r"key 'benchmark_judges.mt_bench': 'gpt-5' is not one of judges"):
        load_config({"preset": "rehearsal", "benchmark_judges": {"mt_bench": "gpt-5"}})


def test_judge_comparisons_use_each_judges_own_scores():
    from reproduce.workflow import Paths

    tj = "standin-gpt-4-1106-preview"
    paths = Paths(load_config({"preset": "rehearsal"}))
    own = paths.all_scores(tj, routed=False)
    assert any(f"/scores/mt_bench/{tj}/" in p for p in own)
    assert set(paths.all_scores(tj, routed=False)) != set(paths.all_scores(tj))


@pytest.mark.slow
def test_paper_recipes_pin_revisions_or_say_why_not():
    """Each model or dataset revision of the paper recipes is a commit hash with its source cited beside it,
    or `main` with a comment saying that no public source pins it."""
    import re

    for name in ("llama3-8b-pairrm", "llama3-8b-armorm", "llama3.2-3b-armorm", "gemma2-2b-armorm"):
        path = ROOT / "config" / "recipes" / f"{name}.yaml"
        text, recipe = path.read_text(), load_config({"preset": "paper"})["settings"][name]
        for part in ("base", "preference_data"):
            rev = recipe[part]["revision"]
            block = text[text.index(f"{part}:"):]
            block = block[:block.index("local_dir")]
            if rev == "main":
                assert "not pinned" in block.lower(), (name, part)
            else:
                assert re.fullmatch(r"[0-9a-f]{40}", rev) and "Pinned:" in block, (name, part)


def test_nested_command_line_numbers_are_read_as_the_schema_says():
    """Snakemake's --config 'judging={"max_usd": 250}' hands the 250 over as a string: it is read as the
    number the schema asks for (a budget the guard can compare), and a word there still names the key."""
    assert load_config({"preset": "paper", "judging": {"max_usd": "250"}})["judging"]["max_usd"] == 250
    assert load_config({"preset": "paper", "judging": {"max_usd": "12.5", "mode": "batch"}})["judging"] == {
        "max_usd": 12.5, "mode": "batch"}
    with pytest.raises(ConfigError, match=r"judging.max_usd.*'lots' is not of type 'number'"):
        load_config({"preset": "paper", "judging": {"max_usd": "lots"}})
