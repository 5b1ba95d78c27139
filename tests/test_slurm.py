"""SLURM for real: the README's cluster command runs the tiny Table 1 on a single-node cluster, plus what jobs
ask SLURM for.

The ``slurm``-marked test starts the cluster with scripts/slurm_cluster.sh (Debian's slurm-wlm + munge, one
CPU partition, no accounting; tests/support/slurm.py) and is skipped, with the reason, where it cannot be
started (not root, no apt-get). The tiny run compares its Table 1 with the local run's in .ci-work/tiny
(perf/tiny_e2e.py makes it before pytest in CI; $REPRODUCE_LOCAL_TINY names another finished local run),
starting from that run's base model: the base SFT is the same job in every run and most of the run's time,
and its own submission through SLURM is what tests/test_slurm_faults.py's time-limit test runs (to its kill),
beside the other failures on a cluster. The other tests here read the plan (dry runs) and the preset
resources and need no cluster.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from perf.slurm_e2e import differing_tables, seed_base_models
from tests.support.slurm import partition  # noqa: F401  (the cluster fixture)

ROOT = Path(__file__).resolve().parent.parent
LOCAL_TINY = Path(os.environ.get("REPRODUCE_LOCAL_TINY", ROOT / ".ci-work" / "tiny"))


# ---------------------------------------------------------------- the tiny run through the cluster


def _planned_jobs(workdir: Path, target: str) -> dict[str, int]:
    """Jobs per rule that a dry run of ``target`` in ``workdir`` plans (what is there already is not planned)."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          target, "--cores", "1"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    table = out.stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"}


def _rules_run(log: str, kind: str) -> dict[str, int]:
    """Jobs per rule that a Snakemake log says ran as ``kind`` (``rule``: submitted; ``localrule``: on the
    submitting host)."""
    counts: dict[str, int] = {}
    for rule in re.findall(rf"^{kind} (\w+):$", log, re.M):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


@pytest.mark.slurm
@pytest.mark.slow
def test_tiny_table1_through_slurm_equals_the_local_run(partition, tmp_path):  # noqa: F811
    local_tables = LOCAL_TINY / "results" / "tables"
    if not (local_tables / "table1.csv").exists():
        pytest.skip(f"no finished local tiny run in {LOCAL_TINY} to compare with (run perf/tiny_e2e.py)")
    work = tmp_path / "slurm"
    (tmp_path / "plan").mkdir()
    assert seed_base_models(LOCAL_TINY, tmp_path / "plan") == ["results/models/tiny-add/sft"]
    planned = _planned_jobs(tmp_path / "plan", "reproduce_table1")
    # the benchmark is the run: it times it, counts its SLURM jobs and compares Table 1 (reported with -s)
    proc = subprocess.run([sys.executable, str(ROOT / "perf" / "slurm_e2e.py"), "--workdir", str(work),
                           "--local-workdir", str(LOCAL_TINY), "--reuse-base"], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-6000:]
    assert differing_tables(work / "results" / "tables", local_tables) == []
    metrics = json.loads((work / "slurm_e2e.json").read_text())
    log = (work / "snakemake.log").read_text()
    assert metrics["reused_from_local"] == ["results/models/tiny-add/sft"]
    assert "base_model" not in log
    # every planned job ran once: the compute stages' through sbatch, scoring and the tables on this host
    # (small jobs, job_resources.SMALL_STAGES), and the target rule itself, which has nothing to run
    small = {"score", "table1", "table1_main", "figure", "reproduce_table1"}
    submitted, local = _rules_run(log, "rule"), _rules_run(log, "localrule")
    assert submitted == {r: n for r, n in planned.items() if r not in small}, (submitted, planned)
    assert set(submitted) == {"preference_pairs", "train", "reference_answers", "generate", "judge"}
    assert local == {r: n for r, n in planned.items() if r in small}, (local, planned)
    assert metrics["slurm_jobs"] == sum(submitted.values()) > 20, metrics


# ---------------------------------------------------------------- what jobs ask for (no cluster)


