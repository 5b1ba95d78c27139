"""Every preflight check of one config, in the order a reader fixes them: hub, disk, GPUs (and SLURM),
judge keys, the spending cap, official files."""

from __future__ import annotations

from pathlib import Path

from reproduce.doctor import hub, inputs, machine
from reproduce.doctor.result import Check


def preflight(cfg: dict, results: str | Path = "results", no_budget: bool = False, slurm: bool = False,
              partition: str | None = None, timeout: float = 10) -> list[Check]:
    """The checks of ``cfg`` (a loaded preset): ``slurm`` checks GPUs on the partition through ``sinfo``
    instead of this machine; ``timeout`` bounds each network request (seconds)."""
    from reproduce.plan.build import model_stages, training_gpus
    from reproduce.plan.gpu import Rates

    results = Path(results)
    gpus = training_gpus(cfg)
    stages, _ = model_stages(cfg, results, Rates(), gpus)
    checks = hub.hub_checks(cfg, timeout)
    checks += machine.disk_checks(cfg, stages, results)
    if slurm:
        checks += machine.slurm_checks(stages, gpus, partition)
    else:
        checks.append(machine.gpu_check_local(stages, gpus))
    checks += inputs.judge_key_checks(cfg)
    checks.append(inputs.budget_check(cfg, no_budget))
    lc = inputs.lc_check(cfg, timeout)
    if lc is not None:
        checks.append(lc)
    checks += inputs.official_checks(cfg, timeout)
    return checks
