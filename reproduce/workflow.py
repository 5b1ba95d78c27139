"""Helpers the Snakefile uses: output paths (which say what produced them) and job arguments.

Every path is built here, so rules stay declarative and a path always names its setting, method,
benchmark and judge.
"""

from __future__ import annotations

import json
import re
import shlex

from reproduce.config import job_config, trained_methods

RESULTS = "results"


def wildcard_pattern(keys) -> str:
    """A regex matching exactly the given config keys (wildcards are keys into the config)."""
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))


def job_arg(cfg: dict, stage: str, **keys) -> str:
    """The resolved job config as a shell-quoted JSON argument."""
    return shlex.quote(json.dumps(job_config(cfg, stage, **keys), sort_keys=True))


class Paths:
    """All workflow paths for one loaded config."""

    def __init__(self, cfg: dict, results: str = RESULTS):
        self.cfg, self.r = cfg, results

    def trained_methods(self) -> list[str]:
        """Every method trained in any setting (Table-1 methods and their guidance models)."""
        out = []
        for s in self.cfg["settings"]:
            out += [m for m in trained_methods(self.cfg, s) if m not in out]
        return out

    def answering_models(self) -> list[str]:
        """Models whose answers get generated: "sft" and the trained methods."""
        return ["sft", *self.trained_methods()]

    def model_dir(self, setting: str, method: str) -> str:
        """The directory of a trained (or starting, method "sft") model."""
        return f"{self.r}/models/{setting}/{method}"

    def guide_input(self, w) -> dict:
        """Input function of the train rule: TGDPO's guidance model directory, when the method has one."""
        guide = self.cfg["settings"][w.setting]["methods"][w.method].get("guide")
        return {"guide": self.model_dir(w.setting, guide)} if guide else {}

    def reference(self, benchmark: str, setting: str) -> str:
        """Reference/baseline answers a benchmark compares against."""
        ref = self.cfg["benchmarks"][benchmark].get("reference", {})
        if ref.get("kind") == "model":
            return self.answers(benchmark, setting, ref["name"])
        return f"{self.r}/answers/{benchmark}/_reference.jsonl"

    def answers(self, benchmark: str, setting: str, model: str) -> str:
        """Answers of one model."""
        return f"{self.r}/answers/{benchmark}/{setting}/{model}.jsonl"

    def judgments(self, benchmark: str, judge: str, setting: str, model: str) -> str:
        """Native judgments of one model's answers by one judge."""
        return f"{self.r}/judgments/{benchmark}/{judge}/{setting}/{model}.jsonl"

    def score(self, benchmark: str, judge: str, setting: str, model: str) -> str:
        """Scores of one model on one benchmark by one judge."""
        return f"{self.r}/scores/{benchmark}/{judge}/{setting}/{model}.json"

    def all_scores(self, judge: str) -> list[str]:
        """Every score file Table 1 for ``judge`` needs."""
        return [self.score(b, judge, s, m) for s in self.cfg["settings"] for m in self.cfg["methods"]
                for b in self.cfg["benchmarks"]]

    def table1(self, judge: str) -> list[str]:
        """Table 1 files for one judge (the table judge's also under the plain name)."""
        stem = "table1" if judge == self.cfg["table_judge"] else f"table1_{judge}"
        return [f"{self.r}/tables/{stem}.csv", f"{self.r}/tables/{stem}.md"]

    def figures(self) -> list[str]:
        """The figures the report embeds."""
        return [f"figures/scores_by_benchmark.png", f"figures/training_curves.png"]