def _plan_resources(workdir: Path, *args: str) -> dict[str, list[dict]]:
    """Per rule, the resources (and threads) of each planned job in a dry run through the SLURM profile."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                          "reproduce_table1", "--profile", str(ROOT / "config" / "slurm"),
                          "--default-resources", "slurm_partition=p", *args],
                         cwd=workdir, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    plan: dict[str, list[dict]] = {}
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out.stdout):
        m = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if m and res:
            plan.setdefault(m.group(1), []).append(dict(kv.split("=", 1) for kv in res.group(1).split(", ")))
    return plan


@pytest.mark.slow
def test_tiny_jobs_ask_for_no_gpu(tmp_path):
    plan = _plan_resources(tmp_path)
    assert {"base_model", "train", "generate", "judge"} <= set(plan)
    for rule, jobs in plan.items():
        for job in jobs:
            assert "gpu" not in job and "gpus" not in job and "gres" not in job, (rule, job)
    assert {j["mem_mb"] for j in plan["train"]} == {"6000"} and {j["judge_api"] for j in plan["judge"]} == {"0"}


def test_paper_jobs_ask_for_what_their_launchers_use(tmp_path):
    plan = _plan_resources(tmp_path, "--config", "preset=paper")
    acc = yaml.safe_load((ROOT / "config/accelerate/fsdp_full_shard.yaml").read_text())
    assert {(j["gpu"], j["nodes"]) for j in plan["train"]} == {(str(acc["num_processes"]), "1")}
    assert {j["gpu"] for j in plan["generate"]} == {"1"}
    for rule in set(plan) - {"train", "generate"}:
        assert all("gpu" not in j for j in plan[rule]), rule
    # each judge job holds its judge's concurrency in judge_api slots
    assert {j["judge_api"] for j in plan["judge"]} == {"8"}


def test_profile_caps_judge_api_above_every_judge_concurrency():
    profile = yaml.safe_load((ROOT / "config/slurm/config.yaml").read_text())
    caps = dict(r.split("=") for r in profile["resources"])
    concurrency = [yaml.safe_load(p.read_text()).get("concurrency", 8) for p in (ROOT / "evals/judges").glob("*.yaml")
                   if yaml.safe_load(p.read_text())["kind"] == "openai"]
    assert 0 < max(concurrency) <= int(caps["judge_api"])
    assert "default-resources" not in profile  # the command line's would replace it as a whole


def test_training_gpus_disagreeing_with_accelerate_is_one_line():
    from reproduce.config import ConfigError, load_config
    from reproduce.job_resources import StageResources

    with pytest.raises(ConfigError, match=r"^config/presets/paper.yaml: key 'resources.train.gpu': 4 GPUs, but "
                                          r"accelerate launch starts 8 GPU processes"):
        StageResources(load_config({"preset": "paper", "resources": {"train": {"gpu": 4}}}))


def test_network_jobs_run_on_the_submitting_host_unless_told():
    from reproduce.config import load_config
    from reproduce.job_resources import StageResources

    paper = StageResources(load_config({"preset": "paper"}))
    assert {r for r in ("base_model", "preference_pairs", "judge", "train", "generate")
            if paper.local(r)} == {"base_model", "preference_pairs", "judge"}
    assert not any(StageResources(load_config({"preset": "paper", "network_jobs": "cluster"})).local(r)
                   for r in ("base_model", "judge"))
    assert StageResources(load_config({"preset": "tiny"})).network_rules() == set()


def test_small_jobs_run_on_the_submitting_host_unless_told():
    from reproduce.config import load_config
    from reproduce.job_resources import StageResources

    for preset in ("tiny", "paper"):
        assert StageResources(load_config({"preset": preset})).local("score")
        assert StageResources(load_config({"preset": preset})).local("report")
        cluster = StageResources(load_config({"preset": preset, "small_jobs": "cluster"}))
        assert not cluster.local("score") and not cluster.local("report")
    assert not StageResources(load_config({"preset": "tiny"})).local("train")


def test_rules_conda_env_pip_lines_resolve(tmp_path):
    """Every rule's conda: is reproduce/rules/env.yaml (snakemake --lint checks each rule has one); pip resolves
    its lines, the checkout named by ${REPRODUCE_ROOT} (conda hands pip these lines as a requirements file)."""
    env = yaml.safe_load((ROOT / "reproduce/rules/env.yaml").read_text())
    pip_lines = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    (tmp_path / "req.txt").write_text("\n".join(pip_lines) + "\n")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-build-isolation",
                          "-r", str(tmp_path / "req.txt")], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "REPRODUCE_ROOT": str(ROOT)})
    assert pip.returncode == 0 and "Would install reproduce-tgdpo" in pip.stdout, pip.stdout[-1000:] + pip.stderr[-1000:]


def test_sdm_conda_dry_run_builds_nothing(tmp_path):
    if not shutil.which("conda"):
        pytest.skip("conda is not installed (Snakemake asks conda where environments live even in a dry run)")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--sdm", "conda", "-s", str(ROOT / "Snakefile"),
                          "-d", str(tmp_path), "reproduce_table1", "--cores", "1"], cwd=tmp_path, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not any((tmp_path / ".snakemake" / "conda").glob("*/"))
