"""Three places name package versions; they must agree.

pyproject.toml declares what the package needs (ranges); requirements/cpu.txt pins them for CPU/CI (used as
constraints, ``pip install . -c requirements/cpu.txt``); environment.yml pins them for GPU users, plus the
GPU extras. requirements/test.txt holds the test-only packages, which the package never needs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _spec(line: str) -> tuple[str, str] | None:
    line = line.split("#")[0].strip()
    if not line or line.startswith("-"):
        return None
    m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", line)
    return (_norm(m.group(1)), m.group(2).replace(" ", "")) if m else None


def _file(path: Path) -> dict[str, str]:
    return dict(s for s in map(_spec, path.read_text().splitlines()) if s)


def _cpu() -> dict[str, str]:
    return _file(ROOT / "requirements" / "cpu.txt")


def _test() -> dict[str, str]:
    return _file(ROOT / "requirements" / "test.txt")


def _conda_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def _conda() -> dict[str, str]:
    return dict(s for s in map(_spec, _conda_pip()) if s)


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _runtime() -> dict[str, Requirement]:
    return {_norm(r.name): r for r in map(Requirement, _pyproject()["dependencies"])}


def _pinned(spec: str) -> str | None:
    return spec[2:] if spec.startswith("==") and "," not in spec else None


def test_shared_packages_have_identical_pins():
    cpu, conda = _cpu(), _conda()
    shared = set(cpu) & set(conda)
    assert len(shared) >= 10
    mismatched = {p: (cpu[p], conda[p]) for p in shared if cpu[p] != conda[p]}
    assert not mismatched, f"requirements/cpu.txt vs environment.yml: {mismatched}"


def test_every_pin_is_exact():
    for where, specs in (("requirements/cpu.txt", _cpu()), ("requirements/test.txt", _test()),
                         ("environment.yml", _conda())):
        loose = {p: s for p, s in specs.items() if not _pinned(s)}
        assert not loose, f"{where}: not pinned with ==: {loose}"
    assert [line for line in _conda_pip() if line.startswith("-")] == ["-e ."]


def test_runtime_dependencies_are_ranges_the_pins_satisfy():
    runtime, cpu, conda = _runtime(), _cpu(), _conda()
    assert {"torch", "transformers", "trl", "snakemake", "openai", "alpaca-eval", "jsonschema"} <= set(runtime)
    for name, req in runtime.items():
        assert req.specifier, f"pyproject.toml: {name} has no version range"
        for where, pins in (("requirements/cpu.txt", cpu), ("environment.yml", conda)):
            assert name in pins, f"{where} does not pin {name}, which pyproject.toml depends on"
            assert req.specifier.contains(_pinned(pins[name]), prereleases=True), \
                f"{where} pins {name}{pins[name]}, outside pyproject.toml's {req.specifier}"


def test_gpu_extras_are_pinned_for_conda_within_range():
    conda = _conda()
    gpu = [Requirement(r) for r in _pyproject()["optional-dependencies"]["gpu"]]
    assert {_norm(r.name) for r in gpu} == {"vllm", "deepspeed"}
    for req in gpu:
        assert req.specifier.contains(_pinned(conda[_norm(req.name)])), f"environment.yml: {req.name}"


def test_test_only_packages_are_not_runtime_dependencies():
    test, runtime, cpu = _test(), _runtime(), _cpu()
    assert {"pytest", "fastapi", "uvicorn"} <= set(test)
    assert not set(test) & set(runtime), "test-only packages belong in requirements/test.txt, not pyproject.toml"
    both = {p: (cpu[p], test[p]) for p in set(test) & set(cpu) if cpu[p] != test[p]}
    assert not both, f"requirements/cpu.txt vs requirements/test.txt: {both}"
    assert "-c cpu.txt" in (ROOT / "requirements" / "test.txt").read_text().splitlines()


def test_core_packages_are_exactly_pinned():
    cpu = _cpu()
    for pkg in ("torch", "transformers", "trl", "datasets", "accelerate", "snakemake", "openai", "alpaca-eval"):
        assert cpu.get(pkg, "").startswith("=="), f"{pkg} must be pinned with == in requirements/cpu.txt"


def test_environment_is_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert _pyproject()["requires-python"] == ">=3.11,<3.12"
