"""Training seeds as a config axis: the seeds DAG, its paths, the first seed's unchanged jobs, the seeds
Table 1 (mean and spread from score files, exact values) and the paired comparisons over seeds.

The workflow parts are Snakemake dry runs from empty scratch directories; the tables are built from score
and judgment files written here in the workflow's formats (scored by the real benchmark scorers).
"""

from __future__ import annotations

import csv
import json
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.config import ConfigError, load_config
from reproduce.io import DataError

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [42, 43, 44]


def _plan(workdir: Path, *args: str) -> str:
    """Snakemake's dry-run plan (with shell commands) of the repository's Snakefile in an empty ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "2", "-s", str(ROOT / "Snakefile"),
                          "-d", str(workdir), *args], cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Nothing to be done" not in out.stdout
    return out.stdout


def _commands(plan: str, overrides: bool = True) -> list[str]:
    """The plan's shell commands, sorted (``overrides=False``: without the --config-json the report jobs get)."""
    lines = sorted(line for line in plan.splitlines() if line.startswith("Shell command:"))
    return lines if overrides else [re.sub(r"--config-json '[^']*' ", "", line) for line in lines]


def _count(plan: str, rule: str) -> int:
    table = plan[plan.index("Job stats:"):]
    return int(re.search(rf"^{rule}\s+(\d+)$", table, re.M).group(1))


# ------------------------------------------------------------------ config


def test_duplicate_seeds_are_one_line_naming_the_key():
    with pytest.raises(ConfigError) as e:
        load_config({"preset": "tiny", "seeds": [42, 7, 42]})
    msg = str(e.value)
    assert "\n" not in msg and "key 'seeds'" in msg and "seed 42 is listed more than once" in msg
    with pytest.raises(ConfigError, match="key 'seeds.0'"):
        load_config({"preset": "tiny", "seeds": ["a"]})


def test_duplicate_seeds_stop_the_workflow_before_any_job(tmp_path):
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(ROOT / "Snakefile"),
                          "-d", str(tmp_path), "reproduce_seeds", "--config", "seeds=[1,2,1]"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "key 'seeds': seed 1 is listed more than once" in out.stdout + out.stderr


def test_seed_variants_replace_only_the_seed_and_follow_their_guide():
    from reproduce.config import job_config, trained_methods
    from reproduce.seed_variants import seed_models, training_seeds

    cfg = load_config({"preset": "tiny", "seeds": [42, 7]})
    plain = load_config({"preset": "tiny"})
    recipe = cfg["settings"]["tiny-add"]["methods"]
    assert training_seeds(cfg, "tiny-add", "tgdpo") == [("tgdpo", 42), ("tgdpo-s7", 7)]
    assert recipe["tgdpo-s7"] == {**plain["settings"]["tiny-add"]["methods"]["tgdpo"], "seed": 7, "guide": "dpo-s7"}
    assert seed_models(cfg, "tiny-add", "sft") == ["sft"] and seed_models(cfg, "tiny-add", "dpo", False) == ["dpo"]
    assert trained_methods(cfg, "tiny-add", all_seeds=True) == ["dpo", "simpo", "tgdpo", "dpo-s7", "simpo-s7", "tgdpo-s7"]
    # the first seed is the trainer's default (42): its jobs are a one-seed run's, hash for hash
    for m in ("dpo", "simpo", "tgdpo"):
        assert job_config(cfg, "train", setting="tiny-add", method=m) == job_config(plain, "train", setting="tiny-add", method=m)
    # a first seed other than the default trains the plain names with that seed
    other = load_config({"preset": "tiny", "seeds": [5, 6]})
    assert other["settings"]["tiny-add"]["methods"]["dpo"]["seed"] == 5


# ------------------------------------------------------------------ the DAG


