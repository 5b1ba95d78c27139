"""`pip install .` gives a working `reproduce` command in a fresh virtual environment, one that carries its
own presets and benchmark definitions.

A full install into an empty venv unpacks ~2 GB (torch alone) and takes 6-7 minutes here, so the test splits
it into two real steps that together say the same thing in about a minute:

1. resolution: pip resolves the package from the package indexes into an EMPTY venv (``--dry-run
   --ignore-installed --report``); every package pinned in requirements/cpu.txt must resolve to its pin, and
   every resolved distribution must be one this test process runs on (so step 2 can lend it).
2. install and run: a second empty venv sees exactly the resolved distributions (symlinked from this
   environment's site-packages, nothing else: no test packages, no editable checkout), and pip builds and
   installs the package (not editable) from a copy of what its sdist holds, with ``--no-index``, so a
   dependency pyproject.toml does not declare, or declares out of range of the pins, fails the install. The
   venv's own ``reproduce`` entry point then runs ``--help``, ``--version`` and ``score`` on an official
   judgments file, from a directory that is no checkout and without ``$REPRODUCE_ROOT``: the package reads
   the ``config/`` and ``evals/`` it carries (setup.py bundles them). ``$REPRODUCE_ROOT`` still overrides them.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import official_file
from support.pins import norm, read_pins

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "requirements" / "cpu.txt"

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without what would point a command at the checkout."""
    return {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "REPRODUCE_ROOT")}, **extra}


def _pip(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = _env()
    out = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"pip {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def _package_sources(dest: Path) -> Path:
    """What `pip install .` builds from (what the sdist holds): pyproject.toml, setup.py, MANIFEST.in, the
    README it names, the package and the data setup.py bundles into it."""
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("reproduce", "config", "evals"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _empty_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    return path / "bin" / "python"


def _lend(dists: list[md.Distribution], site: Path) -> None:
    """Make ``site`` hold exactly ``dists``: a symlink per top-level file or folder of their RECORDs."""
    site.mkdir()
    for dist in dists:
        for f in dist.files or []:
            top = Path(f).parts[0]
            if top in ("..", "__pycache__") or (site / top).exists() or (site / top).is_symlink():
                continue
            src = Path(dist.locate_file(top))
            if src.exists():
                (site / top).symlink_to(src)


def test_pip_install_from_the_pins_gives_a_working_command(tmp_path):
    src = _package_sources(tmp_path / "src")

    # 1. resolution into an empty venv, from the indexes
    report = tmp_path / "report.json"
    _pip("--python", str(_empty_venv(tmp_path / "resolve")), "install", "--dry-run", "--ignore-installed", "-q",
         "--report", str(report), str(src), "-c", str(CONSTRAINTS), cwd=tmp_path)
    resolved = {norm(i["metadata"]["name"]): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    assert resolved.pop("reproduce-tgdpo") == __import__("reproduce").__version__
    for name, pin in read_pins(CONSTRAINTS).items():
        if name in ("pip", "wheel"):  # pinned for the lock (installers), never a dependency of the package
            continue
        assert name in resolved, f"{name} is pinned in {CONSTRAINTS.name} but `pip install .` does not install it"
        assert resolved[name].split("+")[0] == pin, f"{name}: resolved {resolved[name]}, pinned {pin}"
    here = {}
    for name in resolved:
        try:
            here[name] = md.distribution(name)
        except md.PackageNotFoundError:
            pytest.fail(f"`pip install .` resolves {name} {resolved[name]}, which this environment lacks: rerun scripts/setup.sh")

    # 2. a venv that sees only the resolved distributions; the package installed from its sources
    python = _empty_venv(tmp_path / "venv")
    site_packages = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
    _lend(list(here.values()), tmp_path / "lent")
    (site_packages / "lent.pth").write_text(str(tmp_path / "lent") + "\n")
    _pip("--python", str(python), "install", "-q", "--no-index", "--no-build-isolation", str(src), cwd=tmp_path)

    work = tmp_path / "elsewhere"  # no checkout here or above it
    work.mkdir()
    exe = str(python.parent / "reproduce")
    env = _env(XDG_CACHE_HOME=str(tmp_path / "user-cache"))  # downloads of official files land there, if any

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([exe, *args], cwd=work, env={**env, **extra}, capture_output=True, text=True)

    helped = run("--help")
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "score" in helped.stdout and "judge" in helped.stdout
    version = run("--version")
    assert version.returncode == 0 and __import__("reproduce").__version__ in version.stdout, version.stderr
    bundled = site_packages / "reproduce" / "_bundled"
    assert (bundled / "config" / "default.yaml").is_file() and (bundled / "evals" / "benchmarks" / "alpaca_eval2.yaml").is_file()

    # an official AlpacaEval 2 annotations file, scored as the checkout scores it (tests/test_cli.py)
    annotations = official_file("alpaca_eval_annotations/claude-2/annotations.json")
    argv = ("score", "--benchmark", "alpaca_eval2", "--judgments", str(annotations), "--format", "alpaca_eval", "--json")
    scored = run(*argv)
    assert scored.returncode == 0, scored.stderr[-3000:]
    result = json.loads(scored.stdout.strip().splitlines()[-1])
    here = subprocess.run([sys.executable, "-m", "reproduce.cli", *argv], cwd=ROOT, capture_output=True, text=True)
    assert here.returncode == 0, here.stderr[-3000:]
    assert result == json.loads(here.stdout.strip().splitlines()[-1])
    assert result["n_total"] == 805 and result["complete"] is True

    # $REPRODUCE_ROOT still names the definitions to use: an empty folder has none
    empty = tmp_path / "no-definitions"
    empty.mkdir()
    overridden = run(*argv, REPRODUCE_ROOT=str(empty))
    assert overridden.returncode == 2 and "config/default.yaml: file not found" in overridden.stderr, overridden.stderr

    # the command ran the installed copy, not the checkout
    where = subprocess.run([str(python), "-c", "import reproduce.config as c; print(c.__file__, c.ROOT)"], cwd=work,
                           env=env, capture_output=True, text=True).stdout.split()
    assert where[0].startswith(str(site_packages)) and where[1] == str(bundled), where
