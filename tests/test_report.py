"""Reports: Table 1 (csv/md/tex), figures and results/report.md are built from real result files.

Uses the finished tiny run in ``.ci-work/tiny/results`` (CI runs perf/tiny_e2e.py before pytest)
when it is there; otherwise small synthetic score/judgment/answer files written in tmp, in the exact
formats the workflow writes, so the tests never pass on nothing.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
from pathlib import Path

import pytest

from reproduce.config import ConfigError, load_config
from reproduce.io import DataError

ROOT = Path(__file__).resolve().parent.parent
CI_RESULTS = ROOT / ".ci-work" / "tiny" / "results"
METRIC_COLUMNS = ["AE-LC", "AE-WR", "AH", "MT-S", "MT-WR"]


def tiny_cfg(**overrides) -> dict:
    """The tiny preset (two judges: verifier, verifier-lenient)."""
    return load_config({"preset": "tiny", **overrides})


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_synthetic_results(root: Path, cfg: dict, offsets: dict | None = None) -> Path:
    """Score, judgment, answer, config and training-log files for every (benchmark, judge, setting, method)
    of ``cfg`` under ``root/results``, in the workflow's formats. ``offsets[judge]`` shifts that judge's
    scores and flips some of its verdicts, so judges differ. Returns the results directory."""
    res = root / "results"
    offsets = offsets or {}
    for s in cfg["settings"]:
        for mi, m in enumerate(cfg["methods"]):
            mdir = res / "models" / s / m
            mdir.mkdir(parents=True, exist_ok=True)
            (mdir / "resolved_config.json").write_text(json.dumps({"config_hash": f"ckpt{mi:04d}"}))
            if m != "sft":
                _write_jsonl(mdir / "train_log.jsonl", [{"step": k, "loss": 0.69 - 0.01 * k * (mi + 1),
                                                         "rewards/margins": 0.01 * k, "rewards/accuracies": min(1, 0.1 * k)}
                                                        for k in range(1, 11)])
            for b, bc in cfg["benchmarks"].items():
                n = 10
                ans = res / "answers" / b / s / f"{m}.jsonl"
                _write_jsonl(ans, [{"question_id": f"q{i}", "model": m, "turns": ["1" * (1 + mi)],
                                    "meta": {"n_tokens": [1 + mi]}} for i in range(n)])
                ans.with_name(f"{m}.config.json").write_text(json.dumps({"config_hash": f"ans{mi:04d}"}))
                for j in cfg["judges"]:
                    off = offsets.get(j, 0.0)
                    jpath = res / "judgments" / b / j / s / f"{m}.jsonl"
                    flip = lambda i: (i + mi) % 3 == 0 and off != 0  # noqa: E731 — which items this judge sees differently
                    if bc["protocol"] == "alpaca_eval2":
                        recs = [{"question_id": f"q{i}", "generator_2": m, "annotator": j,
                                 "preference": 1.0 if flip(i) else 2.0} for i in range(n)]
                        score = {"win_rate": 40 + 5 * mi + off, "standard_error": 1.5, "length_controlled_winrate": None,
                                 "lc_standard_error": None, "length_controlled_reason": "no df_gamed.csv (synthetic)"}
                    elif bc["protocol"] == "arena_hard":
                        recs = [{"question_id": f"q{i}", "model": m, "judge": j,
                                 "games": [{"score": "A>B" if flip(i) else "B>A"}, {"score": "A>>B"}]} for i in range(n)]
                        score = {"score": 30 + 10 * mi + off, "ci_low": 28 + 10 * mi + off, "ci_high": 33 + 10 * mi + off}
                    else:
                        recs = [{"question_id": f"q{i}", "model": m, "judge": j,
                                 "single": [{"turn": 1, "score": 5.0 + mi + (1 if flip(i) else 0)}],
                                 "pairwise": [{"turn": 1, "g1_winner": "model_1", "g2_winner": "tie" if flip(i) else "model_1"}]}
                                for i in range(n)]
                        score = {"score": 6.0 + 0.5 * mi + off / 10, "win_rate": 20 + 5 * mi + off}
                    _write_jsonl(jpath, recs)
                    jpath.with_name(f"{m}.config.json").write_text(json.dumps(
                        {"judge": j, "benchmark": b, "benchmark_config": {"version": bc.get("version")},
                         "judge_config": cfg["judges"][j], "config_hash": f"judge{mi:02d}{j[:3]}"}))
                    spath = res / "scores" / b / j / s / f"{m}.json"
                    spath.parent.mkdir(parents=True, exist_ok=True)
                    spath.write_text(json.dumps({"benchmark": b, "protocol": bc["protocol"],
                                                 "judgments": str(jpath.relative_to(root)), **score}))
    return res


def _has_full_run(results: Path, cfg: dict) -> bool:
    return all((results / "scores" / b / j / s / f"{m}.json").exists() for b in cfg["benchmarks"] for j in cfg["judges"]
               for s in cfg["settings"] for m in cfg["methods"])


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A results directory: a copy of the finished tiny CI run (so tests may modify it) or synthetic files."""
    cfg = tiny_cfg()
    root = tmp_path_factory.mktemp("report")
    if CI_RESULTS.exists() and _has_full_run(CI_RESULTS, cfg):
        res = root / "results"
        shutil.copytree(CI_RESULTS, res, ignore=shutil.ignore_patterns("checkpoints", "cache", "logs", "*.safetensors"))
        # the models are needed (without copying) by the token-reward figure only; link them
        shutil.rmtree(res / "models")
        (res / "models").symlink_to(CI_RESULTS / "models")
        if (CI_RESULTS / "cache").is_dir():  # the token strips read the training's log-prob cache: link it too
            (res / "cache").symlink_to(CI_RESULTS / "cache")
        return res
    return write_synthetic_results(root, cfg, offsets={"verifier-lenient": 2.0})


