"""Build hook: a built package (wheel, non-editable install) carries the repository's ``config/`` and
``evals/`` as ``reproduce/_bundled/``, which ``reproduce.config`` reads when no checkout holds them (the
way alpaca_eval ships its evaluator configs). The repository keeps them at its top level, where the
workflow and the editable install read them; everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("config", "evals")  # the presets, recipes, benchmark and judge definitions


class BuildPyWithData(build_py):
    """``build_py`` that also copies ``config/`` and ``evals/`` into ``reproduce/_bundled/`` of the build."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout itself
        here = Path(__file__).resolve().parent
        for name in DATA:
            shutil.copytree(here / name, Path(self.build_lib) / "reproduce" / "_bundled" / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildPyWithData})
