"""TGDPO reproduction harness: preference data -> training -> generation -> judging -> scoring -> report.

Every stage is a module with plain functions and a subcommand of the ``reproduce`` CLI, so it runs
without Snakemake; the Snakefile only wires stages together through files.
"""

__version__ = "0.1.0"
