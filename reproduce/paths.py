"""Every result path, built in one place: each names what produced it (setting, model, benchmark, judge).

The workflow (:class:`reproduce.workflow.Paths`, which adds what depends on the config), the stages and
the report all take their paths from :class:`ResultPaths`; ``tests/test_architecture.py`` checks that no
other module builds one by hand. Paths are strings (Snakemake's inputs and outputs are) under ``root``.
"""

from __future__ import annotations

from pathlib import Path

from reproduce.config import ROOT

RESULTS = "results"
# Written by a training job with precomputed token log-probs beside its model: which cached row is which pair.
TOKEN_INDEX = "token_logps_index.json"


def repo_path(path: str) -> Path:
    """A path from the config: absolute as given, relative ones from the repository root (the workflow may
    run in any working directory, ``snakemake -d``)."""
    return Path(path) if Path(path).is_absolute() else ROOT / path


def config_beside(path: str | Path) -> Path:
    """The resolved config a stage writes beside an output file (``x.jsonl`` -> ``x.config.json``)."""
    path = Path(path)
    return path.with_name(path.name.split(".")[0] + ".config.json")


def failures_beside(judgments: str | Path) -> Path:
    """The failed games a judge job records beside its judgments (``x.jsonl`` -> ``x.failures.json``)."""
    judgments = Path(judgments)
    return judgments.with_name(judgments.stem + ".failures.json")


def step_save_dir(checkpoint_dir: str | Path, step: int | str) -> Path:
    """Where a run writing its checkpoints to ``checkpoint_dir`` saves its weights at ``step`` (``eval_steps``)."""
    return Path(checkpoint_dir) / "eval" / f"step-{int(step)}"


class ResultPaths:
    """The layout of one results directory (``root``, default ``results``)."""

    def __init__(self, root: str | Path = RESULTS):
        self.r = str(root)

    def model_dir(self, setting: str, model: str) -> str:
        """The directory of a trained (or starting, model "sft") model."""
        return f"{self.r}/models/{setting}/{model}"

    def checkpoints(self, setting: str, method: str) -> str:
        """A training run's resumable checkpoints, and (under ``eval/``) its weights-only eval-step saves;
        outside any Snakemake output, so a failed job's cleanup leaves them for the rerun."""
        return f"{self.r}/checkpoints/{setting}/{method}"

    def step_save(self, setting: str, method: str, step: int | str) -> str:
        """The weights-only save of ``method`` at ``step`` (kept apart from the resumable ``checkpoint-*``)."""
        return str(step_save_dir(self.checkpoints(setting, method), step))

    def ablation_tables(self) -> list[str]:
        """The ablations table (md, csv) and its data (json: rows, paired differences, curves)."""
        return [f"{self.tables_dir()}/ablations.{ext}" for ext in ("md", "csv", "json")]

    def token_index(self, setting: str, model: str) -> str:
        """The index from a trained model's preference pairs to its per-token log-prob cache (the
        reference's and, for TGDPO, the guide's values), written by its training job."""
        return f"{self.model_dir(setting, model)}/{TOKEN_INDEX}"

    def prefs(self, setting: str) -> str:
        """A setting's preference pairs."""
        return f"{self.r}/data/{setting}/prefs.jsonl"

    def reference_answers(self, benchmark: str) -> str:
        """A benchmark's own reference/baseline answers (when its reference is not a model of the run)."""
        return f"{self.r}/answers/{benchmark}/_reference.jsonl"

    def baseline_answers(self, benchmark: str, setting: str, bench_cfg: dict) -> str:
        """The answers a benchmark compares against: a model's of the run (``reference.kind: model``), else
        the benchmark's own reference answers."""
        ref = bench_cfg.get("reference", {})
        if ref.get("kind") == "model":
            return self.answers(benchmark, setting, ref["name"])
        return self.reference_answers(benchmark)

    def answers_dir(self) -> str:
        """Where every answers file lies (one folder per benchmark)."""
        return f"{self.r}/answers"

    def answers(self, benchmark: str, setting: str, model: str) -> str:
        """Answers of one model."""
        return f"{self.r}/answers/{benchmark}/{setting}/{model}.jsonl"

    def judge_dir(self, benchmark: str, judge: str) -> str:
        """One judge's judgments of one benchmark (one folder per setting, and the judge's ``_cache``)."""
        return f"{self.r}/judgments/{benchmark}/{judge}"

    def judge_cache(self, benchmark: str, judge: str) -> str:
        """The judge's cache folder on one benchmark (each job appends to its own file in it)."""
        return f"{self.judge_dir(benchmark, judge)}/_cache"

    def spend_ledger(self) -> str:
        """The spend ledger every billed judge request of this results folder goes through (judging.max_usd)."""
        return f"{self.r}/judgments/_spend.jsonl"

    def judgments(self, benchmark: str, judge: str, setting: str, model: str) -> str:
        """Native judgments of one model's answers by one judge."""
        return f"{self.judge_dir(benchmark, judge)}/{setting}/{model}.jsonl"

    def score(self, benchmark: str, judge: str, setting: str, model: str) -> str:
        """Scores of one model on one benchmark by one judge."""
        return f"{self.r}/scores/{benchmark}/{judge}/{setting}/{model}.json"

    def bridge_dir(self, judge: str, benchmark: str) -> str:
        """The bridge report of one current judge onto a retired one, on one benchmark."""
        return f"{self.r}/bridge/{judge}/{benchmark}"

    def logs_dir(self) -> str:
        """The jobs' logs (one folder per stage)."""
        return f"{self.r}/logs"

    def timings_dir(self) -> str:
        """The jobs' wall time and peak memory (Snakemake ``benchmark:`` files, one folder per stage)."""
        return f"{self.r}/benchmarks"

    def tables_dir(self) -> str:
        """Where the tables go (Table 1, agreement, differences)."""
        return f"{self.r}/tables"

    def report(self) -> str:
        """The one report file embedding every table and figure."""
        return f"{self.r}/report.md"

    def report_html(self) -> str:
        """The HTML report (its assets and data scripts go to ``report_files/`` beside it)."""
        return f"{self.r}/report.html"
