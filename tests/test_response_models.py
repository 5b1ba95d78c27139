"""Every judgment records the model name the endpoint returned (``response.model``); a run whose replies
carry more than one name warns of alias drift, and its stats and score list the names. Over HTTP to the
scripted stand-in server, through the real protocols."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from reproduce.io import atomic_write_jsonl
from reproduce.judges import run as judge_run

from support.standin_server import StandinServer
from test_faults import KEY_ENV, _run, _setup

SNAPSHOT, MOVED = "gpt-4o-2024-08-06", "gpt-4o-2024-11-20"


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-response-models-test")
    monkeypatch.setattr(judge_run, "ROUND_WAIT_S", (0.05, 0.2))


def test_each_record_keeps_the_returned_model_name(tmp_path):
    setup = _setup("arena_hard")
    with StandinServer(verdict="[[A>B]]", served_model=SNAPSHOT) as srv:
        records, failures, stats = _run("arena_hard", srv, tmp_path / "c.jsonl", setup, model="gpt-4o")
    assert not failures
    assert all(rec["response_models"] == {"game1": SNAPSHOT, "game2": SNAPSHOT} for rec in records)
    assert stats["response_models"] == {SNAPSHOT: 2 * len(records)}


@pytest.mark.server
def test_alias_drift_mid_run_warns_and_is_counted(tmp_path, caplog):
    setup = _setup("alpaca_eval2")
    n_switch = 6  # the alias moves to another snapshot after the 6th request
    with StandinServer(verdict="m", served_model=lambda body, n: SNAPSHOT if n <= n_switch else MOVED) as srv:
        with caplog.at_level(logging.WARNING, logger="reproduce.judges.run"):
            records, failures, stats = _run("alpaca_eval2", srv, tmp_path / "c.jsonl", setup, model="gpt-4o",
                                            concurrency=1)
    assert not failures
    judged = sum(1 for r in records if r["response_models"])
    assert stats["response_models"] == {MOVED: judged - n_switch, SNAPSHOT: n_switch}
    drift = [r.message for r in caplog.records if "alias drift" in r.message]
    assert len(drift) == 1 and SNAPSHOT in drift[0] and MOVED in drift[0] and "\n" not in drift[0]

    # the score of these judgments lists both names and says so again
    path = tmp_path / "j.jsonl"
    atomic_write_jsonl(path, records)
    out = subprocess.run([sys.executable, "-m", "reproduce.cli", "score", "--benchmark", "tiny_alpaca_eval2", "--judgments",
                          str(path), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    score = json.loads(out.stdout)
    assert score["judge_response_models"] == {MOVED: judged - n_switch, SNAPSHOT: n_switch}
    assert "alias drift" in out.stderr


def test_one_name_no_warning_and_cached_replies_keep_their_name(tmp_path, caplog):
    setup = _setup("mt_bench")
    cache = tmp_path / "c.jsonl"
    with StandinServer(verdict="Rating: [[7]] and [[A]]", served_model=SNAPSHOT) as srv:
        first, _, _ = _run("mt_bench", srv, cache, setup)
        with caplog.at_level(logging.WARNING, logger="reproduce.judges.run"):
            again, _, stats = _run("mt_bench", srv, cache, setup)
    assert stats["new_requests"] == 0 and [r["response_models"] for r in again] == [r["response_models"] for r in first]
    assert set(stats["response_models"]) == {SNAPSHOT} and not any("alias drift" in r.message for r in caplog.records)
