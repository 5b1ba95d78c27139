"""The models of the paper's ablations (the preset's ``ablations``): which methods they train, which mid-run
checkpoints become models (``<method>-step<N>``, :mod:`reproduce.step_models`).

Each step model is generated, judged and scored like any other model. Ablation models are judged only on
the ablation benchmarks and never enter Table 1 or the method differences.
"""

from __future__ import annotations

from reproduce.config import ConfigError
from reproduce.step_models import step_model

ABLATION_PROTOCOLS = ("alpaca_eval2", "arena_hard")  # the paper's ablation columns: AlpacaEval 2, Arena-Hard


def ablation_spec(cfg: dict) -> dict | None:
    """The preset's ``ablations``, checked against its setting's recipe and filled with defaults (benchmarks:
    the preset's AlpacaEval 2 and Arena-Hard; compare_step: the alpha methods' first common eval step);
    None when the preset has none. Every error names the key."""
    spec = cfg.get("ablations")
    if not spec:
        return None
    where = f"{cfg.get('_file', 'preset')}: key 'ablations"
    setting = spec["setting"]
    if setting not in cfg["settings"]:
        raise ConfigError(f"{where}.setting': '{setting}' is not one of settings {list(cfg['settings'])}")
    recipe = cfg["settings"][setting]["methods"]
    out = {"setting": setting, "alpha": list(spec.get("alpha") or []), "guidance": list(spec.get("guidance") or []),
           "convergence": dict(spec.get("convergence") or {}), "comparisons": [list(p) for p in spec.get("comparisons") or []]}
    for key in ("alpha", "guidance"):
        for m in out[key]:
            if m not in recipe or recipe[m]["loss"] != "tgdpo":
                raise ConfigError(f"{where}.{key}': '{m}' is not a TGDPO method of recipe {setting}")
    for m in out["alpha"]:
        if not recipe[m].get("eval_steps"):
            raise ConfigError(f"{where}.alpha': recipe {setting} method '{m}' lists no eval_steps (its curve's points)")
    for m in out["guidance"]:
        if not isinstance(recipe[m].get("guide"), str):
            raise ConfigError(f"{where}.guidance': method '{m}' of recipe {setting} is guided by no method of the recipe")
    for short, long in out["convergence"].items():
        for m in (short, long):
            if m not in recipe:
                raise ConfigError(f"{where}.convergence': '{m}' is not a method of recipe {setting}")
        if "max_epochs" not in recipe[long]:
            raise ConfigError(f"{where}.convergence': method '{long}' of recipe {setting} has no max_epochs")
    benches = spec.get("benchmarks") or [b for b, bc in cfg["benchmarks"].items() if bc["protocol"] in ABLATION_PROTOCOLS]
    for b in benches:
        if b not in cfg["benchmarks"]:
            raise ConfigError(f"{where}.benchmarks': '{b}' is not one of benchmarks {list(cfg['benchmarks'])}")
    out["benchmarks"] = benches
    common = sorted(set.intersection(*(set(recipe[m]["eval_steps"]) for m in out["alpha"]))) if out["alpha"] else []
    out["compare_step"] = spec.get("compare_step", common[0] if common else None)
    if out["alpha"] and out["compare_step"] not in common:
        raise ConfigError(f"{where}.compare_step': {out['compare_step']} is not an eval_step of every alpha method "
                          f"(common: {common})")
    models = ablation_models(cfg, out)
    for pair in out["comparisons"]:
        for m in pair:
            if m not in models:
                raise ConfigError(f"{where}.comparisons': '{m}' is not an ablation model ({', '.join(models)})")
    return out


def ablation_methods(cfg: dict, spec: dict | None = None) -> list[str]:
    """Every method the ablations train, guides first (each TGDPO's guide trains before it)."""
    spec = spec if spec is not None else ablation_spec(cfg)
    if not spec:
        return []
    recipe = cfg["settings"][spec["setting"]]["methods"]
    wanted = [*spec["alpha"], *spec["guidance"], *[m for pair in spec["convergence"].items() for m in pair]]
    out: list[str] = []
    for m in wanted:
        guide = recipe[m].get("guide")
        for x in ([guide] if isinstance(guide, str) else []) + [m]:
            if x not in out:
                out.append(x)
    return out


def ablation_models(cfg: dict, spec: dict | None = None) -> list[str]:
    """Every model the ablations evaluate: their methods' final models and their step models."""
    spec = spec if spec is not None else ablation_spec(cfg)
    if not spec:
        return []
    recipe = cfg["settings"][spec["setting"]]["methods"]
    out = []
    for m in ablation_methods(cfg, spec):
        out += [step_model(m, s) for s in sorted(recipe[m].get("eval_steps") or [])] + [m]
    return out
