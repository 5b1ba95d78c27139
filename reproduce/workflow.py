"""Helpers the Snakefile uses: output paths (which say what produced them) and job arguments.

Result paths come from :mod:`reproduce.paths` (the one place that builds them); :class:`Paths` adds the
lists that depend on the config, so rules stay declarative and a path always names its setting, method,
benchmark and judge.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from reproduce.ablation_models import ablation_methods, ablation_models, ablation_spec
from reproduce.config import job_config, judge_for, trained_methods
from reproduce.seed_variants import seed_models
from reproduce.paths import RESULTS, ResultPaths, repo_path  # noqa: F401 (repo_path: the Snakefile's)


def wildcard_pattern(keys) -> str:
    """A regex matching exactly the given config keys (wildcards are keys into the config)."""
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))


def train_launcher(cfg: dict) -> str:
    """The command that runs ``reproduce train``: plain, or under ``accelerate launch`` for multi-GPU."""
    training = cfg.get("training", {})
    if training.get("launcher") == "accelerate":
        return f"accelerate launch --config_file {shlex.quote(str(repo_path(training['accelerate_config'])))} -m reproduce.cli"
    return "reproduce"


def generate_launcher(cfg: dict) -> str:
    """The command that runs ``reproduce generate``: the workflow's own, or the preset's ``generation.python``
    (an interpreter with vLLM installed, e.g. ``.venv-vllm/bin/python``; a relative path is taken from the
    repository root, so the workflow can run in any working directory)."""
    python = cfg.get("generation", {}).get("python")
    if not python:
        return "reproduce"
    return f"{shlex.quote(str(repo_path(python)))} -m reproduce.cli"


def generate_jobs_arg(cfg: dict, setting: str, model: str) -> str:
    """The resolved job configs of one model's generation job, one per benchmark, as a JSON list argument."""
    jobs = [job_config(cfg, "generate", setting=setting, method=model, benchmark=b) for b in cfg["benchmarks"]]
    return shlex.quote(json.dumps(jobs, sort_keys=True))


def doctor_command(cfg: dict, config: dict, executor: str | None = None, partition: str | None = None) -> list[str] | None:
    """The ``reproduce doctor`` command (argv) the workflow's ``onstart:`` runs before any job, or None: only
    for a preset that asks for it (``doctor: true``, the paper preset; ``--config doctor=false`` turns it
    off), never for presets that run offline on CPUs (tiny, rehearsal). Under the SLURM executor it checks
    the partition's GPUs (``sinfo``) instead of the submit host's. Snakemake skips ``onstart:`` on dry runs."""
    if not cfg.get("doctor"):
        return None
    argv = ["reproduce", "doctor", "--config-json", json.dumps(dict(config), sort_keys=True), "--results", RESULTS]
    if executor == "slurm":
        argv += ["--slurm"] + (["--partition", partition] if partition else [])
    return argv


def slurm_partition(resource_settings) -> str | None:
    """The partition given with ``--default-resources slurm_partition=NAME`` (Snakemake's
    ``workflow.resource_settings``), or None when none was given."""
    try:
        value = resource_settings.default_resources["slurm_partition"]
    except (KeyError, TypeError, AttributeError):
        return None
    # a command-line resource is an expression evaluated per job; its text is the partition's name
    text = str(getattr(value, "raw", value)).strip("'\"")
    return text or None


def config_arg(config: dict) -> str:
    """The Snakemake config (preset name + command-line overrides) as a shell-quoted JSON argument."""
    return shlex.quote(json.dumps(dict(config), sort_keys=True))


def job_arg(cfg: dict, stage: str, **keys) -> str:
    """The resolved job config as a shell-quoted JSON argument."""
    return shlex.quote(json.dumps(job_config(cfg, stage, **keys), sort_keys=True))


