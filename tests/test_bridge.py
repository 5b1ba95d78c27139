"""The bridge from a current judge to the retired AlpacaEval 2 judge, on real archived files.

Replay (no network): an archived annotator config plays the "current judge" and the AE2 judge's archived
verdicts the "retired judge"; the report must give exactly the agreement and win rates the raw files give
(computed here independently from the JSON), and its calibrated estimate with an interval.

The archived files come through the manifest (evals/archives/alpaca_eval.yaml) and $REPRODUCE_BENCHMARK_MIRROR
(directories separated by ':'), like every official file (tests/conftest.py): missing, they fail the test.
"""

from __future__ import annotations

import json
import math

import pytest

from reproduce.io import DataError

COT = "alpaca_eval_cot_gpt4_turbo_fn"
RETIRED = "weighted_alpaca_eval_gpt4_turbo"


def _fetch_or_skip(manifest, model: str, role: str):
    """The archived file, as tests/conftest.py's ``official_file`` treats official files: a file that cannot be
    had fails the test, unless the offline switch says to skip it (counted in the summary)."""
    from conftest import OFFLINE_PREFIX, offline_tests

    try:
        return manifest.fetch(model, role)
    except DataError as e:
        if offline_tests():
            pytest.skip(f"{OFFLINE_PREFIX} archived file {manifest.models[model][role]['path']} not in the mirror or cache")
        pytest.fail(str(e), pytrace=False)


def _raw(path) -> list[float]:
    """Preferences of an annotations file, read with nothing but json (independent of the bridge's reader)."""
    return [float(r["preference"]) for r in json.loads(path.read_text())]


def _outcome(p: float) -> int:
    return 0 if p == 1.5 else (1 if p > 1.5 else -1)


def _kappa(a: list[int], b: list[int]) -> float:
    """Cohen's kappa from its definition: (observed - chance agreement) / (1 - chance agreement)."""
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in (-1, 0, 1))
    return (po - pe) / (1 - pe)


@pytest.fixture(scope="module")
def replay_report(tmp_path_factory):
    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.run import run_bridge

    man = load_manifest("alpaca_eval")
    raw = {}
    for model in ("gpt-3.5-turbo-0301", "alpaca-7b"):
        raw[model] = (_raw(_fetch_or_skip(man, model, RETIRED)), _raw(_fetch_or_skip(man, model, COT)))
    out = tmp_path_factory.mktemp("bridge")
    lines = []
    rep = run_bridge(benchmark="alpaca_eval2", annotator=COT, preset="paper", out_dir=out, rounds=300,
                     results=out / "results", log=lines.append)
    return rep, raw, out, "\n".join(lines)


@pytest.mark.slow
def test_replay_gives_exactly_the_files_agreement_and_win_rates(replay_report):
    rep, raw, out, printed = replay_report
    by_model = {r["model"]: r for r in rep["models"]}
    assert set(by_model) == {"gpt-3.5-turbo-0301", "alpaca-7b"}  # the panel models that have the cot archive
    for model, (retired, current) in raw.items():
        row = by_model[model]
        assert len(retired) == len(current) == row["n_items"] == 805
        assert row["retired_win_rate"] == pytest.approx(100 * sum(p - 1 for p in retired) / 805, abs=1e-9)
        assert row["current_win_rate"] == pytest.approx(100 * sum(p - 1 for p in current) / 805, abs=1e-9)
        oc, orr = [_outcome(p) for p in current], [_outcome(p) for p in retired]
        assert row["agreement"] == pytest.approx(sum(x == y for x, y in zip(oc, orr)) / 805, abs=1e-12)
        assert row["kappa"] == pytest.approx(_kappa(oc, orr), abs=1e-9)
        # the paired interval of current - retired holds the observed difference
        assert row["diff_ci_low"] <= row["diff"] <= row["diff_ci_high"]
        assert row["complete"]
    # the archive README's figures, to their printed precision
    g = by_model["gpt-3.5-turbo-0301"]
    assert (round(g["retired_win_rate"], 1), round(g["current_win_rate"], 1), round(g["agreement"], 3)) == (9.6, 6.6, 0.923)
    a = by_model["alpaca-7b"]
    assert (round(a["retired_win_rate"], 1), round(a["current_win_rate"], 1), round(a["agreement"], 3)) == (2.6, 2.4, 0.986)
    # the published leaderboard row of the retired judge equals the archive's own win rate
    assert g["published"]["win_rate"] == pytest.approx(g["retired_win_rate"], abs=1e-6)