@pytest.mark.slow
def test_first_seed_keeps_the_demo_jobs_and_paths(tmp_path):
    """reproduce_table1 of the tiny preset (which lists seeds 42, 43, 44) plans exactly a one-seed run's jobs:
    the same commands with the same job configs (only the report jobs' --config-json echoes the override)."""
    assert load_config({"preset": "tiny"})["seeds"] == SEEDS
    with_seeds = _plan(tmp_path / "a", "reproduce_table1")
    without = _plan(tmp_path / "b", "reproduce_table1", "--config", "seeds=[42]")
    assert _commands(with_seeds, overrides=False) == _commands(without, overrides=False)
    assert "-s43" not in with_seeds and _count(with_seeds, "train") == 3


@pytest.mark.slow
def test_seeds_dag_paths_say_the_seed(tmp_path):
    plan = _plan(tmp_path, "reproduce_seeds", "--config", "seeds=[42,7]")
    assert _count(plan, "train") == 6 and _count(plan, "base_model") == 1 and _count(plan, "preference_pairs") == 1
    assert _count(plan, "generate") == 7  # sft (shared) + 3 methods x 2 seeds
    assert _count(plan, "table1_seeds") == 1 and _count(plan, "method_differences_seeds") == 1
    models = set(re.findall(r"results/models/tiny-add/([\w-]+)", plan))
    assert models == {"sft", "dpo", "simpo", "tgdpo", "dpo-s7", "simpo-s7", "tgdpo-s7"}
    for kind in ("answers/tiny_arena_hard/tiny-add", "judgments/tiny_arena_hard/verifier/tiny-add",
                 "scores/tiny_mt_bench/verifier-lenient/tiny-add"):
        assert f"results/{kind}/tgdpo-s7." in plan and f"results/{kind}/tgdpo." in plan
    train = [c for c in _commands(plan) if " train --job " in c]
    s7 = next(c for c in train if "--out results/models/tiny-add/tgdpo-s7 " in c)
    job = json.loads(re.search(r"--job '([^']*)'", s7).group(1))
    assert job["method"] == "tgdpo-s7" and job["method_config"]["seed"] == 7 and job["guide_config"]["seed"] == 7
    assert "--guide results/models/tiny-add/dpo-s7 " in s7 and "--checkpoints results/checkpoints/tiny-add/tgdpo-s7 " in s7
    assert "--out-dir results/tables/seeds" in plan


# ------------------------------------------------------------------ the seeds Table 1

# verifier Arena-Hard and MT-Bench scores per (method, seed): means and sample sds worked out by hand below
AH = {"dpo": [60.0, 62.0, 64.0], "simpo": [50.0, 50.0, 53.0], "tgdpo": [70.0, 71.0, 75.0]}


def _write_score(res: Path, bench: str, judge: str, model: str, score: dict) -> None:
    path = res / "scores" / bench / judge / "tiny-add" / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"benchmark": bench, **score}))


def write_seed_scores(res: Path, cfg: dict, skip: set = frozenset(), short: set = frozenset()) -> None:
    """Score files of every method and seed: AE win rate 40 + 5 * seed index (SE 1.5), Arena-Hard from AH,
    MT-Bench score 6 + 0.25 * index. ``skip``: (model, bench) pairs without a file; ``short``: models whose
    Arena-Hard score used 399 of 400 games."""
    from reproduce.seed_variants import training_seeds

    for m in cfg["methods"]:
        for i, (model, _) in enumerate(training_seeds(cfg, "tiny-add", m)):
            ah = 25.0 if m == "sft" else AH[m][i]
            cov = {"n_expected": 400, "n_judged": 399 if model in short else 400}
            scores = {"tiny_alpaca_eval2": {"win_rate": 40 + 5 * i, "standard_error": 1.5},
                      "tiny_arena_hard": {"score": ah, "ci_low": ah - 2, "ci_high": ah + 2, **cov},
                      "tiny_mt_bench": {"score": 6 + 0.25 * i, "win_rate": 20.0}}
            for bench, score in scores.items():
                if (model, bench) not in skip:
                    _write_score(res, bench, "verifier", model, score)


