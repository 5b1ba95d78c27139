"""Run a ``reproduce`` command that halts at an exact point of its progress, for kill-and-resume tests.

A test that starts a stage and SIGKILLs it after watching its files for a while races the stage: on a quiet
machine the stage can finish (and clean up) before the signal lands, on a loaded one the watcher can fall
behind. Here the halt is an event inside the stage: the append to ``--file`` (a cache, or the training log)
that brings the lines this process appended to at least ``--lines``, seen through ``reproduce.io.append_jsonl``,
the only way the stages append. One append is one write (a generation batch's records are not split: a
sampled batch regenerated from its middle would draw different answers). After it the process either

- ``kill``: SIGKILLs itself, so what it left on disk is exactly the lines appended so far (``--tear`` adds a
  torn half line after them, as a kill in the middle of the next write leaves), or
- ``pause``: writes ``--marker`` and sleeps until it is killed (for a launcher whose other processes the test
  kills itself; the other ranks wait for this one at their next collective, so the run cannot go on).

Usage: ``python tests/support/halt_at.py --file F --lines N (--kill [--tear] | --marker M) -- <reproduce argv>``
(the argv of ``python -m reproduce.cli``). In a multi-process launch only the process that appends to
``--file`` (rank 0) halts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """This script's options, and the reproduce CLI's argv after ``--``."""
    if "--" not in argv:
        raise SystemExit("halt_at: the reproduce command follows '--'")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(prog="halt_at")
    parser.add_argument("--file", required=True, type=Path, help="the JSONL file whose appended lines are counted")
    parser.add_argument("--lines", required=True, type=int, help="halt once this process appended this many lines")
    parser.add_argument("--kill", action="store_true", help="SIGKILL this process at the halt")
    parser.add_argument("--tear", action="store_true", help="with --kill: leave a torn half line after them")
    parser.add_argument("--marker", type=Path, help="without --kill: write this file at the halt, then sleep")
    args = parser.parse_args(argv[:cut])
    if args.lines < 1 or (not args.kill and args.marker is None):
        parser.error("--lines must be >= 1, and either --kill or --marker is needed")
    return args, argv[cut + 1:]


def install(args: argparse.Namespace) -> None:
    """Wrap ``reproduce.io.append_jsonl`` before any stage module imports it by name."""
    from reproduce import io

    original, target, written = io.append_jsonl, args.file.resolve(), [0]

    def append_jsonl(path, records):
        records = list(records)
        if Path(path).resolve() != target:
            return original(path, records)
        original(path, records)
        written[0] += len(records)
        if written[0] < args.lines:
            return None
        if not args.kill:
            args.marker.write_text(str(written[0]))
            while True:  # killed from outside; the other ranks block on this one
                time.sleep(60)
        if args.tear:
            half = json.dumps(records[-1])  # any record's first half: a line cut short
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(half[: len(half) // 2])
                fh.flush()
                os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)
        return None

    io.append_jsonl = append_jsonl


def main(argv: list[str] | None = None) -> int:
    """Install the halt, then run the reproduce CLI in this process."""
    args, cli_argv = _parse(sys.argv[1:] if argv is None else argv)
    sys.path.insert(0, str(ROOT))  # this script's folder is sys.path[0]; the package is at the root
    install(args)
    from reproduce import cli

    return cli.main(cli_argv)


if __name__ == "__main__":
    sys.exit(main())
