# TGDPO reproduction workflow. Stages: base model -> preference pairs -> training -> generation ->
# judging -> scoring -> Table 1 + figures. Each stage is one rule file; the Python they run lives in
# the `reproduce` package and reads one resolved job config per run (written beside its output).
#
#   snakemake --cores all reproduce_table1                      # tiny preset (CPU, offline)
#   snakemake --cores all reproduce_table1 --config preset=paper  # the paper's four settings (GPUs, APIs)
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

import os
import subprocess

from reproduce.ablation_models import ablation_spec
from reproduce.config import ROOT, ConfigError, load_config
from reproduce.job_resources import StageResources
from reproduce.workflow import (Paths, config_arg, doctor_command, generate_jobs_arg, generate_launcher, job_arg,
                                slurm_partition, train_launcher, wildcard_pattern)

try:
    CFG = load_config(config)  # validated against reproduce/schemas/*.schema.yaml before any job runs
    R = StageResources(CFG)  # per-stage threads, memory, runtime, GPUs from the preset (never the host's cores)
    ablation_spec(CFG)  # the preset's 'ablations' checked against its recipe (an error names the key)
except ConfigError as e:
    raise WorkflowError(f"config error: {e}") from None

P = Paths(CFG)
# Every rule's environment under --sdm conda (reproduce/rules/env.yaml installs this checkout, named by
# REPRODUCE_ROOT); otherwise jobs run in the environment Snakemake started in.
CONDA_ENV = str(ROOT / "reproduce" / "rules" / "env.yaml")
os.environ.setdefault("REPRODUCE_ROOT", str(ROOT))

wildcard_constraints:
    setting=wildcard_pattern(CFG["settings"]),
    # seed variants (dpo-s43) for reproduce_seeds; the ablations' methods and step models (tgdpo_a1-step60)
    method=wildcard_pattern(P.wildcard_methods()),
    model=wildcard_pattern(P.wildcard_models()),
    benchmark=wildcard_pattern(CFG["benchmarks"]),
    judge=wildcard_pattern(CFG["judges"]),


onstart:
    # The preflight (reproduce/doctor/) before any job; presets without `doctor: true` skip it, and
    # Snakemake runs no onstart on dry runs (-n). A blocker stops the workflow before it submits anything.
    _executor = getattr(workflow.executor_plugin, "name", None)
    _partition = slurm_partition(workflow.resource_settings) if _executor == "slurm" else None
    _doctor = doctor_command(CFG, config, _executor, _partition)
    if _doctor and subprocess.run(_doctor).returncode != 0:
        raise WorkflowError("reproduce doctor found a blocker (lines above); fix it, or skip the check with "
                            "--config doctor=false")


include: "reproduce/rules/base.smk"
include: "reproduce/rules/train.smk"
include: "reproduce/rules/generate.smk"
include: "reproduce/rules/judge.smk"
include: "reproduce/rules/report.smk"
include: "reproduce/rules/seeds.smk"
include: "reproduce/rules/plan.smk"
include: "reproduce/rules/bridge.smk"
include: "reproduce/rules/ablations.smk"


rule reproduce_table1:
    """Table 1 (csv, md, tex) for the preset's table judge, plus its figures."""
    input:
        P.table1(CFG["table_judge"]),
        P.figures(),


rule all:
    """Everything: Table 1 for every configured judge (other judges re-judge the cached answers), the
    judge-agreement report, the paired method differences, every figure the config supports, results/report.md
    and results/report.html (Table 1 down to each verdict)."""
    input:
        P.all_tables(),
        P.judge_agreement() if len(CFG["judges"]) > 1 else [],
        P.method_differences() if "method_differences" in P.figure_names() else [],
        P.figures(P.figure_names()),
        P.report(),
        P.report_html(),