def test_replay_prints_every_method_with_validated_intervals_only_where_three_models_allow(replay_report):
    rep, _, out, printed = replay_report
    methods = {m["name"]: m for m in rep["methods"]}
    item = methods["per item"]
    # per item: two models with both judges' per-item verdicts; each predicted from the other alone, no interval
    assert {r["model"] for r in item["loo"]} == {"gpt-3.5-turbo-0301", "alpaca-7b"} and not item["has_interval"]
    for r in item["loo"]:
        assert r["n_train_models"] == 1 and r["error"] == pytest.approx(r["predicted"] - r["actual"])
        assert r["low"] is None and r["inside"] is None
    assert item["loo_rmse"] == pytest.approx(math.sqrt(sum(r["error"] ** 2 for r in item["loo"]) / 2))
    # model level: the cot annotator's published leaderboard against the retired judge's (11 shared models)
    slope = methods["model level (slope)"]
    assert slope["n_models"] == 11 and slope["has_interval"] and slope["map"]["free_parameters"] == 1
    for r in slope["loo"]:
        assert r["inside"] == (r["low"] <= r["actual"] <= r["high"]) and r["n_train_models"] == 10
    assert rep["default_method"] == min((m for m in rep["methods"] if m["has_interval"]),
                                        key=lambda m: m["loo_rmse"])["name"]
    for row in rep["models"]:
        b = row["bridged"]
        assert b["low"] <= b["estimate"] <= b["high"]
        assert f"{b['estimate']:.1f} [{b['low']:.1f}, {b['high']:.1f}]" in printed
        assert row["bridged_by"]["per item"]["low"] is None and row["bridged_by"]["per item"]["n_items"] == 805
    assert "Leave-one-model-out" in printed and "need no bridge" in printed and "no interval" in printed
    saved = json.loads((out / "bridge.json").read_text())
    assert saved["models"][0]["bridged"]["estimate"] == pytest.approx(rep["models"][0]["bridged"]["estimate"])
    assert (out / "bridge.md").read_text().strip() == printed.strip()


def test_unhashed_archive_file_is_refused_naming_manifest_and_key():
    from reproduce.bridge.archives import load_manifest

    man = load_manifest("alpaca_eval")
    with pytest.raises(DataError, match=r"alpaca_eval\.yaml: models\.Meta-Llama-3-8B-Instruct\."
                                        r"weighted_alpaca_eval_gpt4_turbo: sha256 is null"):
        man.fetch("Meta-Llama-3-8B-Instruct", RETIRED)


def test_manifests_list_only_hashed_or_explicitly_unhashed_files():
    from reproduce.bridge.archives import ARCHIVES, load_manifest

    for path in sorted(ARCHIVES.glob("*.yaml")):
        man = load_manifest(str(path))
        for model, files in man.models.items():
            for role, spec in files.items():
                assert spec["url"].startswith("https://raw.githubusercontent.com/"), (path, model, role)
                assert spec["sha256"] is None or len(spec["sha256"]) == 64


def test_bridge_refuses_a_retired_judge_as_the_current_one(tmp_path):
    from reproduce.bridge.run import run_bridge
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match="gpt-4-1106-preview.yaml: .*retired"):
        run_bridge(benchmark="alpaca_eval2", judge_name="gpt-4-1106-preview", preset="paper", results=tmp_path)


