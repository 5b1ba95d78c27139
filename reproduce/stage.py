"""What every stage command shares: reading its ``--job`` config, writing the resolved config beside its
output, the torch thread count, the stage's subparser, and its log line to stderr.

Each stage's subcommands live with the stage (``reproduce/<stage>/commands.py``); ``reproduce.cli`` only
builds the parser from them and runs ``main``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reproduce.config import ConfigError
from reproduce.io import atomic_write_json
from reproduce.paths import config_beside
from reproduce.software import software

# Stage subcommands that only the workflow runs (it passes --job), each with the flag that lets it run
# without one (None: no such flag). `judge` and `score` work on files made anywhere and are not listed.
WORKFLOW_STAGES = {"base": None, "prefs": "--dataset", "train": None, "step-model": None, "reference": None,
                   "generate": None}


def log(msg: str) -> None:
    """One progress line to stderr (the rules send each job's stderr to its log file)."""
    print(msg, file=sys.stderr, flush=True)


def stage_message(command: str) -> str:
    """What a workflow stage called by hand without --job says instead of running."""
    return (f"`reproduce {command}` is a workflow stage: Snakemake runs it with --job (the resolved job config "
            "as JSON) - run the workflow instead, e.g. `snakemake --cores all reproduce_table1` (see README)")


class JobKeyError(ConfigError, KeyError):
    """A key a stage reads is missing from its --job config; ``str()`` is one line naming flag and key."""

    __str__ = Exception.__str__  # KeyError's own __str__ would quote the message


class JobConfig(dict):
    """A --job config (nested dicts too) whose missing keys raise :class:`JobKeyError` naming the key."""

    def __init__(self, data: dict, flag: str = "--job", path: str = ""):
        super().__init__({k: JobConfig(v, flag, f"{path}{k}.") if isinstance(v, dict) else v for k, v in data.items()})
        self._flag, self._path = flag, path

    def __missing__(self, key):
        raise JobKeyError(f"{self._flag}: the job config has no key '{self._path}{key}' (write it with the "
                          "workflow of this version: Snakemake passes the resolved config)")


def _json_flag(text: str, flag: str):
    """``text`` parsed as JSON; not JSON is a one-line ``ConfigError`` naming ``flag``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag}: not valid JSON ({e.msg} at character {e.pos})") from None


def read_job(args) -> dict:
    """The stage's --job config; without one, a one-line error saying that this is a workflow stage."""
    if not getattr(args, "job", None):
        raise ConfigError(stage_message(args.command))
    job = _json_flag(args.job, "--job")
    if not isinstance(job, dict):
        raise ConfigError(f"--job: expected a JSON object (the resolved job config), got a {type(job).__name__}")
    return JobConfig(job)


def read_jobs(args) -> list[dict]:
    """generate's --jobs (a JSON list of job configs, one per benchmark), or its single --job."""
    if not getattr(args, "jobs", None):
        return [read_job(args)]
    jobs = _json_flag(args.jobs, "--jobs")
    if not isinstance(jobs, list) or not jobs or not all(isinstance(j, dict) for j in jobs):
        raise ConfigError("--jobs: expected a non-empty JSON list of job configs (objects)")
    return [JobConfig(j, f"--jobs[{i}]") for i, j in enumerate(jobs)]


def write_resolved(job: dict, out: str | Path, is_dir: bool = False) -> None:
    """Write the job's resolved config, with the software that ran it, beside (or into) its output."""
    path = Path(out) / "resolved_config.json" if is_dir else config_beside(out)
    atomic_write_json(path, {**job, "software": software()})


def set_threads(args) -> None:
    """Apply --threads (Snakemake passes its job threads) to torch's CPU thread pool."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def add_stage(sub, name: str, fn, out_help: str, *extra, out_required: bool = True, out_nargs=None):
    """A stage subcommand: --job, --out, --threads, then ``extra`` as (flag, argparse keywords) pairs."""
    s = sub.add_parser(name, help=fn.__doc__)
    s.set_defaults(fn=fn)
    s.add_argument("--job", help="resolved job config (JSON), as written by the Snakefile")
    s.add_argument("--out", required=out_required, nargs=out_nargs, help=out_help)
    s.add_argument("--threads", type=int, help="torch CPU threads (Snakemake passes its job threads)")
    for flag, kw in extra:
        s.add_argument(flag, **kw)
    return s