def test_seeds_table_mean_and_spread_exact(tmp_path):
    from reproduce.report.seeds import build_seeds_table

    cfg = load_config({"preset": "tiny", "seeds": SEEDS})
    res = tmp_path / "results"
    write_seed_scores(res, cfg)
    rows = build_seeds_table(cfg, "verifier", res, tmp_path / "out", log=lambda m: None)
    by = {r["method_key"]: r for r in rows}
    assert by["dpo"]["AH"] == 62.0 and by["dpo"]["AH_sd"] == 2.0 and by["dpo"]["AH_n_seeds"] == 3
    assert by["simpo"]["AH"] == 51.0 and by["simpo"]["AH_sd"] == pytest.approx(statistics.stdev([50, 50, 53]), abs=1e-4)
    assert by["tgdpo"]["AH"] == 72.0 and by["tgdpo"]["AH_sd"] == pytest.approx(2.6458, abs=1e-4)
    assert by["dpo"]["AE-WR"] == 45.0 and by["dpo"]["AE-WR_sd"] == 5.0 and by["dpo"]["MT-S"] == 6.25
    assert (by["dpo"]["AH_min"], by["dpo"]["AH_max"]) == (60.0, 64.0)
    md = (tmp_path / "out" / "table1_verifier.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| Tiny addition (CPU) | TGDPO |"))
    assert "| 72.0 ±2.6 (3 seeds) |" in line and "| 45.0 ±5.0 (3 seeds) |" in line and "| 6.25 ±0.25 (3 seeds) |" in line
    sft = next(x for x in md.splitlines() if x.startswith("| Tiny addition (CPU) | SFT |"))
    assert "| 25.0 [23.0, 27.0] |" in sft and "seeds" not in sft  # the shared start: its plain cell
    assert "sample standard deviation between seeds" in md and "INCOMPLETE" not in md
    with open(tmp_path / "out" / "table1_verifier.csv") as f:
        table = list(csv.DictReader(f))
    seeds = [r for r in table if r["row"] == "seed"]
    assert len([r for r in table if r["row"] == "mean over seeds"]) == 4 and len(seeds) == 1 + 3 * 3
    tg = {r["seed"]: r for r in seeds if r["method_key"] == "tgdpo"}
    assert {s: float(r["AH"]) for s, r in tg.items()} == {"42": 70.0, "43": 71.0, "44": 75.0}
    assert tg["43"]["model"] == "tgdpo-s43" and tg["42"]["model"] == "tgdpo" and tg["44"]["method"] == "TGDPO"
    assert "scores/tiny_arena_hard/verifier/tiny-add/tgdpo-s44.json" in tg["44"]["AH_source"]


def test_seeds_table_never_shows_a_short_mean_as_complete(tmp_path):
    from reproduce.report.seeds import build_seeds_table

    cfg = load_config({"preset": "tiny", "seeds": SEEDS})
    res = tmp_path / "results"
    write_seed_scores(res, cfg, skip={("dpo-s44", "tiny_arena_hard")}, short={"simpo-s43"})
    with pytest.raises(DataError, match=r"2 mean\(s\) lack seeds or games: tiny-add/dpo/AH; tiny-add/simpo/AH"):
        build_seeds_table(cfg, "verifier", res, tmp_path / "out", log=lambda m: None)
    md = (tmp_path / "out" / "table1_verifier.md").read_text()  # written first, marked
    assert "| 61.0* ±1.4 (2/3 seeds) |" in md and "| 51.0* ±1.7 (3 seeds, 1 incomplete) |" in md
    assert "INCOMPLETE: 2 mean(s)" in md
    accepted = load_config({"preset": "tiny", "seeds": SEEDS, "accept_incomplete": True})
    rows = build_seeds_table(accepted, "verifier", res, tmp_path / "out2", log=lambda m: None)
    assert next(r for r in rows if r["method_key"] == "dpo")["AH_complete"] is False