def test_bridge_refuses_a_programmatic_judge(tmp_path):
    from reproduce.bridge.run import run_bridge
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match="--judge verifier: a 'verifier' judge .* cannot judge archived answers"):
        run_bridge(benchmark="alpaca_eval2", judge_name="verifier", preset="paper", results=tmp_path)


@pytest.mark.slow
def test_dry_run_prints_requests_tokens_and_dollars_before_sending(tmp_path, monkeypatch, capsys):
    """Two panel models (one with archived verdicts, Table 1's SFT model with answers only) under gpt-4.1 with no
    key and no network: the plan is printed, nothing is sent, nothing is written. (perf/bridge_validate.py --cost prices
    the whole default panel.)"""
    from reproduce import cli
    from reproduce.bridge.alpaca import load_panel
    from reproduce.bridge.archives import load_manifest
    from reproduce.config import load_config

    man = load_manifest("alpaca_eval")
    panel = ["alpaca-7b", "Meta-Llama-3-8B-Instruct"]
    _fetch_or_skip(man, "alpaca-7b", RETIRED)
    _fetch_or_skip(man, "Meta-Llama-3-8B-Instruct", "model_outputs")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    rc = cli.main(["bridge", "--judge", "gpt-4.1", "--preset", "paper", "--dry-run", "--results", str(tmp_path),
                   "--panel", *panel])
    err = capsys.readouterr().err
    assert rc == 0, err
    line = next(x for x in err.splitlines() if x.startswith("bridge plan:"))
    items = load_panel(man, load_config({"preset": "paper"})["benchmarks"]["alpaca_eval2"], panel, None, None)
    # one request per pair, except identical outputs (a draw by alpaca_eval's rule, never sent)
    n = sum(it.output_1 != it.output_2 for its in items.values() for it in its)
    assert 1600 < n <= 1610 and f": {n} requests, " in line
    assert "prompt tokens" in line and "at most $" in line and "$2 / $8 per million" in line
    assert not (tmp_path / "bridge").exists()


