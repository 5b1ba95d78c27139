"""Archive manifests (``evals/archives/<name>.yaml``) and the panel of archived pairs they describe.

A manifest lists, per panel model, archived files as official files (``{path, url, sha256}``, fetched with
``fetch_file``: a mirror directory, the download cache, then the pinned URL checked by sha256). A file whose
sha256 is null is refused with one line naming the manifest and key: nobody has hashed it yet.

For AlpacaEval a panel model is a list of :class:`Item` (one per instruction): the pair shown to the judge
(reference output 1, model output 2), the retired judge's archived preference when the archive has it, and
the verdicts of any other archived annotator config (what a replay uses as the "current judge").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from reproduce.config import ROOT, ConfigError, load_yaml
from reproduce.io import DataError, read_json

ARCHIVES = ROOT / "evals" / "archives"
MANIFEST_FOR = {"alpaca_eval2": "alpaca_eval", "arena_hard": "arena_hard_v0.1"}
SPEC_KEYS = ("path", "url", "sha256")


def fetch_official(spec: dict, where: str) -> Path:
    """Local path of one official file of a manifest (``reproduce.official.fetch_file``: the mirror
    directories of $REPRODUCE_BENCHMARK_MIRROR, the download cache, the pinned URL); ``where`` names the
    manifest key in errors. A file nobody has hashed (sha256 null) is refused, never used unchecked."""
    from reproduce.official import fetch_file

    missing = [k for k in SPEC_KEYS if not spec.get(k)]
    if missing:
        if missing == ["sha256"]:
            raise DataError(f"{where}: sha256 is null - this archived file has not been hashed; download it from "
                            f"{spec.get('url')}, check it, and write its sha256 into the manifest before use")
        raise DataError(f"{where}: lacks {', '.join(missing)} (an official file needs path, url and sha256)")
    return fetch_file(spec)


def archive_specs() -> dict[str, dict]:
    """Every hashed, required file of every archive manifest, keyed by its mirror path (for the repository-wide
    pin check and the preflight). A file marked ``optional: true`` is left out: the bridge uses it when a mirror
    or the network gives it and says what it skipped otherwise."""
    out = {}
    for path in sorted(ARCHIVES.glob("*.yaml")):
        man = load_manifest(str(path))
        specs = [s for files in man.models.values() for s in files.values()]
        specs += [s for s in man.extra.values() if isinstance(s, dict) and "url" in s]
        specs += list(man.leaderboards.values())
        out.update({s["path"]: {k: s[k] for k in SPEC_KEYS} for s in specs if s.get("sha256") and not s.get("optional")})
    return out


@dataclass
class Manifest:
    """A parsed archive manifest; ``models[name][role]`` is a file spec (role: an annotator config name,
    ``model_outputs`` or ``model_answer``)."""

    name: str
    path: Path
    benchmark: str
    retired_judge: dict
    reference_model: str
    panel: list[str]
    models: dict[str, dict[str, dict]]
    extra: dict = field(default_factory=dict)

    def where(self, model: str, role: str) -> str:
        """How errors name one file entry."""
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}: models.{model}.{role}"

    def has(self, model: str, role: str) -> bool:
        """Whether the manifest lists ``role`` for ``model`` with a hash (so it can be used)."""
        spec = self.models.get(model, {}).get(role)
        return bool(spec and spec.get("sha256"))

    @property
    def leaderboards(self) -> dict[str, dict]:
        """Published leaderboard csvs by annotator config (``leaderboards`` key; may be empty)."""
        return self.extra.get("leaderboards") or {}

    def leaderboard(self, annotator: str) -> Path | None:
        """Local path of an annotator's published leaderboard csv, or None when the manifest lists none."""
        spec = self.leaderboards.get(annotator)
        return None if spec is None else fetch_official(spec, f"{self.path.name}: leaderboards.{annotator}")

    def fetch(self, model: str, role: str) -> Path:
        """Local path of one listed file (see :func:`fetch_official`)."""
        if model not in self.models:
            raise ConfigError(f"{self.path}: no model '{model}' (listed: {', '.join(self.models)})")
        spec = self.models[model].get(role)
        if spec is None:
            raise ConfigError(f"{self.where(model, role)}: not listed (files of {model}: "
                              f"{', '.join(self.models[model])})")
        return fetch_official(spec, self.where(model, role))


def load_manifest(name_or_path: str) -> Manifest:
    """``evals/archives/<name>.yaml`` (or a path to a manifest), checked: one-line errors name file and key."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):  # a name (arena_hard_v0.1 has a dot but is no file)
        path = ARCHIVES / f"{name_or_path}.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping")
    for key in ("benchmark", "retired_judge", "reference_model", "panel", "models"):
        if key not in data:
            raise ConfigError(f"{path}: key '{key}' missing")
    models = data["models"]
    if not isinstance(models, dict):
        raise ConfigError(f"{path}: key 'models' must map model names to their files")
    for model, files in models.items():
        if not isinstance(files, dict) or not files:
            raise ConfigError(f"{path}: key 'models.{model}' must map roles to file specs")
        for role, spec in files.items():
            if not isinstance(spec, dict) or not {"path", "url"} <= set(spec):
                raise ConfigError(f"{path}: key 'models.{model}.{role}' needs path, url and sha256")
            if spec.get("sha256") is not None and (not isinstance(spec["sha256"], str) or len(spec["sha256"]) != 64):
                raise ConfigError(f"{path}: key 'models.{model}.{role}.sha256' is not a 64-hex sha256")
    unknown = [m for m in data["panel"] if m not in models]
    if unknown:
        raise ConfigError(f"{path}: key 'panel' names {unknown[0]!r}, which 'models' does not list")
    extra = {k: v for k, v in data.items() if k not in ("benchmark", "retired_judge", "reference_model", "panel", "models")}
    return Manifest(name=path.stem, path=path, benchmark=data["benchmark"], retired_judge={k: str(v) for k, v in data["retired_judge"].items()},
                    reference_model=data["reference_model"], panel=list(data["panel"]), models=models, extra=extra)


# ---------------------------------------------------------------- AlpacaEval items


@dataclass
class Item:
    """One archived AlpacaEval pair: output_1 is the reference's, output_2 the panel model's.

    ``retired``: the retired judge's preference (1 = reference better .. 2 = model better), None if not
    archived or failed. ``annotators``: other archived annotator configs' preferences on the same pair."""

    question_id: str
    instruction: str
    output_1: str
    output_2: str
    retired: float | None = None
    annotators: dict[str, float | None] = field(default_factory=dict)

    @property
    def length_diff(self) -> int:
        """Characters of the model's output minus the reference's (the judge's known length bias)."""
        return len(self.output_2) - len(self.output_1)


