"""What each job asks the scheduler for: threads, memory, runtime and GPUs per stage, from the preset.

Rules read their ``threads:`` and ``resources:`` from here, never from the submitting host (``workflow.cores``
is undefined when jobs go to SLURM, and a login node's core count says nothing about a compute node). The
same numbers serve a local run (threads are capped at ``--cores``) and a SLURM run (the executor plugin turns
``threads`` into ``--cpus-per-task``, ``mem_mb`` into ``--mem``, ``runtime`` into ``-t``, ``gpu`` into ``--gpus``).

The training stage under ``accelerate launch`` asks for exactly the GPUs the accelerate config starts
processes on, so the allocation and the launcher cannot disagree.
"""

from __future__ import annotations

from pathlib import Path

from reproduce.config import ROOT, ConfigError, load_yaml

# Snakemake rule -> preset stage whose resources it takes (report covers every table/figure rule)
RULE_STAGES = {
    "base_model": "base",
    "preference_pairs": "prefs",
    "train": "train",
    "reference_answers": "reference",
    "generate": "generate",
    "judge": "judge",
    "score": "score",
}
STAGES = ("base", "prefs", "train", "reference", "generate", "judge", "score", "report")
# what a stage asks for when the preset is silent: one core, no GPU, the cluster's default memory/runtime
DEFAULT_THREADS = 1
# Stages whose jobs read and write small files for seconds (official scoring, tables, figures, reports): under a
# cluster executor they run on the submitting host, since a queue wait (and the executor's status polling) would
# outlast the job; the preset's ``small_jobs: cluster`` submits them like the rest.
SMALL_STAGES = ("score", "report")


class StageResources:
    """Per-stage threads/resources of one loaded config, checked against its accelerate config."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.src = cfg.get("_file", "preset")
        self.table = cfg.get("resources", {})
        self._check()

    def _stage(self, stage: str) -> dict:
        if stage not in STAGES:
            raise ValueError(f"unknown stage '{stage}' (stages: {', '.join(STAGES)})")
        return {**self.table.get("default", {}), **self.table.get(stage, {})}

    def threads(self, stage: str) -> int:
        """Threads of one job of ``stage`` (also its SLURM --cpus-per-task); training under accelerate on CPU
        gets at least one core per process it starts."""
        threads = int(self._stage(stage).get("threads", DEFAULT_THREADS))
        launch = self.accelerate_launch() if stage == "train" else None
        if launch and launch["use_cpu"]:
            threads = max(threads, launch["num_processes"])
        return threads

    def resources(self, stage: str) -> dict:
        """Snakemake resources of one job of ``stage``: mem_mb, runtime (minutes), gpu, nodes; only what is set.

        A GPU-less stage gets no ``gpu`` key at all, so nothing GPU-shaped reaches a CPU partition.
        """
        spec = self._stage(stage)
        out = {k: int(spec[k]) for k in ("mem_mb", "runtime") if k in spec}
        gpus = self.gpus(stage)
        if gpus:
            out["gpu"] = gpus
            out["nodes"] = 1  # --gpus counts the whole job; without this SLURM may spread it over nodes
        return out

    def gpus(self, stage: str) -> int:
        """GPUs one job of ``stage`` uses: training under accelerate on GPUs -> the config's num_processes."""
        launch = self.accelerate_launch() if stage == "train" else None
        if launch and not launch["use_cpu"]:
            return launch["num_processes"]
        return int(self._stage(stage).get("gpu", 0))

    def accelerate_launch(self) -> dict | None:
        """``{"num_processes", "use_cpu"}`` of the preset's ``training.accelerate_config`` (None: training does
        not run under accelerate). One node only: that is what the train rule's allocation covers."""
        training = self.cfg.get("training", {})
        if training.get("launcher") != "accelerate":
            return None
        path = Path(training["accelerate_config"])
        acc = load_yaml(path if path.is_absolute() else ROOT / path) or {}
        if int(acc.get("num_machines", 1)) != 1:
            raise ConfigError(f"{training['accelerate_config']}: key 'num_machines': the train rule runs on one node "
                              f"(got {acc['num_machines']})")
        return {"num_processes": int(acc.get("num_processes", 1)), "use_cpu": bool(acc.get("use_cpu", False))}

    def judge_api(self, judge: str) -> int:
        """Slots of the ``judge_api`` global resource one judge job holds: its concurrent requests to an
        API (0 for a program judge), so the profile's cap bounds the requests of all judge jobs together."""
        jcfg = self.cfg["judges"][judge]
        return int(jcfg.get("concurrency", 8)) if jcfg.get("kind") == "openai" else 0

    def network_rules(self) -> set[str]:
        """Rules whose jobs need the internet in this config (hub downloads, official benchmark files, API
        judges and API generation)."""
        rules = set()
        for recipe in self.cfg["settings"].values():
            if recipe["base"]["kind"] == "hf" and not recipe["base"].get("local_dir"):
                rules.add("base_model")
            if recipe["preference_data"]["kind"] == "hf_dataset" and not recipe["preference_data"].get("local_dir"):
                rules.add("preference_pairs")
        if any(not b["questions"].get("task") for b in self.cfg["benchmarks"].values()):
            rules.add("reference_answers")
        if any(j.get("kind") == "openai" for j in self.cfg["judges"].values()):
            rules.add("judge")
        if self.cfg.get("generation", {}).get("backend") == "openai":
            rules.add("generate")
        return rules

    def local(self, rule: str) -> bool:
        """Whether ``rule`` runs on the submitting host under a cluster executor: its jobs need the network
        and the preset's ``network_jobs`` is ``submitting_host`` (the default; ``cluster`` submits them), or
        it is a small job (``score``, or ``report`` for every table, figure and report rule) and the preset's
        ``small_jobs`` is ``submitting_host`` (the default)."""
        if rule in SMALL_STAGES:
            return self.cfg.get("small_jobs", "submitting_host") == "submitting_host"
        return self.cfg.get("network_jobs", "submitting_host") == "submitting_host" and rule in self.network_rules()

    def _check(self):
        stated, launch = self.table.get("train", {}).get("gpu"), self.accelerate_launch()
        if stated is not None and launch and stated != (0 if launch["use_cpu"] else launch["num_processes"]):
            raise ConfigError(
                f"{self.src}: key 'resources.train.gpu': {stated} GPUs, but accelerate launch starts "
                f"{launch['num_processes']} {'CPU' if launch['use_cpu'] else 'GPU'} processes "
                f"({self.cfg['training']['accelerate_config']})")
        gen, stated = self.cfg.get("generation", {}), self.table.get("generate", {}).get("gpu")
        if gen.get("backend") == "vllm" and stated and stated < gen.get("tensor_parallel_size", 1):
            raise ConfigError(
                f"{self.src}: key 'resources.generate.gpu': {stated} GPUs, fewer than "
                f"generation.tensor_parallel_size {gen['tensor_parallel_size']}")