def test_seeds_table_carries_the_paper_value_to_every_seed(tmp_path):
    from reproduce.report.seeds import build_seeds_table

    cfg = load_config({"preset": "tiny", "seeds": SEEDS})
    cfg["settings"]["tiny-add"] = {**cfg["settings"]["tiny-add"], "paper_setting": "Llama3-8B PairRM"}
    res = tmp_path / "results"
    write_seed_scores(res, cfg)
    build_seeds_table(cfg, "verifier", res, tmp_path / "out", log=lambda m: None)
    with open(tmp_path / "out" / "table1_verifier.csv") as f:
        table = list(csv.DictReader(f))
    dpo = [r for r in table if r["method_key"] == "dpo"]
    assert {r["AH_paper"] for r in dpo} == {"30.4"}  # the paper's DPO cell, for the mean and each seed
    s44 = next(r for r in dpo if r["seed"] == "44")
    assert float(s44["AH_diff"]) == pytest.approx(64.0 - 30.4) and "paper reports none" not in s44["AH_reason"]
    md = (tmp_path / "out" / "table1_verifier.md").read_text()
    assert "62.0 ±2.0 (3 seeds) (paper 30.4, Δ +31.6)" in md


# ------------------------------------------------------------------ paired comparisons over seeds


def _ah_judgments(res: Path, root: Path, model: str, p_win: float, rng: random.Random, n: int = 40) -> None:
    from reproduce.benchmarks import arena_hard

    recs = []
    for i in range(n):
        g1 = "B>A" if rng.random() < p_win else "A>B"
        g2 = "A>B" if rng.random() < p_win else "B>A"
        recs.append({"question_id": str(i), "model": model, "judge": "verifier", "baseline": "demonstrator",
                     "games": [{"score": g1, "judgment": g1}, {"score": g2, "judgment": g2}]})
    jpath = res / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / f"{model}.jsonl"
    jpath.parent.mkdir(parents=True, exist_ok=True)
    jpath.write_text("".join(json.dumps(r) + "\n" for r in recs))
    _write_score(res, "tiny_arena_hard", "verifier", model,
                 {**arena_hard.score(recs, rounds=5), "judgments": str(jpath.relative_to(root))})


def test_differences_over_seeds_read_every_seed(tmp_path):
    from reproduce.seed_variants import training_seeds
    from reproduce.report.differences import build_differences

    cfg = load_config({"preset": "tiny", "seeds": SEEDS, "benchmarks": ["tiny_arena_hard"], "judges": ["verifier"],
                       "comparisons": ["tgdpo-dpo"]})
    res, rng = tmp_path / "results", random.Random(0)
    for m, p in (("dpo", 0.5), ("tgdpo", 0.6)):
        for i, (model, _) in enumerate(training_seeds(cfg, "tiny-add", m)):
            _ah_judgments(res, tmp_path, model, p + 0.1 * i, rng)
    first = build_differences(cfg, res, tmp_path / "one", rounds=200, log=lambda m: None)
    every = build_differences(cfg, res, tmp_path / "all", rounds=200, log=lambda m: None, all_seeds=True)
    assert first[0]["n_seeds"] == 1 and every[0]["n_seeds"] == 3
    assert "tgdpo-s44.jsonl" in every[0]["judgments_a"] and "-s4" not in first[0]["judgments_a"]
    assert every[0]["p_method"] == "paired bootstrap over seeds and prompts (two-sided)"
    # a missing seed is an error naming its file; nothing is written
    (res / "scores" / "tiny_arena_hard" / "verifier" / "tiny-add" / "dpo-s43.json").unlink()
    with pytest.raises(DataError, match=r"no score file for tiny_arena_hard / verifier / tiny-add / dpo-s43"):
        build_differences(cfg, res, tmp_path / "broken", rounds=50, log=lambda m: None, all_seeds=True)
    assert not (tmp_path / "broken").exists()