def _preference(row: dict, where: str, i: int) -> float | None:
    """An annotation row's preference as a float (None for a failed annotation)."""
    pref = row.get("preference")
    if pref is None or pref == "":
        return None
    try:
        pref = float(pref)
    except (TypeError, ValueError):
        raise DataError(f"{where}: record {i} has a non-numeric preference {pref!r}") from None
    if math.isnan(pref):
        return None
    if pref == 0:
        return 1.5  # alpaca_eval's legacy draw code
    if not 1 <= pref <= 2:
        raise DataError(f"{where}: record {i} has preference {pref} outside [1, 2]")
    return pref


def _annotations(path: Path, where: str, model: str) -> list[dict]:
    rows = read_json(path)
    if not isinstance(rows, list):
        raise DataError(f"{where}: expected a JSON list of annotations")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or not {"instruction", "output_1", "output_2", "preference"} <= set(r):
            raise DataError(f"{where}: record {i} lacks instruction, output_1, output_2 or preference")
        if r.get("generator_2") not in (None, model):
            raise DataError(f"{where}: record {i} judges '{r.get('generator_2')}', not panel model '{model}'")
    return rows


def alpaca_items(manifest: Manifest, model: str, reference: dict[str, str] | None = None,
                 annotators: tuple[str, ...] = ()) -> list[Item]:
    """The panel model's archived pairs, in instruction order.

    From the retired annotator's annotations when the manifest hashes them; else from ``model_outputs``
    paired with ``reference`` (instruction -> reference output), with no retired verdict per item.
    ``annotators``: other annotator configs whose archived verdicts to attach (each must be listed).
    """
    retired_role = manifest.retired_judge["annotator"]
    if manifest.has(model, retired_role):
        where = manifest.where(model, retired_role)
        rows = _annotations(manifest.fetch(model, retired_role), where, model)
        items = [Item(str(i), r["instruction"], r["output_1"], r["output_2"], _preference(r, where, i))
                 for i, r in enumerate(rows)]
    elif manifest.has(model, "model_outputs"):
        if reference is None:
            raise DataError(f"{manifest.where(model, 'model_outputs')}: pairing answers needs the reference outputs")
        where = manifest.where(model, "model_outputs")
        rows = read_json(manifest.fetch(model, "model_outputs"))
        if not isinstance(rows, list):
            raise DataError(f"{where}: expected a JSON list of outputs")
        items = []
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or "instruction" not in r or "output" not in r:
                raise DataError(f"{where}: record {i} lacks instruction or output")
            if r["instruction"] not in reference:
                raise DataError(f"{where}: record {i}'s instruction is not one of the benchmark's")
            items.append(Item(str(i), r["instruction"], reference[r["instruction"]], r["output"] or ""))
    elif any(manifest.has(model, role) for role in annotators):
        # only another annotator's verdicts are hashed: its pairs, with no retired verdict per item
        role = next(r for r in annotators if manifest.has(model, r))
        rows = _annotations(manifest.fetch(model, role), manifest.where(model, role), model)
        items = [Item(str(i), r["instruction"], r["output_1"], r["output_2"]) for i, r in enumerate(rows)]
    else:
        raise DataError(f"{manifest.path}: model '{model}' has neither hashed {retired_role} annotations nor hashed "
                        "model_outputs; fill in a sha256 or drop it from the panel")
    for role in annotators:
        where = manifest.where(model, role)
        rows = _annotations(manifest.fetch(model, role), where, model)
        by_instruction = {r["instruction"]: (i, r) for i, r in enumerate(rows)}
        for it in items:
            if it.instruction not in by_instruction:
                raise DataError(f"{where}: no annotation of instruction {it.question_id} of {model}")
            i, r = by_instruction[it.instruction]
            if r["output_2"] != it.output_2 or r["output_1"] != it.output_1:
                raise DataError(f"{where}: record {i} judges other outputs than the retired judge's archive did")
            it.annotators[role] = _preference(r, where, i)
    return items


def reference_outputs(bench: dict) -> dict[str, str]:
    """instruction -> the benchmark's reference output (AlpacaEval 2's gpt4_1106_preview answers)."""
    rows = read_json(fetch_official(bench["questions"]["files"]["questions"], f"{bench.get('_file', 'benchmark')}: "
                                    "questions.files.questions"))
    return {r["instruction"]: r["output"] for r in rows}


def arena_answers(manifest: Manifest, model: str) -> dict[str, dict]:
    """question_id -> answer record of an archived Arena-Hard answer file (read by ``import_answers``, which
    knows both the v0.1 ``choices`` layout and the newer ``messages`` one)."""
    from reproduce.generate.formats import import_answers

    return {a["question_id"]: a for a in import_answers(manifest.fetch(model, "model_answer"), "arena_hard", model=model)}
