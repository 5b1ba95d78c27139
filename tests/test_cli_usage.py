"""The `reproduce` command as a newcomer meets it: help on every flag, one-line errors for bad flags and bad
--job blobs (never a traceback), workflow stages that say how to run them, logging set up once with
--log-level, and --version / the resolved configs and score files naming the software that made them."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from reproduce.cli import WORKFLOW_STAGES, build_parser
from reproduce.config import job_config, load_config
from reproduce.report.provenance import software_section
from reproduce.software import TRACKED_PACKAGES, git_state

from conftest import arena_synthetic_on_real_ids

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reproduce.cli", *args], cwd=cwd, capture_output=True, text=True)


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    err = out.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0 and err.startswith("error: "), err
    return err


def _flags(parser: argparse.ArgumentParser, name: str = "reproduce"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _flags(sub, sub_name)
        elif not isinstance(action, argparse._HelpAction):
            yield name, action


def test_every_flag_has_help():
    flags = list(_flags(build_parser()))
    assert len({name for name, _ in flags}) >= 10  # the subcommands of every stage package were registered
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, a in flags if not (a.help or "").strip()]
    assert missing == [], f"flags without help text: {missing}"


@pytest.mark.parametrize("argv", [["base"], ["base", "--out", "x"], ["prefs", "--out", "x"], ["train", "--out", "x"],
                                  ["reference", "--out", "x"], ["generate", "--model", "m", "--out", "x"]],
                         ids=lambda a: " ".join(a))
def test_workflow_stage_without_job_says_how_to_run_it(argv, tmp_path):
    assert argv[0] in WORKFLOW_STAGES
    err = _one_line_error(_cli(*argv, cwd=tmp_path))
    assert "workflow stage" in err or "--dataset" in err, err  # prefs also runs on a --dataset
    assert "--job" in err
    assert not any(tmp_path.iterdir()), "a refused stage wrote something"


@pytest.mark.parametrize("job,needle", [
    ("{not json", "--job: not valid JSON"),
    ("[1, 2]", "--job: expected a JSON object"),
    ("{}", "'benchmark_config'"),
    ('{"benchmark_config": {"protocol": "arena_hard"}}', "'benchmark_config.questions'"),
])
def test_bad_job_blob_is_one_line_naming_flag_and_key(job, needle, tmp_path):
    err = _one_line_error(_cli("reference", "--job", job, "--out", str(tmp_path / "ref.jsonl"), cwd=tmp_path))
    assert needle in err, err
    assert not (tmp_path / "ref.jsonl").exists()


@pytest.mark.slow
def test_bad_jobs_list_of_generate(tmp_path):
    err = _one_line_error(_cli("generate", "--jobs", "{}", "--model", "m", "--out", "a.jsonl", cwd=tmp_path))
    assert "--jobs" in err
    err = _one_line_error(_cli("generate", "--jobs", "[{}]", "--model", "m", "--out", "a.jsonl", cwd=tmp_path))
    assert "--jobs[0]" in err and "'benchmark_config'" in err


@pytest.mark.parametrize("argv", [["--log-level", "LOUD", "check-config"], ["check-config", "--log-level", "1"]])
def test_unknown_log_level_is_one_line_naming_the_flag(argv):
    err = _one_line_error(_cli(*argv))
    assert "--log-level" in err and "INFO" in err


# main() must set logging up itself: a harness logger's INFO line (as a judge retry writes) reaches stderr
# by default and not at WARNING; a library's INFO chatter (one line per HTTP request) does not.
PROBE = """
import logging, sys
from reproduce import cli
def probe(args):
    logging.getLogger("reproduce.judges.openai_judge").info("retrying request 1 of 3")
    logging.getLogger("httpx").info("HTTP Request: POST /v1/chat/completions")
    logging.getLogger("httpx").warning("connection pool is full")
cli.cmd_check_config = probe
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("argv,harness_info", [([], True), (["--log-level", "warning"], False),
                                               (["--log-level", "DEBUG"], True)])