class Paths(ResultPaths):
    """All workflow paths for one loaded config."""

    def __init__(self, cfg: dict, results: str = RESULTS):
        super().__init__(results)
        self.cfg = cfg

    def trained_methods(self, all_seeds: bool = False) -> list[str]:
        """Every method trained in any setting (Table-1 methods and their guidance models; ``all_seeds``:
        also the models of the preset's further training ``seeds``)."""
        out = []
        for s in self.cfg["settings"]:
            out += [m for m in trained_methods(self.cfg, s, all_seeds) if m not in out]
        return out

    def answering_models(self, all_seeds: bool = False) -> list[str]:
        """Models whose answers get generated: "sft" and the trained methods."""
        return ["sft", *self.trained_methods(all_seeds)]

    def wildcard_methods(self) -> list[str]:
        """Every name the train rule's ``{method}`` may take: every seed's methods, then the ablations'."""
        out = self.trained_methods(all_seeds=True)
        return out + [m for m in ablation_methods(self.cfg) if m not in out]

    def wildcard_models(self) -> list[str]:
        """Every name the generate, judge and score rules' ``{model}`` may take: every seed's answering models,
        then the ablations' methods and step models (``<method>-step<N>``)."""
        out = self.answering_models(all_seeds=True)
        return out + [m for m in ablation_models(self.cfg) if m not in out]

    # -- the paper's ablations (reproduce_ablations) -----------------------------------------------
    def ablation_scores(self) -> list[str]:
        """Every score file the ablations table reads: each ablation model on each ablation benchmark, by
        the table judge (routed as Table 1 routes it)."""
        spec = ablation_spec(self.cfg)
        if not spec:
            return []
        tj, s = self.cfg["table_judge"], spec["setting"]
        return [self.score(b, judge_for(self.cfg, b, tj), s, m) for m in ablation_models(self.cfg, spec)
                for b in spec["benchmarks"]]

    def ablation_inputs(self) -> list[str]:
        """What the ablations table and figures read: the scores, their judgments (paired differences) and the
        trained models (train_log.jsonl, train_summary.json)."""
        spec = ablation_spec(self.cfg)
        if not spec:
            return []
        tj, s = self.cfg["table_judge"], spec["setting"]
        judgments = [self.judgments(b, judge_for(self.cfg, b, tj), s, m) for m in ablation_models(self.cfg, spec)
                     for b in spec["benchmarks"]]
        return self.ablation_scores() + judgments + [self.model_dir(s, m) for m in ablation_methods(self.cfg, spec)]

    def ablation_figures(self) -> list[str]:
        """One figure per ablation (PNG + PDF)."""
        from reproduce.report.ablations import FIGURE_NAMES

        return [p for n in FIGURE_NAMES for p in self.figure(n)]

    def guide_input(self, w) -> dict:
        """Input function of the train rule: TGDPO's guidance model directory, when the guide is a method of
        the recipe (an external ``{model, revision}`` guide is fetched by the training job itself)."""
        guide = self.cfg["settings"][w.setting]["methods"][w.method].get("guide")
        return {"guide": self.model_dir(w.setting, guide)} if isinstance(guide, str) else {}

    def reference(self, benchmark: str, setting: str) -> str:
        """Reference/baseline answers a benchmark compares against."""
        return self.baseline_answers(benchmark, setting, self.cfg["benchmarks"][benchmark])

    def all_scores(self, judge: str, routed: bool = True) -> list[str]:
        """Every score file Table 1 for ``judge`` needs (``routed``: benchmarks with their own official judge
        in ``benchmark_judges`` take that judge's scores); ``routed=False``: ``judge``'s own scores of all."""
        return [self.score(b, judge_for(self.cfg, b, judge) if routed else judge, s, m)
                for s in self.cfg["settings"] for m in self.cfg["methods"] for b in self.cfg["benchmarks"]]

    def table1(self, judge: str) -> list[str]:
        """Table 1 files (csv, md, tex) for one judge (the table judge's under the plain name ``table1``)."""
        stem = "table1" if judge == self.cfg["table_judge"] else f"table1_{judge}"
        return [f"{self.tables_dir()}/{stem}.{ext}" for ext in ("csv", "md", "tex")]

    def all_tables(self) -> list[str]:
        """Table 1 for every configured judge."""
        return [p for j in self.cfg["judges"] for p in self.table1(j)]

    def judge_agreement(self) -> list[str]:
        """The judge-agreement report (only meaningful with two or more judges)."""
        return [f"{self.tables_dir()}/judge_agreement.{ext}" for ext in ("md", "csv", "json")]

    def figure(self, name: str) -> list[str]:
        """One figure, PNG (slides) and PDF (papers)."""
        return [f"figures/{name}.png", f"figures/{name}.pdf"]

    def figure_names(self) -> list[str]:
        """The figures this config supports (judge scatter with 2+ judges, alpha plot with an alpha sweep)."""
        from reproduce.report.figures import default_figures

        return default_figures(self.cfg)

    def figures(self, names: list[str] | None = None) -> list[str]:
        """The figures the report embeds (PNG + PDF); by default the table-judge figures only
        (no judge scatter, no alpha plot, no method differences), which ``reproduce_table1`` builds."""
        if names is None:
            names = [n for n in self.figure_names() if n not in ("judge_scatter", "alpha_sensitivity", "method_differences")]
        return [p for n in names for p in self.figure(n)]

    def figure_inputs(self, name: str) -> list[str]:
        """What one figure is drawn from (so Snakemake redraws it when a result changes)."""
        tj = self.cfg["table_judge"]
        settings = list(self.cfg["settings"])
        if name == "alpha_sensitivity" and name not in self.figure_names():
            from reproduce.report.figures import sweep_message

            raise ValueError(f"alpha_sensitivity: {sweep_message(self.cfg)}")
        if name in ("scores_by_benchmark", "alpha_sensitivity"):
            return self.all_scores(tj)
        if name == "length_bias":
            return self.all_scores(tj) + [self.answers(b, s, m) for b in self.cfg["benchmarks"] for s in settings
                                          for m in self.cfg["methods"]]
        if name == "judge_scatter":  # judge vs judge: each judge's own scores
            return [p for j in self.cfg["judges"] for p in self.all_scores(j, routed=False)]
        if name == "training_curves":
            return [self.model_dir(s, m) for s in settings for m in self.trained_methods()]
        if name == "token_rewards":
            s = settings[0]  # the TGDPO models: their training wrote the index into the log-prob cache
            guided = sorted(m for m, mc in self.cfg["settings"][s]["methods"].items()
                            if m in self.cfg["methods"] and mc.get("loss") == "tgdpo" and mc.get("guide"))
            return [self.model_dir(s, "sft"), self.prefs(s), *[self.model_dir(s, m) for m in guided]]
        if name == "method_differences":
            return [f"{self.tables_dir()}/method_differences.json"]
        raise ValueError(f"unknown figure '{name}'")

    def method_differences(self, all_seeds: bool = False) -> list[str]:
        """The paired method comparisons and the planning built from them (``reproduce differences``;
        ``all_seeds``: over every training seed, in ``tables/seeds/``)."""
        tables = self.seeds_tables_dir() if all_seeds else self.tables_dir()
        return [f"{tables}/{stem}.{ext}" for stem, exts in (("method_differences", ("csv", "md", "json")),
                                                            ("power", ("csv", "md"))) for ext in exts]

    def differences_inputs(self, all_seeds: bool = False) -> list[str]:
        """What the comparisons read: every judge's own score and judgments files of the compared methods
        (``all_seeds``: of each of their training seeds)."""
        from reproduce.report.differences import resolve_pairs

        methods = sorted({m for pair in resolve_pairs(self.cfg) for m in pair})
        return [p for j in self.cfg["judges"] for b in self.cfg["benchmarks"] for s in self.cfg["settings"]
                for m in methods for sm in seed_models(self.cfg, s, m, all_seeds)
                for p in (self.score(b, j, s, sm), self.judgments(b, j, s, sm))]

    def seeds_tables_dir(self) -> str:
        """Where the seeds target writes its tables (mean and spread over the preset's training seeds)."""
        return f"{self.tables_dir()}/seeds"

    def seeds_table1(self, judge: str) -> list[str]:
        """Table 1 over every training seed (csv with the per-seed rows, md) for one judge."""
        return [f"{self.seeds_tables_dir()}/table1_{judge}.{ext}" for ext in ("csv", "md")]

    def seeds_scores(self, judge: str) -> list[str]:
        """Every score file the seeds Table 1 of ``judge`` reads: each Table-1 method's every seed."""
        return [self.score(b, judge_for(self.cfg, b, judge), s, sm)
                for s in self.cfg["settings"] for m in self.cfg["methods"]
                for sm in seed_models(self.cfg, s, m) for b in self.cfg["benchmarks"]]

    def report_html_inputs(self) -> list[str]:
        """What the HTML report reads besides the report's inputs: every answers and judgments file of the
        drill-down, and for the token-reward strips the pairs, the reference's tokenizer and the TGDPO models
        (whose training wrote the index into the log-prob cache beside them)."""
        c = self.cfg
        out = [p for b in c["benchmarks"] for s in c["settings"]
               for p in [self.reference(b, s), *[self.answers(b, s, m) for m in c["methods"]],
                         *[self.judgments(b, j, s, m) for j in c["judges"] for m in c["methods"]]]]
        for s in c["settings"]:
            guided = sorted(m for m, mc in c["settings"][s]["methods"].items()
                            if m in c["methods"] and mc.get("loss") == "tgdpo" and mc.get("guide"))
            if guided:
                out += [self.model_dir(s, "sft"), self.prefs(s), *[self.model_dir(s, m) for m in guided]]
        return sorted(set(out))
