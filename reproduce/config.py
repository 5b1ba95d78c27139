"""Load, validate and resolve the workflow configuration.

Config flows one way: YAML files -> JSON-schema validation -> a resolved per-job dict that each stage
writes beside its output and reads back. A preset (``config/presets/<name>.yaml``) names settings
(``config/recipes/<setting>.yaml``), benchmarks (``evals/benchmarks/<name>.yaml``) and judges
(``evals/judges/<name>.yaml``); every Snakemake wildcard is one of those keys.

Every error is one line naming the file and the key, raised as :class:`ConfigError`.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from reproduce import names, safe_yaml
from reproduce.seed_variants import seed_models, seed_variants
from reproduce.step_models import parse_step_model
from reproduce.io import content_hash



def _project_root() -> tuple[Path, bool]:
    """(the folder holding ``config/`` and ``evals/``, whether it is the package's own copy).

    ``$REPRODUCE_ROOT`` when set (a user's own copy of the definitions); else the checkout this package sits
    in (the source tree or an editable install); else the copy a built package carries, ``reproduce/_bundled``
    (setup.py puts it there), read through ``importlib.resources``."""
    env = os.environ.get("REPRODUCE_ROOT")
    if env:
        return Path(env).resolve(), False
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "config").is_dir() and (checkout / "evals").is_dir():
        return checkout, False
    from importlib.resources import files

    # a folder on disk for every ordinary install (site-packages); the rest of the package reads it as a Path
    return Path(str(files("reproduce") / "_bundled")), True


ROOT, BUNDLED = _project_root()
SCHEMAS = Path(__file__).resolve().parent / "schemas"


class ConfigError(ValueError):
    """A configuration problem; ``str()`` is one line naming the file and key."""


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file; malformed YAML raises ``ConfigError`` naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{_rel(path)}: file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{_rel(path)}: not UTF-8 text (byte {e.start})") from None
    try:
        return safe_yaml.safe_load(text)  # anchors/aliases refused: an alias bomb cannot hang us
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{_rel(path)}:{where}: malformed YAML ({problem})") from None


def _rel(path: Path) -> str:
    if str(path) == "--config":
        return "--config"
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _non_finite(data: Any, path: str = "") -> str | None:
    """The dotted key of the first NaN or infinite number in ``data`` (YAML's ``.nan``, ``.inf``, ``1e400``)."""
    if isinstance(data, float) and not math.isfinite(data):
        return path or "<top level>"
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for k, v in items:
        found = _non_finite(v, f"{path}.{k}" if path else str(k))
        if found:
            return found
    return None


# judge keys checked before the schema, whose messages would echo the value (a pasted key must not be)
def _check_judge(data: Any, source: str) -> None:
    if not isinstance(data, dict):
        return
    try:
        names.check_env_var_name(data.get("api_key_env"), f"{source}: key 'api_key_env'")
    except names.BadName as e:
        raise ConfigError(str(e)) from None
    url = data.get("base_url")
    if isinstance(url, str) and not url.lower().startswith(("http://", "https://")):
        scheme = url.split(":", 1)[0][:20] if ":" in url else "no scheme"
        raise ConfigError(f"{source}: key 'base_url': only http:// and https:// endpoints are supported (got {scheme})")


def validate(data: Any, schema_name: str, source: str | Path, overridden: set | None = None) -> dict:
    """Validate ``data`` against ``reproduce/schemas/<schema_name>.schema.yaml``.

    Raises ``ConfigError('<file>: key <a.b.c>: <problem>')`` for the first (deepest) error; an error under a
    top-level key in ``overridden`` (values from the command line) names ``--config`` instead of the file.
    Every number must be finite.
    """
    bad = _non_finite(data)
    if bad:
        where = "--config" if overridden and bad.split(".")[0] in overridden else _rel(Path(source))
        raise ConfigError(f"{where}: key '{bad}': not a finite number")
    if schema_name == "judge":
        _check_judge(data, _rel(Path(source)))
        data = _verdict_regex_keys(data)
    schema = yaml.safe_load((SCHEMAS / f"{schema_name}.schema.yaml").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: (-len(e.absolute_path), str(e.absolute_path)))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if overridden and err.absolute_path and err.absolute_path[0] in overridden:
            source = "--config"  # the value came from the command line, not the file
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            extra = sorted(k for k in err.instance if k not in allowed)
            prefix = f"{key}." if err.absolute_path else ""
            if overridden and not err.absolute_path and extra[0] in overridden:
                source = "--config"
            raise ConfigError(f"{_rel(Path(source))}: key '{prefix}{extra[0]}': unknown key (allowed: {', '.join(sorted(allowed))})")
        raise ConfigError(f"{_rel(Path(source))}: key '{key}': {err.message}")
    if schema_name == "judge":
        _check_verdict_regex(data, _rel(Path(source)))
    return data


def _verdict_regex_keys(data: Any) -> Any:
    """A judge's ``verdict_regex`` with its keys as strings (YAML reads ``1: m`` with the integer key 1)."""
    table = data.get("verdict_regex") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        return data
    return {**data, "verdict_regex": {str(k): v for k, v in table.items()}}


def _check_verdict_regex(data: dict, source: str) -> None:
    """Every pattern of a judge's ``verdict_regex`` compiles (a bad one fails here, not at its first reply)."""
    for key, pattern in (data.get("verdict_regex") or {}).items():
        try:
            re.compile(pattern)
        except re.error as e:
            raise ConfigError(f"{source}: key 'verdict_regex.{key}': not a regular expression ({e})") from None


def _load_named(kind: str, folder: Path, name: str, schema: str, referrer: str) -> dict:
    try:  # checked before the path is built: '../../x' must not read outside the folder
        names.check_name(name, referrer, kind)
    except names.BadName as e:
        raise ConfigError(str(e)) from None
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"{referrer}: unknown {kind} '{name}' (known: {', '.join(known)})")
    data = load_yaml(path)
    data = dict(validate(data, schema, path))
    data["_file"] = _rel(path)
    return data


def refuse_retired(judge: dict, referrer: str) -> None:
    """Stop before any job runs when ``judge`` (a loaded ``evals/judges/<name>.yaml``) is marked ``retired``:
    its provider no longer serves the model, so every request would fail. One line naming the file, the date
    and the replacement."""
    if judge.get("retired"):
        rep = judge["replacement"]
        raise ConfigError(f"{judge['_file']}: judge '{Path(judge['_file']).stem}' ({judge.get('model')}) was retired by "
                          f"its provider on {judge['retired']} and can no longer be asked; use evals/judges/{rep}.yaml "
                          f"instead (its numbers are that judge's; `reproduce bridge` relates them to the retired "
                          f"judge's) [{referrer}]")


def check_logprob_needs(cfg: dict) -> None:
    """A judge that states how many top log-probs its endpoint returns (``top_logprobs``) must return at least
    what each benchmark asks for (AlpacaEval 2: 5); a judge without log-probs is fine (discrete verdicts)."""
    for b, bench in cfg["benchmarks"].items():
        judging = bench.get("judging") or {}
        want = judging.get("top_logprobs") if judging.get("logprobs") else None
        for j, judge in cfg["judges"].items():
            have = judge.get("top_logprobs")
            if want and judge.get("logprobs") and have is not None and have < want:
                raise ConfigError(f"{judge['_file']}: key 'top_logprobs': {have} alternatives per token, but "
                                  f"{bench['_file']} asks for {want} (raise the server's --max-logprobs and this key)")


def _read_preset(overrides: dict | None, root: Path) -> tuple[str, dict, Path]:
    """(name, content with the command-line overrides applied and validated, file) of the preset to load."""
    overrides = dict(overrides or {})
    default_file = root / "config" / "default.yaml"
    default = validate(load_yaml(default_file) or {}, "default", default_file)
    preset_name = overrides.pop("preset", default["preset"])
    if not isinstance(preset_name, str):
        raise ConfigError(f"--config: key 'preset': expected a string, got {type(preset_name).__name__}")
    try:
        names.check_name(preset_name, "--config: key 'preset'", "preset")
    except names.BadName as e:
        raise ConfigError(str(e)) from None
    preset_file = root / "config" / "presets" / f"{preset_name}.yaml"
    if not preset_file.exists():
        known = sorted(p.stem for p in (root / "config" / "presets").glob("*.yaml"))
        raise ConfigError(f"--config: key 'preset': unknown preset '{preset_name}' (known: {', '.join(known)})")
    preset = load_yaml(preset_file) or {}
    if not isinstance(preset, dict):
        raise ConfigError(f"{_rel(preset_file)}: key '<top level>': expected a mapping")
    if isinstance(overrides.get("seeds"), list):  # snakemake --config 'seeds=[42,43]' gives the numbers as strings
        overrides["seeds"] = [int(s) if isinstance(s, str) and s.isdigit() else s for s in overrides["seeds"]]
    overrides = _booleans(overrides)
    preset.update(overrides)  # command-line overrides are validated like the file itself
    validate(preset, "preset", preset_file, overridden=set(overrides))
    return preset_name, preset, preset_file


def _check_references(cfg: dict, preset: dict, src: str, root: Path) -> None:
    """Every name the preset and its recipes use is defined: the judges of paper_judges, benchmark_judges,
    table_judge and bridge_judge, the preset's methods in each recipe, TGDPO guides, the benchmarks' tasks."""
    for b, j in (cfg.get("paper_judges") or {}).items():  # what the paper used: a record, never asked
        if b not in cfg["benchmarks"]:
            raise ConfigError(f"{src}: key 'paper_judges.{b}': '{b}' is not one of benchmarks {preset['benchmarks']}")
        _load_named("judge", root / "evals" / "judges", j, "judge", f"{src}: key 'paper_judges.{b}'")
    for b, j in cfg.get("benchmark_judges", {}).items():
        if b not in cfg["benchmarks"]:
            raise ConfigError(f"{src}: key 'benchmark_judges.{b}': '{b}' is not one of benchmarks {preset['benchmarks']}")
        if j not in cfg["judges"]:
            raise ConfigError(f"{src}: key 'benchmark_judges.{b}': '{j}' is not one of judges {preset['judges']}")
    if cfg["table_judge"] not in cfg["judges"]:
        raise ConfigError(f"{src}: key 'table_judge': '{cfg['table_judge']}' is not one of judges {preset['judges']}")
    if cfg.get("bridge_judge", cfg["table_judge"]) not in cfg["judges"]:
        raise ConfigError(f"{src}: key 'bridge_judge': '{cfg['bridge_judge']}' is not one of judges {preset['judges']}")
    for setting, recipe in cfg["settings"].items():
        for m in preset["methods"]:
            if m != "sft" and m not in recipe["methods"]:
                raise ConfigError(
                    f"{recipe['_file']}: key 'methods': preset method '{m}' has no recipe "
                    f"(recipe methods: {', '.join(recipe['methods'])})"
                )
        for name, method in recipe["methods"].items():
            guide = method.get("guide")  # a method key, or {model, revision} (an external model: nothing to check here)
            if method["loss"] == "tgdpo" and isinstance(guide, str) and guide not in recipe["methods"]:
                raise ConfigError(f"{recipe['_file']}: key 'methods.{name}.guide': unknown method '{guide}'")
    for b, bench in cfg["benchmarks"].items():
        task = bench["questions"].get("task")
        if task is not None and not (root / "evals" / "tasks" / f"{task}.yaml").exists():
            raise ConfigError(f"{bench['_file']}: key 'questions.task': unknown task '{task}'")


def load_config(overrides: dict | None = None, root: Path = ROOT) -> dict:
    """Load the preset named in ``overrides['preset']`` (default from ``config/default.yaml``), validate it and
    everything it references, and return one dict: ``{"preset", "settings", "benchmarks", "judges", ...}``.

    ``overrides`` are Snakemake ``--config`` values; keys other than ``preset`` override preset keys.
    """
    preset_name, preset, preset_file = _read_preset(overrides, root)
    src = _rel(preset_file)

    cfg = copy.deepcopy(preset)
    cfg["preset"] = preset_name
    cfg["_file"] = src
    cfg["settings"] = {
        s: _load_named("setting", root / "config" / "recipes", s, "recipe", f"{src}: key 'settings'")
        for s in preset["settings"]
    }
    cfg["benchmarks"] = {
        b: _load_named("benchmark", root / "evals" / "benchmarks", b, "benchmark", f"{src}: key 'benchmarks'")
        for b in preset["benchmarks"]
    }
    for b, override in cfg.get("benchmark_overrides", {}).items():
        if b not in cfg["benchmarks"]:
            raise ConfigError(f"{src}: key 'benchmark_overrides.{b}': '{b}' is not one of benchmarks {preset['benchmarks']}")
        merged = deep_merge(cfg["benchmarks"][b], override)
        merged_file = merged.pop("_file")
        validate(merged, "benchmark", f"{src} (benchmark_overrides.{b} over {merged_file})")
        cfg["benchmarks"][b] = {**merged, "_file": merged_file, "_overridden_by": src}
    cfg["judges"] = {
        j: _load_named("judge", root / "evals" / "judges", j, "judge", f"{src}: key 'judges'") for j in preset["judges"]
    }
    for j, judge in cfg["judges"].items():
        refuse_retired(judge, f"{src}: key 'judges'")
    check_logprob_needs(cfg)
    _check_references(cfg, preset, src, root)
    seeds = cfg.get("seeds")
    if seeds is not None:
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ConfigError(f"{src}: key 'seeds': seed {twice[0]} is listed more than once ({seeds}); "
                              "each seed trains its own models, list it once")
        for recipe in cfg["settings"].values():
            recipe["methods"] = seed_variants(recipe["methods"], seeds)
    return cfg


_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _typed(value, schema: dict):
    """``value`` with the strings Snakemake's ``--config`` leaves read as the schema's number, integer or
    boolean (YAML's reading), in nested mappings and lists too; anything else unchanged, for validation."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return {k: _typed(v, props.get(k, {})) for k, v in value.items()}
    if isinstance(value, list):
        return [_typed(v, schema.get("items", {})) for v in value]
    if not isinstance(value, str):
        return value
    kinds = schema.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    if "boolean" in kinds and value.lower() in _WORDS:
        return _WORDS[value.lower()]
    if kinds & {"integer", "number"}:
        try:
            number = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return number
    return value


def _booleans(overrides: dict) -> dict:
    """Snakemake's ``--config accept_incomplete=true`` arrives as the string 'true', and a nested value such
    as ``'judging={"max_usd": 250}'`` as the string '250': read them as YAML reads a boolean or a number
    where the preset's schema says so."""
    schema = yaml.safe_load((SCHEMAS / "preset.schema.yaml").read_text())
    return _typed(overrides, {"properties": schema.get("properties", {})})


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of ``base`` with ``override`` merged in: nested mappings merge key by key, other values replace."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def judge_for(cfg: dict, benchmark: str, judge: str) -> str:
    """The judge whose scores fill ``benchmark``'s cells in the table of ``judge``: the table judge's table
    may take some benchmarks from their own official judge (``benchmark_judges``, e.g. MT-Bench: gpt-4)."""
    if judge == cfg["table_judge"]:
        return cfg.get("benchmark_judges", {}).get(benchmark, judge)
    return judge


def config_from_cli(preset: str | None = None, config_json: str | None = None, methods: list[str] | None = None) -> dict:
    """Load the config a CLI command was pointed at: the Snakemake config as JSON (``--config-json``, so
    command-line overrides such as ``methods=[...]`` reach every stage), a preset name, or a methods override."""
    import json

    try:
        overrides = json.loads(config_json) if config_json else {}
    except json.JSONDecodeError as e:
        raise ConfigError(f"--config-json: not valid JSON ({e.msg} at character {e.pos})") from None
    if not isinstance(overrides, dict):
        raise ConfigError(f"--config-json: expected a JSON object, got a {type(overrides).__name__}")
    if preset:
        overrides["preset"] = preset
    if methods:
        overrides["methods"] = methods
    return load_config(overrides or None)


def trained_methods(cfg: dict, setting: str, all_seeds: bool = False) -> list[str]:
    """Methods to train for ``setting``: the preset's Table-1 methods plus any guidance models they need
    (``all_seeds``: also every further training seed's models, ``dpo-s43``..., after the first seed's)."""
    recipe = cfg["settings"][setting]["methods"]
    wanted = [m for m in cfg["methods"] if m != "sft"]
    for m in list(wanted):
        guide = recipe[m].get("guide")
        if isinstance(guide, str) and guide not in wanted:  # an external guide ({model, revision}) is not trained
            wanted.insert(0, guide)
    if not all_seeds:
        return wanted
    return [n for i in range(len(cfg.get("seeds") or [None]))
            for n in (seed_models(cfg, setting, m)[i] for m in wanted)]


def recipe_method(recipe: dict, model: str) -> dict:
    """The recipe entry a model was trained by (a step model's: its method's, which must list that step);
    a one-line error naming the recipe for an unknown one."""
    parsed = parse_step_model(model)
    name = parsed[0] if parsed else model
    where = recipe.get("_file", "recipe")
    if name not in recipe["methods"]:
        raise ConfigError(f"{where}: no method '{name}' (model '{model}')")
    method = recipe["methods"][name]
    if parsed and parsed[1] not in (method.get("eval_steps") or []):
        raise ConfigError(f"{where}: method '{name}' lists no eval_step {parsed[1]} (model '{model}'; "
                          f"eval_steps {method.get('eval_steps') or []})")
    return method


def job_config(cfg: dict, stage: str, **keys: str) -> dict:
    """The resolved config of one job: only the parts that job depends on, plus its wildcard keys.

    Its hash goes into provenance records, so two jobs with equal resolved configs are interchangeable.
    """
    job: dict[str, Any] = {"stage": stage, "preset": cfg["preset"], **keys}
    setting = keys.get("setting")
    if setting:
        recipe = cfg["settings"][setting]
        job["base"] = recipe["base"]
        job["preference_data"] = recipe["preference_data"]
        job["seed"] = recipe.get("seed", 0)
        method = keys.get("method")
        if method and method != "sft":
            job["method_config"] = recipe_method(recipe, method)
            if parse_step_model(method):  # a mid-run save: its method's recipe entry, at that step
                job["checkpoint_step"] = parse_step_model(method)[1]
            guide = job["method_config"].get("guide")
            if guide:
                job["guide_config"] = recipe["methods"][guide] if isinstance(guide, str) else guide
    if keys.get("benchmark"):
        job["benchmark_config"] = cfg["benchmarks"][keys["benchmark"]]
    if keys.get("judge"):
        job["judge_config"] = cfg["judges"][keys["judge"]]
        if cfg.get("judging"):  # batch mode, the cost guard (only when set, so other judge jobs keep their hash)
            job["judging"] = cfg["judging"]
    if stage == "generate":  # only generation depends on the backend (a change must not retrain anything)
        job["generation"] = cfg.get("generation", {})
    # pinned template variables (Llama-3.2's date_string) change the rendered prompts, at generation and at
    # training time alike (TRL renders the pairs through the same template)
    if stage in ("generate", "train") and setting and cfg["settings"][setting].get("chat_template_kwargs"):
        job["chat_template_kwargs"] = cfg["settings"][setting]["chat_template_kwargs"]
    job["config_hash"] = content_hash({k: v for k, v in job.items() if k != "config_hash"})
    return job
