"""requirements/cpu.txt (CI, CPU) and environment.yml (GPU users) must pin the same versions."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _spec(line: str) -> tuple[str, str] | None:
    line = line.split("#")[0].strip()
    if not line or line.startswith("-"):
        return None
    m = re.match(r"^([A-Za-z0-9_.\-\[\]]+)\s*(.*)$", line)
    return (m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")) if m else None


def _cpu() -> dict[str, str]:
    return dict(s for s in map(_spec, (ROOT / "requirements" / "cpu.txt").read_text().splitlines()) if s)


def _conda() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(s for s in map(_spec, pip) if s)


def test_shared_packages_have_identical_pins():
    cpu, conda = _cpu(), _conda()
    shared = set(cpu) & set(conda)
    assert len(shared) >= 10
    mismatched = {p: (cpu[p], conda[p]) for p in shared if cpu[p] != conda[p]}
    assert not mismatched, f"requirements/cpu.txt vs environment.yml: {mismatched}"


def test_core_packages_are_exactly_pinned():
    cpu = _cpu()
    for pkg in ("torch", "transformers", "trl", "datasets", "accelerate", "snakemake", "openai", "alpaca-eval"):
        assert cpu.get(pkg, "").startswith("=="), f"{pkg} must be pinned with == in requirements/cpu.txt"


def test_environment_is_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