def test_table1_alpaca_cells_bridged_from_their_own_judgments(tmp_path):
    """Each AE-WR cell of a Table 1 csv goes through every method item by item; cells the bridge cannot use
    (another judge, no judgments file, incomplete) say why instead of a number."""
    import csv

    import numpy as np

    from reproduce.bridge import calibration as calib
    from reproduce.bridge.equivalents import alpaca_cells
    from reproduce.bridge.methods import per_item

    rng = np.random.default_rng(0)
    data = {}
    for m in "abcd":  # four synthetic calibration models: three LOO errors for each, so an interval exists
        cur = 1 + rng.random(400)
        ld = rng.integers(-1500, 1500, 400)
        data[m] = (calib.features(cur, ld), np.clip(cur - 1 + 0.1 * rng.standard_normal(400), 0, 1))
    meth = per_item(data, {m: 1000.0 for m in data})
    judgments = tmp_path / "judgments" / "alpaca_eval2" / "gpt-4.1"
    prefs = [1.0, 2.0, 1.7, 1.2, 1.5] * 161
    recs = [{"question_id": str(i), "instruction": f"q{i}", "output_1": "r" * 100, "output_2": "a" * (50 * (i % 5) + 10),
             "generator_1": "ref", "generator_2": "dpo", "preference": p, "annotator": "gpt-4.1"}
            for i, p in enumerate(prefs)]
    (judgments / "s").mkdir(parents=True)
    (judgments / "s" / "dpo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (judgments / "s" / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs[:800]))
    table = tmp_path / "table1_gpt-4.1.csv"
    rows = [{"setting": "S", "setting_key": "s", "method": "DPO", "method_key": "dpo", "judge": "gpt-4.1",
             "AE-WR": "38.0", "AE-WR_paper": "41.7"},
            {"setting": "S", "setting_key": "s", "method": "SimPO", "method_key": "simpo", "judge": "gpt-4.1",
             "AE-WR": "35.0", "AE-WR_paper": "39.8"},
            {"setting": "S", "setting_key": "s", "method": "TGDPO", "method_key": "tgdpo", "judge": "gpt-4o",
             "AE-WR": "", "AE-WR_paper": "43.9"},
            {"setting": "S", "setting_key": "s", "method": "SFT", "method_key": "sft", "judge": "gpt-4.1",
             "AE-WR": "30.0", "AE-WR_paper": "30.1"}]
    with open(table, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = alpaca_cells(table, judgments, "gpt-4.1", [meth], meth)
    dpo, simpo, tgdpo, sft = out["cells"]
    cal = meth.fitted
    want = 100 * cal.predict(calib.features(np.array(prefs), np.array([len(r["output_2"]) - 100 for r in recs]))).mean()
    assert dpo["bridged"]["estimate"] == pytest.approx(want) and dpo["paper"] == 41.7 and dpo["current"] == 38.0
    errs = [r["error"] for r in meth.loo]
    assert dpo["bridged"]["model_rmse"] == pytest.approx(math.sqrt(sum(e * e for e in errs) / 4))
    assert dpo["bridged"]["low"] < want < dpo["bridged"]["high"]
    assert "bridged" not in simpo and "no judgments file" in simpo["note"]
    assert "bridged" not in tgdpo and "gpt-4o" in tgdpo["note"]
    assert "bridged" not in sft and "incomplete: 800 of 805" in sft["note"]


@pytest.mark.slow
def test_arena_hard_model_level_bridge_over_http(tmp_path):
    """Arena-Hard: a stand-in judge on 127.0.0.1 (verdicts a hash of the prompt) judges 8 prompts of the two
    archived panel models against gpt-4-0314; the map through the baseline's 50% is the least-squares slope of
    the published scores on the current ones (logit scale), checked here from the leaderboard csv."""
    import csv
    import hashlib

    from support.standin_server import StandinServer

    from reproduce.bridge.archives import load_manifest, fetch_official
    from reproduce.bridge.run import run_bridge
    from reproduce.judges.openai_judge import OpenAIJudge

    man = load_manifest("arena_hard_v0.1")
    for m in man.panel:
        _fetch_or_skip(man, m, "model_answer")
    board = {r["model"]: float(r["score"]) for r in
             csv.DictReader(open(fetch_official(man.extra["leaderboard"], "leaderboard"), newline=""))}
    labels = ["[[A>>B]]", "[[A>B]]", "[[A=B]]", "[[B>A]]", "[[B>>A]]"]

    def verdict(body, n):
        text = json.dumps(body["messages"], sort_keys=True)
        return f"My verdict is {labels[int(hashlib.sha256(text.encode()).hexdigest(), 16) % 5]}."

    table = tmp_path / "table1.csv"
    table.write_text("setting,setting_key,method,method_key,judge,AH,AH_ci_low,AH_ci_high,AH_paper\n"
                     "S,s,DPO,dpo,standin,30.0,27.0,33.0,30.4\nS,s,SFT,sft,other,20.0,18.0,22.0,21.4\n")
    log: list[str] = []
    with StandinServer(verdict=verdict) as srv:
        judge = OpenAIJudge("standin", {"kind": "openai", "model": "s", "base_url": srv.base_url, "api_key_env": None,
                                        "max_retries": 1, "timeout_s": 10, "concurrency": 8})
        rep = run_bridge(benchmark="arena_hard", judge=judge, preset="paper", limit=8, results=tmp_path / "r",
                         out_dir=tmp_path / "out", table=table, log=log.append)
        sent = srv.count
    assert log[0].startswith("bridge plan: judge standin") and "32 requests, 32 not cached" in log[0] and sent == 32
    logit = lambda pct: math.log(pct / (100 - pct))  # noqa: E731
    points = [(r["current"], board[r["model"]]) for r in rep["models"]]
    slope = sum(logit(c) * logit(p) for c, p in points) / sum(logit(c) ** 2 for c, _ in points)
    assert rep["slope"] == pytest.approx(slope)
    for r in rep["models"]:
        assert r["published"]["score"] == board[r["model"]] and not r["complete"]  # 8 of 500 prompts
        assert r["current_low"] <= r["current"] <= r["current_high"] and r["n_flip_items"] == 8
        est = 100 / (1 + math.exp(-slope * logit(r["current"])))
        # two panel models: a figure, no interval, and the statement why
        assert r["bridged"]["estimate"] == pytest.approx(est) and r["bridged"]["low"] is None
        assert "no interval: 2 calibration models" in r["bridged"]["interval"]
    assert [x["n_train_models"] for x in rep["loo"]] == [1, 1]
    dpo, sft = rep["table1"]["cells"]
    assert dpo["bridged"]["estimate"] == pytest.approx(100 / (1 + math.exp(-slope * logit(30.0)))) and dpo["paper"] == 30.4
    assert "bridged" not in sft and "other" in sft["note"]
    md = (tmp_path / "out" / "bridge.md").read_text()
    assert "model level" in md and "need no bridge" in md and "Subset" in md
    assert "95% PI" not in md and "**No interval:**" in md and "bridged (no interval)" in md


def test_mt_bench_has_no_bridge_and_says_why(tmp_path):
    from reproduce.bridge.run import run_bridge
    from reproduce.config import ConfigError

    with pytest.raises(ConfigError, match="--benchmark mt_bench: no MT-Bench bridge - FastChat's published gpt-4"):
        run_bridge(benchmark="mt_bench", judge_name="gpt-4.1", preset="paper", results=tmp_path)


def test_answers_only_panel_model_is_an_out_of_sample_check_over_http(tmp_path):
    """Table 1's SFT model has archived answers but no per-item retired verdicts here: a stand-in judge on
    127.0.0.1 judges it (paired with the benchmark's reference outputs) beside alpaca-7b; it stays out of the
    calibration and its bridged number is checked against its published AE2 win rate (22.57)."""
    from support.standin_server import StandinServer

    from reproduce.bridge.archives import load_manifest
    from reproduce.bridge.run import run_bridge
    from reproduce.judges.openai_judge import OpenAIJudge

    man = load_manifest("alpaca_eval")
    _fetch_or_skip(man, "Meta-Llama-3-8B-Instruct", "model_outputs")
    _fetch_or_skip(man, "alpaca-7b", RETIRED)
    with StandinServer(verdict="m") as srv:
        judge = OpenAIJudge("standin", {"kind": "openai", "model": "s", "base_url": srv.base_url, "api_key_env": None,
                                        "max_retries": 1, "timeout_s": 10, "concurrency": 8})
        rep = run_bridge(benchmark="alpaca_eval2", judge=judge, preset="paper", limit=12, rounds=100,
                         panel=["alpaca-7b", "Meta-Llama-3-8B-Instruct"], results=tmp_path / "r",
                         out_dir=tmp_path / "out", log=lambda m: None)
    llama = next(r for r in rep["models"] if r["model"] == "Meta-Llama-3-8B-Instruct")
    assert llama["retired_win_rate"] is None and llama["n_current"] == 12 and not llama["complete"]
    assert rep["calibration"]["models"] == ["alpaca-7b"]  # answers-only models never enter the fit
    assert llama["published"]["win_rate"] == pytest.approx(22.5699, abs=1e-3)
    assert llama["published_error"] == pytest.approx(llama["bridged"]["estimate"] - llama["published"]["win_rate"])
    assert "Out-of-sample check" in (tmp_path / "out" / "bridge.md").read_text()


def test_bridge_target_needs_an_official_benchmark():
    from reproduce.bridge.run import bridge_reports
    from reproduce.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="preset 'tiny' has no official AlpacaEval 2 or Arena-Hard benchmark"):
        bridge_reports(load_config({"preset": "tiny"}))
    assert bridge_reports(load_config({"preset": "paper"})) == ["results/bridge/gpt-4.1/alpaca_eval2/bridge.md",
                                                                "results/bridge/gpt-4.1/arena_hard/bridge.md"]
