"""The ``reproduce`` command: every workflow stage as a subcommand, usable without Snakemake.

Each stage's subcommands live with the stage, in ``reproduce/<stage>/commands.py`` (a ``register(sub)``
that adds them); this module only builds the parser from :data:`COMMAND_PACKAGES`, adds the shared flags
and runs :func:`main`. Stage subcommands take ``--job`` (the resolved job config as JSON, written by the
Snakefile) and write ``resolved_config.json`` beside their output; ``judge`` and ``score`` also work on
answers and judgments made anywhere (see docs/judges.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from reproduce.config import ConfigError, load_config
from reproduce.io import DataError
from reproduce.judges.base import JudgeError
from reproduce.names import BadName
from reproduce.stage import WORKFLOW_STAGES, stage_message

# The packages whose ``commands.register(sub)`` add subcommands, in the order of `reproduce --help`:
# one per stage, upstream first.
COMMAND_PACKAGES = ("reproduce.base", "reproduce.data", "reproduce.train", "reproduce.generate", "reproduce.judges",
                    "reproduce.score", "reproduce.report", "reproduce.plan", "reproduce.bridge", "reproduce.rehearsal",
                    "reproduce.doctor")


def cmd_check_config(args) -> None:
    """Validate a preset and everything it references; print the grid."""
    cfg = load_config({"preset": args.preset} if args.preset else None)
    print(json.dumps({"preset": cfg["preset"], "settings": list(cfg["settings"]), "methods": cfg["methods"],
                      "benchmarks": list(cfg["benchmarks"]), "judges": list(cfg["judges"])}))


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors; a workflow stage called without --job says how to run it instead."""

    def parse_known_args(self, args=None, namespace=None):
        self._argv = list(sys.argv[1:] if args is None else args)  # what error() looks at
        return super().parse_known_args(args, namespace)

    def error(self, message):
        command = self.prog.split()[-1]
        argv = getattr(self, "_argv", [])
        given = {a.split("=")[0] for a in argv}
        if command in WORKFLOW_STAGES and not given & {"--job", "--jobs"} and WORKFLOW_STAGES[command] not in given:
            self.exit(2, f"error: {stage_message(command)} ({message})\n")
        self.exit(2, f"error: {self.prog}: {message}\n")


class _VersionAction(argparse.Action):
    """--version: the package version and git commit, looked up only when asked (it runs git)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from reproduce.software import version_line

        print(version_line())
        parser.exit()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(text: str) -> str:
    """--log-level's type: a level name in any case; anything else a one-line error naming the flag."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"unknown level {text!r} (choose from {', '.join(LOG_LEVELS)})")
    return text.upper()


def configure_logging(level: str) -> None:
    """One stderr handler for the whole process (the rules send stderr to the job's log file): the harness's
    own loggers at ``level``, other libraries' at WARNING or above (DEBUG shows everything), so e.g. an
    HTTP client's line per request does not drown retries and progress."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    numeric = getattr(logging, level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric if numeric == logging.DEBUG else max(numeric, logging.WARNING))
    logging.getLogger("reproduce").setLevel(numeric)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``reproduce`` command."""
    p = _Parser(prog="reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_VersionAction, help="print the package version and git commit, then exit")
    p.add_argument("--log-level", type=_log_level, default="INFO", metavar="LEVEL",
                   help=f"messages to stderr from this level up: {', '.join(LOG_LEVELS)} (default INFO); "
                        "also accepted after the subcommand")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for package in COMMAND_PACKAGES:
        importlib.import_module(f"{package}.commands").register(sub)
    c = sub.add_parser("check-config", help=cmd_check_config.__doc__)
    c.set_defaults(fn=cmd_check_config)
    c.add_argument("--preset", help="the preset to check (default: config/default.yaml's)")
    for command in sub.choices.values():  # --log-level after the subcommand too (SUPPRESS keeps the global one)
        command.add_argument("--log-level", type=_log_level, default=argparse.SUPPRESS, metavar="LEVEL",
                             help="as `reproduce --log-level`")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; bad input (flags, --job, config, data) exits 2 with a one-line error."""
    quiet_library_warnings()
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        args.fn(args)
    except EXPECTED_ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    return 0


# Every class of error that bad input (flags, files, configs, the environment) can raise; anything else is a
# bug and keeps its traceback. JudgeError: a judge that cannot run (e.g. its key variable is not set).
EXPECTED_ERRORS = (ConfigError, DataError, BadName, JudgeError, OSError, UnicodeError)


def one_line(e: BaseException) -> str:
    """The error as one line: an OS error names its file; newlines (e.g. from a library) become spaces."""
    if isinstance(e, OSError) and not isinstance(e, (ConfigError, DataError)) and e.filename:
        text = f"{e.filename}: {e.strerror or e}"
    elif isinstance(e, UnicodeDecodeError):
        text = f"input is not UTF-8 text (byte {e.start})"
    else:
        text = str(e) or type(e).__name__
    return " ".join(text.split())


def quiet_library_warnings() -> None:
    """Silence libraries' warnings that say nothing about the user's run: alpaca_eval's pkg_resources import
    and scikit-learn's FutureWarnings about its own API (about 150 per Arena-Hard score, one per fit)."""
    import warnings

    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"sklearn\..*")


if __name__ == "__main__":
    sys.exit(main())