def _is_real(results: Path) -> bool:
    return (results / "models").is_symlink()


def _score(results: Path, bench: str, judge: str, method: str) -> dict:
    return json.loads((results / "scores" / bench / judge / "tiny-add" / f"{method}.json").read_text())


def test_table1_files_rows_columns_and_values(results, tmp_path):
    from reproduce.report.table1 import build_table1

    cfg = tiny_cfg()
    rows = build_table1(cfg, "verifier", results, tmp_path, log=lambda m: None)
    with open(tmp_path / "table1_verifier.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["method_key"] for r in table] == cfg["methods"]  # settings x methods
    for col in METRIC_COLUMNS:
        for suffix in ("", "_ci_low", "_ci_high", "_paper", "_diff", "_note", "_reason", "_source"):
            assert f"{col}{suffix}" in table[0]
    for r, method in zip(rows, cfg["methods"]):
        ae, ah, mt = (_score(results, f"tiny_{b}", "verifier", method) for b in ("alpaca_eval2", "arena_hard", "mt_bench"))
        assert r["AE-WR"] == round(ae["win_rate"], 2) and r["AE-WR_se"] == round(ae["standard_error"], 2)
        # AlpacaEval's interval is +-1.96 SE
        assert (r["AE-WR_ci_low"], r["AE-WR_ci_high"]) == (round(ae["win_rate"] - 1.96 * ae["standard_error"], 2),
                                                           round(ae["win_rate"] + 1.96 * ae["standard_error"], 2))
        assert r["AH"] == round(ah["score"], 2)
        assert (r["AH_ci_low"], r["AH_ci_high"]) == (round(ah["ci_low"], 2), round(ah["ci_high"], 2))
        assert r["MT-S"] == round(mt["score"], 2) and r["MT-WR"] == round(mt["win_rate"], 2)
        # the tiny task's prompts are not AlpacaEval's 805 instructions: LC cannot exist for them (a real run
        # says "not applicable"); the synthetic score names missing files, so the cell says they are missing
        lc_note = "not applicable" if ae["length_controlled_reason"].startswith("not applicable") else "LC files missing"
        assert r["AE-LC"] is None and r["AE-LC_note"] == lc_note
        # the full reason, then why there is no paper number (the tiny setting is not in the paper)
        assert r["AE-LC_reason"] == f"{ae['length_controlled_reason']}; no paper counterpart (setting not in the paper)"
        assert r["AH_reason"] == "no paper counterpart (setting not in the paper)" and r["AH_paper"] is None
        # complete is claimed only from the score file's own coverage counts (older files have none: None)
        if "n_expected" in ah:
            assert (r["AH_n_judged"], r["AH_n_expected"]) == (ah["n_judged"], ah["n_expected"])
            assert r["AH_complete"] is (ah["n_judged"] == ah["n_expected"])
        else:
            assert r["AH_complete"] is None and r["AH_n_expected"] is None
        assert "tiny-addition-v1" in r["AH_source"] and "judge verifier" in r["AH_source"]
    md = (tmp_path / "table1_verifier.md").read_text()
    assert md.count("| Tiny addition (CPU) |") == len(cfg["methods"])
    assert f"— ({lc_note})" in md and "df_gamed" not in md.split("\n\n")[1]  # short reason in the cell
    tex = (tmp_path / "table1_verifier.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\bottomrule" in tex and tex.count(r" \\") >= len(cfg["methods"]) + 1


def test_paper_numbers_and_differences(results, tmp_path):
    from reproduce.report.table1 import collect_rows, load_paper_table

    cfg = tiny_cfg()
    cfg["settings"]["tiny-add"] = {**cfg["settings"]["tiny-add"], "paper_setting": "Llama3-8B PairRM"}
    paper = load_paper_table()["rows"]["Llama3-8B PairRM"]
    rows = collect_rows(cfg, "verifier", results)
    from reproduce.report.table1 import cell_text

    for r in rows:
        p = paper[r["method_key"]]
        assert r["AH_paper"] == p["AH"] and r["AH_diff"] == round(r["AH"] - p["AH"], 2)
        assert r["AE-WR_paper"] == p["AE"] and r["MT-S_paper"] == p["MT-S"]
        assert r["AH_reason"] == ""  # both numbers there: nothing to explain
        assert cell_text(r, "AH") == (f"{r['AH']:.1f} [{r['AH_ci_low']:.1f}, {r['AH_ci_high']:.1f}] "
                                      f"(paper {p['AH']:.1f}, Δ {r['AH_diff']:+.1f})")
        assert cell_text(r, "MT-S") == f"{r['MT-S']:.2f} (paper {p['MT-S']:.2f}, Δ {r['MT-S_diff']:+.2f})"
    cfg["settings"]["tiny-add"]["paper_setting"] = "No Such Setting"
    with pytest.raises(DataError, match="paper_setting"):
        collect_rows(cfg, "verifier", results)


def test_missing_score_file_is_an_empty_cell_that_says_why(results, tmp_path):
    from reproduce.report.table1 import collect_rows

    cfg = tiny_cfg()
    res = tmp_path / "results"
    shutil.copytree(results / "scores", res / "scores")
    (res / "scores" / "tiny_arena_hard" / "verifier" / "tiny-add" / "dpo.json").unlink()
    rows = collect_rows(cfg, "verifier", res)
    dpo = next(r for r in rows if r["method_key"] == "dpo")
    assert dpo["AH"] is None and dpo["AH_note"] == "not run" and "dpo.json" in dpo["AH_reason"]
    # an API judge without its key is "judge unavailable", not "not run"
    cfg["judges"]["verifier"] = {**cfg["judges"]["verifier"], "api_key_env": "REPRODUCE_TEST_SURELY_UNSET_KEY"}
    dpo = next(r for r in collect_rows(cfg, "verifier", res) if r["method_key"] == "dpo")
    assert dpo["AH_note"] == "judge unavailable" and "REPRODUCE_TEST_SURELY_UNSET_KEY" in dpo["AH_reason"]


def test_cells_say_how_many_games_are_behind_them(results, tmp_path):
    """A score computed from fewer games than asked is marked (``*`` and judged/expected), never plain; a
    metric missing from its score file is 'not scored', naming the file."""
    from reproduce.report.table1 import cell_text, collect_rows

    cfg = tiny_cfg()
    res = tmp_path / "results"
    shutil.copytree(results / "scores", res / "scores")
    score_file = lambda m: res / "scores" / "tiny_arena_hard" / "verifier" / "tiny-add" / f"{m}.json"  # noqa: E731
    for method, judged in (("dpo", 9), ("simpo", 10)):
        sc = json.loads(score_file(method).read_text())
        score_file(method).write_text(json.dumps({**sc, "n_expected": 10, "n_judged": judged, "n_failed": 10 - judged}))
    mt = res / "scores" / "tiny_mt_bench" / "verifier" / "tiny-add" / "tgdpo.json"
    mt.write_text(json.dumps({k: v for k, v in json.loads(mt.read_text()).items() if k != "win_rate"}))
    rows = {r["method_key"]: r for r in collect_rows(cfg, "verifier", res)}
    dpo, simpo = rows["dpo"], rows["simpo"]
    assert (dpo["AH_complete"], dpo["AH_n_judged"], dpo["AH_n_expected"]) == (False, 9, 10)
    assert dpo["AH_reason"].startswith("incomplete: computed from 9 of 10 games (1 failed")
    assert cell_text(dpo, "AH") == f"{dpo['AH']:.1f}* (9/10) [{dpo['AH_ci_low']:.1f}, {dpo['AH_ci_high']:.1f}]"
    assert simpo["AH_complete"] is True and "*" not in cell_text(simpo, "AH")
    assert rows["tgdpo"]["MT-WR"] is None and rows["tgdpo"]["MT-WR_note"] == "not scored"
    assert rows["tgdpo"]["MT-WR_reason"].startswith(f"no 'win_rate' in {mt}")
    assert cell_text(rows["tgdpo"], "MT-WR") == "— (not scored)"


def _copy_for_edit(results: Path, tmp_path: Path) -> Path:
    res = tmp_path / "results"
    for part in ("scores", "judgments", "answers"):
        shutil.copytree(results / part, res / part, ignore=shutil.ignore_patterns("_cache.jsonl"))
    return res


def test_mixed_judges_or_versions_in_a_cell_are_refused(results, tmp_path):
    from reproduce.report.table1 import collect_rows

    cfg = tiny_cfg()
    res = _copy_for_edit(results, tmp_path)
    jcfg = res / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / "tgdpo.config.json"
    original = jcfg.read_text()
    data = json.loads(original)
    data["judge"] = "verifier-lenient"
    jcfg.write_text(json.dumps(data))
    with pytest.raises(DataError, match="judges must not be mixed"):
        collect_rows(cfg, "verifier", res)
    data = json.loads(original)
    data["benchmark_config"]["version"] = "tiny-addition-v0"
    jcfg.write_text(json.dumps(data))
    with pytest.raises(DataError, match="versions must not be mixed"):
        collect_rows(cfg, "verifier", res)
    jcfg.write_text(original)
    judgments = jcfg.with_name("tgdpo.jsonl")
    lines = judgments.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["judge"] = "gpt-4o"
    judgments.write_text("\n".join([json.dumps(rec)] + lines[1:]) + "\n")
    with pytest.raises(DataError, match="judges mixed"):
        collect_rows(cfg, "verifier", res)


@pytest.fixture()
def drawn(monkeypatch, tmp_path):
    """``draw(name)`` draws a figure and returns its matplotlib Figure (kept as it is saved) and PNG path; the
    PNG is read back to check that it is the figure, with every method's color in its pixels."""
    from reproduce.report import figures, plotting

    kept = []
    save = plotting.save

    def keep(fig, out):
        kept.append(fig)
        return save(fig, out)

    monkeypatch.setattr(plotting, "save", keep)

    def draw(name: str, cfg: dict, results: Path):
        png, pdf = figures.draw_figure(name, cfg, results, tmp_path / "fig")
        (fig,) = kept[-1:]
        assert pdf.read_bytes()[:4] == b"%PDF"
        from PIL import Image

        with Image.open(png) as im:
            w, h = im.size
            fw, fh = fig.get_size_inches()
            # the canvas at 200 dpi, give or take what bbox_inches="tight" trims or adds (the legend below)
            assert 0.7 < w / (fw * 200) < 1.3 and 0.7 < h / (fh * 200) < 1.3, (im.size, fw, fh)
            colors = {c[:3] for _, c in im.convert("RGBA").getcolors(maxcolors=1 << 20)}
        return fig, colors

    return draw


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


PANELS = {"AE-WR": ("tiny_alpaca_eval2", "win_rate", "AlpacaEval 2 WR (%)"),
          "AH": ("tiny_arena_hard", "score", "Arena-Hard WR (%) [95% CI]"),
          "MT-S": ("tiny_mt_bench", "score", "MT-Bench score (1-10)"),
          "MT-WR": ("tiny_mt_bench", "win_rate", "MT-Bench WR (%)")}  # AE-LC: no value, no panel


def test_scores_figure_plots_each_score_file(results, drawn):
    from reproduce.report.plotting import COLORS

    cfg = tiny_cfg()
    fig, pixels = drawn("scores_by_benchmark", cfg, results)
    assert _titles(fig) == [h for _, _, h in PANELS.values()]
    for ax, (bench, key, _) in zip(fig.axes, PANELS.values()):
        heights = [round(b.get_height(), 2) for b in ax.patches]
        assert heights == [round(_score(results, bench, "verifier", m)[key], 2) for m in cfg["methods"]], ax.get_title()
        assert [t.get_text() for t in ax.get_xticklabels()] == ["Tiny addition (CPU)"]
        # the label above each bar is its value
        assert [t.get_text() for t in ax.texts] == [f"{h:.2f}" if bench == "tiny_mt_bench" and key == "score"
                                                    else f"{h:.1f}" for h in heights]
    ah = fig.axes[1]  # Arena-Hard's error bars span its bootstrap interval
    (lo, hi), *_ = [(seg[0][1], seg[1][1]) for c in ah.containers if hasattr(c, "lines") and c.lines[2]
                    for seg in c.lines[2][0].get_segments()]
    first = _score(results, "tiny_arena_hard", "verifier", cfg["methods"][0])
    assert (lo, hi) == pytest.approx((round(first["ci_low"], 2), round(first["ci_high"], 2)))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["SFT", "DPO", "SimPO", "TGDPO"]
    assert all(_rgb(COLORS[m]) in pixels for m in cfg["methods"])  # every method's bars are in the PNG


@pytest.mark.slow
def test_judge_scatter_plots_one_point_per_method_and_judge_pair(results, drawn):
    cfg = tiny_cfg()
    fig, _ = drawn("judge_scatter", cfg, results)
    assert _titles(fig) == [h for _, _, h in PANELS.values()]
    for ax, (bench, key, _) in zip(fig.axes, PANELS.values()):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("verifier", "verifier-lenient")
        points = [float(v) for c in ax.collections for v in c.get_offsets()[0]]
        assert points == pytest.approx([_score(results, bench, j, m)[key] for m in cfg["methods"]
                                        for j in ("verifier", "verifier-lenient")], abs=0.006)  # table: 2 decimals
        (identity,) = ax.lines
        assert list(identity.get_xdata()) == list(identity.get_ydata())  # the y = x line


def test_length_bias_plots_win_rate_against_mean_answer_tokens(results, drawn):
    import statistics

    cfg = tiny_cfg()
    fig, _ = drawn("length_bias", cfg, results)
    panels = {k: v for k, v in PANELS.items() if k != "MT-S"}
    assert [t.split("\n")[0] for t in _titles(fig)] == [h for _, _, h in panels.values()]
    for ax, (bench, key, _) in zip(fig.axes, panels.values()):
        xs, ys = [], []
        for m in cfg["methods"]:  # mean over answers of each answer's tokens (all turns)
            answers = [json.loads(x) for x in (results / "answers" / bench / "tiny-add" / f"{m}.jsonl").read_text().splitlines()]
            xs.append(sum(sum(a["meta"]["n_tokens"]) for a in answers) / len(answers))
            ys.append(_score(results, bench, "verifier", m)[key])
        drawn_pts = [float(v) for c in ax.containers for v in (c.lines[0].get_xdata()[0], c.lines[0].get_ydata()[0])]
        assert drawn_pts == pytest.approx([v for xy in zip(xs, ys) for v in xy], abs=0.006)
        assert ax.get_xlabel() == f"mean answer length (tokens), {bench}"
        r = statistics.correlation(xs, [round(y, 2) for y in ys])
        assert ax.get_title().endswith(f"Pearson r = {r:+.2f} (n={len(xs)})")


@pytest.mark.slow
def test_training_curves_plot_every_logged_step(results, drawn):
    from reproduce.config import trained_methods

    cfg = tiny_cfg()
    fig, _ = drawn("training_curves", cfg, results)
    methods = trained_methods(cfg, "tiny-add")
    assert [t.split(" — ")[0] for t in _titles(fig)] == ["training loss", "reward margin (chosen − rejected)",
                                                         "reward accuracy"]
    for ax, key in zip(fig.axes, ("loss", "rewards/margins", "rewards/accuracies")):
        assert len(ax.lines) == len(methods)
        for line, m in zip(ax.lines, methods):
            log = [json.loads(x) for x in (results / "models" / "tiny-add" / m / "train_log.jsonl").read_text().splitlines()]
            rows = [r for r in log if "loss" in r and r.get(key) is not None]
            assert list(line.get_xdata()) == [r["step"] for r in rows]
            assert list(line.get_ydata()) == [r[key] for r in rows]
            assert line.get_label() == {"dpo": "DPO", "simpo": "SimPO", "tgdpo": "TGDPO"}[m]


def test_figures_refuse_missing_inputs(tmp_path):
    from reproduce.report.figures import draw_figure

    cfg = tiny_cfg()
    with pytest.raises(DataError, match="no score files"):
        draw_figure("scores_by_benchmark", cfg, tmp_path / "results", tmp_path)
    with pytest.raises(DataError, match="train_log.jsonl"):
        draw_figure("training_curves", cfg, tmp_path / "results", tmp_path)
    one_judge = copy.deepcopy(cfg)
    one_judge["judges"].pop("verifier-lenient")
    with pytest.raises(ConfigError, match="two judges"):
        draw_figure("judge_scatter", one_judge, tmp_path / "results", tmp_path)


@pytest.mark.slow
def test_alpha_plot_needs_a_sweep(tmp_path):
    from reproduce.report.figures import alpha_sweep, draw_figure

    cfg = tiny_cfg()
    assert alpha_sweep(cfg) == {}
    with pytest.raises(ConfigError, match="sweeps no alpha.*tgdpo_a1"):
        draw_figure("alpha_sensitivity", cfg, tmp_path / "results", tmp_path)
    sweep = tiny_cfg(methods=["sft", "dpo", "simpo", "tgdpo", "tgdpo_a1", "tgdpo_a2"])
    assert alpha_sweep(sweep) == {"tiny-add": [(0.5, "tgdpo"), (1.0, "tgdpo_a1"), (2.0, "tgdpo_a2")]}
    res = write_synthetic_results(tmp_path, sweep)
    png, _ = draw_figure("alpha_sensitivity", sweep, res, tmp_path / "fig")
    assert png.stat().st_size > 10_000


def test_token_rewards_are_beta_times_guide_minus_ref(results, tmp_path):
    if not _is_real(results):
        pytest.skip("needs the trained tiny models of .ci-work/tiny/results (run perf/tiny_e2e.py)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reproduce.report.token_rewards import example_pairs, response_token_logps

    cfg = tiny_cfg()
    ex = example_pairs(cfg, results, "tiny-add", n_pairs=1, scan=4)
    assert ex["beta"] == cfg["settings"]["tiny-add"]["methods"]["tgdpo"]["beta"] and ex["guide"].endswith("/dpo")
    pair = ex["pairs"][0]
    prefs = [json.loads(x) for x in (results / "data" / "tiny-add" / "prefs.jsonl").read_text().splitlines()[:4]]
    src = next(p for p in prefs if p["pair_id"] == pair["pair_id"])
    tok = AutoTokenizer.from_pretrained(str(results / "models" / "tiny-add" / "sft"))
    ref = AutoModelForCausalLM.from_pretrained(str(results / "models" / "tiny-add" / "sft"), dtype=torch.float32).eval()
    gde = AutoModelForCausalLM.from_pretrained(str(results / "models" / "tiny-add" / "dpo"), dtype=torch.float32).eval()
    toks, lr = response_token_logps(ref, tok, src["prompt"], src["chosen"])
    _, lg = response_token_logps(gde, tok, src["prompt"], src["chosen"])
    assert "".join(toks).startswith(src["chosen"][0]["content"])
    assert pair["chosen"]["r"] == pytest.approx([ex["beta"] * (g - r) for g, r in zip(lg, lr)], abs=1e-6)
    from reproduce.report.figures import token_rewards_figure

    token_rewards_figure(cfg, results, tmp_path / "token_rewards.png", n_pairs=2)
    assert (tmp_path / "token_rewards.png").stat().st_size > 10_000


@pytest.mark.slow
def test_report_embeds_tables_figures_and_provenance(results, tmp_path):
    from reproduce.report.agreement import build_agreement
    from reproduce.report.figures import draw_figure
    from reproduce.report.report import build_report
    from reproduce.report.table1 import build_table1

    cfg = tiny_cfg()
    tables, figs = tmp_path / "tables", tmp_path / "figures"
    build_table1(cfg, "verifier", results, tables, log=lambda m: None, stem="table1")
    build_table1(cfg, "verifier-lenient", results, tables, log=lambda m: None)
    build_agreement(cfg, results, tables, log=lambda m: None)
    names = ["scores_by_benchmark", "judge_scatter"]
    for n in names:
        draw_figure(n, cfg, results, figs)
    out = tmp_path / "report.md"
    text = build_report(cfg, results, tables, figs, out, figures=names, log=lambda m: None)
    assert "## Table 1 — judge: verifier" in text and "## Table 1 — judge: verifier-lenient" in text
    assert "## Judge agreement" in text and "Spearman" in text
    for n in names:
        assert f"]({n}.png)".replace(f"]({n}", f"](figures/{n}") in text
    prov = [line for line in text.splitlines() if line.startswith("| tiny_")]
    body = [line for line in prov if "tiny-addition-v1" in line and "/scores/" in line]
    assert len(body) == len(cfg["benchmarks"]) * len(cfg["judges"]) * len(cfg["methods"])
    # every provenance row names the judge job's config hash, which the resolved config beside the judgments holds
    jcfg = json.loads((results / "judgments" / "tiny_arena_hard" / "verifier" / "tiny-add" / "tgdpo.config.json").read_text())
    assert jcfg["config_hash"] in text
    with pytest.raises(DataError, match="missing figure"):
        build_report(cfg, results, tables, figs, out, figures=["training_curves"], log=lambda m: None)


def test_benchmark_judges_route_cells_of_the_table_judge(results):
    """``benchmark_judges`` (MT-Bench by its own official judge in the paper preset): the table judge's MT
    cells come from the routed judge's score files by default; routed=False reads the table judge's own."""
    from reproduce.report.table1 import collect_rows

    cfg = tiny_cfg()
    assert cfg["table_judge"] == "verifier"
    cfg["benchmark_judges"] = {"tiny_mt_bench": "verifier-lenient"}
    for routed, mt_judge in ((None, "verifier-lenient"), (True, "verifier-lenient"), (False, "verifier")):
        rows = collect_rows(cfg, "verifier", results) if routed is None else collect_rows(cfg, "verifier", results, routed)
        for r in rows:
            assert r["judge"] == "verifier"  # the table's judge, whichever judge filled a cell
            mt = _score(results, "tiny_mt_bench", mt_judge, r["method_key"])
            assert r["MT-S"] == round(mt["score"], 2) and f"| judge {mt_judge} (job" in r["MT-S_source"]
            assert "| judge verifier (job" in r["AH_source"]  # not routed: the table judge's own