def test_logging_is_configured_once_in_main(argv, harness_info):
    out = subprocess.run([sys.executable, "-c", PROBE, *argv, "check-config"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""  # logs go to stderr, which the rules send to the job's log
    assert ("INFO reproduce.judges.openai_judge: retrying request 1 of 3" in out.stderr) == harness_info, out.stderr
    assert ("HTTP Request" in out.stderr) == ("DEBUG" in argv)
    assert "WARNING httpx: connection pool is full" in out.stderr


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_version_prints_package_version_and_commit():
    out = _cli("--version")
    assert out.returncode == 0, out.stderr
    head = _git("rev-parse", "HEAD").strip()
    dirty = bool(_git("status", "--porcelain").strip())
    from reproduce import __version__

    assert out.stdout.strip() == f"reproduce {__version__} (git {head[:12]}{'-dirty' if dirty else ''})"


def test_git_state_of_a_real_repository(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}  # not a checkout (e.g. an installed package)
    run = lambda *a: subprocess.run(["git", "-C", str(tmp_path), *a], check=True, capture_output=True, text=True)
    run("init", "-q")
    (tmp_path / "a.txt").write_text("1\n")
    run("add", "a.txt")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    sha = run("rev-parse", "HEAD").stdout.strip()
    assert git_state(tmp_path) == {"commit": sha, "dirty": False}
    (tmp_path / "a.txt").write_text("2\n")
    assert git_state(tmp_path) == {"commit": sha, "dirty": True}
    run("checkout", "-q", "a.txt")
    (tmp_path / "new.py").write_text("")  # untracked code can change what runs too
    assert git_state(tmp_path) == {"commit": sha, "dirty": True}


def _check_software(record: dict) -> None:
    assert set(record["packages"]) == set(TRACKED_PACKAGES)
    import importlib.metadata as md

    for name, version in record["packages"].items():
        try:
            want = md.version(name)
        except md.PackageNotFoundError:
            want = None  # absent packages (vllm here) are recorded as null
        assert version == want, name
    assert record["git"]["commit"] == _git("rev-parse", "HEAD").strip()
    assert record["git"]["dirty"] == bool(_git("status", "--porcelain").strip())


@pytest.mark.slow
def test_resolved_config_and_score_file_record_the_software(tmp_path):
    cfg = load_config({"preset": "tiny"})
    job = job_config(cfg, "reference", benchmark="tiny_arena_hard")
    out = _cli("reference", "--job", json.dumps(job), "--out", str(tmp_path / "ref.jsonl"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    resolved = json.loads((tmp_path / "ref.config.json").read_text())
    assert resolved["config_hash"] == job["config_hash"]
    _check_software(resolved["software"])

    judgments = arena_synthetic_on_real_ids(tmp_path / "arena_m.jsonl")
    out = _cli("score", "--benchmark", "arena_hard", "--judgments", str(judgments), "--format", "arena_hard",
               "--out", str(tmp_path / "score.json"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    _check_software(json.loads((tmp_path / "score.json").read_text())["software"])


def test_report_software_section_groups_the_outputs_records(tmp_path):
    results = tmp_path / "results"
    old = {"reproduce": "0.0.9", "git": {"commit": "a" * 40, "dirty": False},
           "packages": {n: "1.0" for n in TRACKED_PACKAGES}}
    for rel, record in [("models/s/dpo/resolved_config.json", old), ("answers/b/s/dpo.config.json", old),
                        ("scores/b/j/s/dpo.config.json", None)]:
        path = results / rel
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"config_hash": "x", **({"software": record} if record else {})}))
    lines = software_section(results)
    assert lines[0].startswith("| made | reproduce | git commit | dirty | torch |")
    rows = lines[2:]
    assert rows[0].startswith("| 2 outputs (answers, models) | 0.0.9 | aaaaaaaaaaaa | no | 1.0 |")
    assert rows[1].startswith("| 1 outputs (scores) | — (no software record")
    assert rows[2].startswith("| this report | ") and _git("rev-parse", "HEAD").strip()[:12] in rows[2]
    assert all(r.count("|") == lines[0].count("|") for r in rows), "rows must have as many cells as the header"
