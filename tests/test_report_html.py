"""The HTML report (results/report.html) in a real headless Chromium (Debian's chromium + chromedriver,
driven by selenium), opened from disk with no server.

The page is the tiny CI run's own ``.ci-work/tiny/results/report.html`` when the run made one, else it is
built here from that run's results (with its figures and token-reward strips), else from a synthetic
results tree in the workflow's formats (tests/support/report_fixture.py). The tests fail on any console
error, check every Table-1 cell against ``table1.csv``, click from a cell to an item and check its verdict
against the judgment file, check a filter's count against the judgment files, and save a screenshot to
``.ci-work/artifacts/report_html.png`` (CI keeps it). One slow test does the same on a synthetic page of the
paper preset's size.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from reproduce.config import load_config

ROOT = Path(__file__).resolve().parent.parent
CI_WORK = ROOT / ".ci-work" / "tiny"
ARTIFACTS = ROOT / ".ci-work" / "artifacts"


def tiny_cfg() -> dict:
    return load_config({"preset": "tiny"})


def _full_run(results: Path, cfg: dict) -> bool:
    return all((results / "judgments" / b / j / s / f"{m}.jsonl").exists() for b in cfg["benchmarks"]
               for j in cfg["judges"] for s in cfg["settings"] for m in cfg["methods"]) and (
        results / "tables" / "table1.csv").exists()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    """{"html": the page, "results": the results it shows, "real": from the tiny run?}"""
    from reproduce.report.html.page import build_html_report

    cfg = tiny_cfg()
    ci_results = CI_WORK / "results"
    if (ci_results / "report.html").exists() and _full_run(ci_results, cfg):
        return {"html": ci_results / "report.html", "results": ci_results, "real": True}
    out = tmp_path_factory.mktemp("report_html")
    if _full_run(ci_results, cfg):
        figures = [n for n in ("scores_by_benchmark", "length_bias", "method_differences")
                   if (CI_WORK / "figures" / f"{n}.png").exists()]
        build_html_report(cfg, ci_results, ci_results / "tables", CI_WORK / "figures", out / "report.html",
                          figures=figures, log=lambda m: None)
        return {"html": out / "report.html", "results": ci_results, "real": True}
    from tests.support.report_fixture import write_report_fixture

    results = write_report_fixture(out, cfg, long_text=False)
    _token_inputs(results, cfg, 16, long_text=False)
    build_html_report(cfg, results, results / "tables", out / "figures", results / "report.html", figures=[],
                      log=lambda m: None)
    return {"html": results / "report.html", "results": results, "real": False}


def _token_inputs(results: Path, cfg: dict, n_pairs: int, long_text: bool) -> None:
    """What the token-reward strips of synthetic results read (a tiny tokenizer, pairs, a log-prob cache and
    the training index into it; tests/support/report_fixture.py)."""
    from tests.conftest import build_tiny_model
    from tests.support.report_fixture import write_token_fixture

    tokenizer = results.parent / "tokenizer"
    if not (tokenizer / "tokenizer_config.json").exists():
        build_tiny_model(tokenizer)
    write_token_fixture(results, cfg, tokenizer, n_pairs, long_text=long_text)


@pytest.fixture(scope="module")
def browser():
    from tests.support.browser import chromium, chromium_missing

    if chromium_missing():
        pytest.skip(f"{chromium_missing()}; scripts/test.sh installs them as root")
    with chromium() as driver:
        driver.implicitly_wait(10)
        yield driver


@pytest.fixture()
def page(browser, site):
    from tests.support.browser import console_errors

    browser.get(site["html"].resolve().as_uri())
    assert console_errors(browser) == []
    yield browser
    assert console_errors(browser) == [], "console errors while using the page"


def _click(driver, element) -> None:
    """Click like a reader: scrolled to the middle of the window (the sticky header covers the top)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.browser
def test_table1_cells_equal_table1_csv(page, site):
    _check_table1(page, site["results"], tiny_cfg())


def _check_table1(page, results: Path, cfg: dict) -> None:
    """Every judge's Table 1 on the page equals its csv: setting, method, value, paper value, incomplete mark."""
    from selenium.webdriver.common.by import By

    from reproduce.report.table1 import COLUMN_KEYS

    for judge in [cfg["table_judge"], *[j for j in cfg["judges"] if j != cfg["table_judge"]]]:
        _click(page, page.find_element(By.CSS_SELECTOR, f"#table1-judges button[data-judge='{judge}']"))
        stem = "table1" if judge == cfg["table_judge"] else f"table1_{judge}"
        rows = _csv_rows(results / "tables" / f"{stem}.csv")
        shown = page.find_elements(By.CSS_SELECTOR, "#table1-table tbody tr")
        assert len(shown) == len(rows)
        for tr, row in zip(shown, rows):
            tds = tr.find_elements(By.TAG_NAME, "td")
            assert [tds[0].text, tds[1].text] == [row["setting"], row["method"]]
            for td, col in zip(tds[2:], COLUMN_KEYS):
                assert td.get_attribute("data-col") == col
                if row[col] == "":
                    assert td.text.startswith("—"), (judge, row["method"], col, td.text)
                    continue
                nd = 2 if col == "MT-S" else 1
                assert float(td.get_attribute("data-value")) == pytest.approx(float(row[col]))
                assert td.text.startswith(f"{float(row[col]):.{nd}f}"), (judge, row["method"], col, td.text)
                if row[f"{col}_paper"]:
                    assert f"paper {float(row[f'{col}_paper']):.{nd}f}" in td.text
                incomplete = row.get(f"{col}_complete") == "False"
                assert ("incomplete" in td.get_attribute("class")) == incomplete


@pytest.mark.browser
@pytest.mark.slow
def test_paper_preset_sized_page(browser, tmp_path):
    """The paper preset's size (4 settings x 4 methods x (805 + 500 + 80) questions x its judges; short texts:
    the counts, not the lengths, are what this checks) with its token strips (48 pairs of LLM-length answers
    per setting): no console error, the strips drawn from the whole setting's values, Table 1 equal to the
    csv, and a cell of the 805-question benchmark opens all 805 items, whose clicked verdict is the file's."""
    from selenium.webdriver.common.by import By

    from reproduce.report.html.page import build_html_report
    from tests.support.browser import console_errors
    from tests.support.report_fixture import write_report_fixture

    cfg = load_config({"preset": "paper"})
    results = write_report_fixture(tmp_path, cfg, long_text=False, rounds=5)
    # the preset's token strips: token_reward_pairs pairs of LLM-length answers per setting (~10^5 values each)
    _token_inputs(results, cfg, cfg["token_reward_pairs"], long_text=True)
    build_html_report(cfg, results, results / "tables", tmp_path / "figures", results / "report.html", figures=[],
                      log=lambda m: None)
    browser.get((results / "report.html").as_uri())
    _check_strips(browser, cfg)
    _check_table1(browser, results, cfg)
    setting = next(iter(cfg["settings"]))
    _click(browser, browser.find_element(By.CSS_SELECTOR, f"#table1-judges button[data-judge='{cfg['table_judge']}']"))
    _click(browser, browser.find_element(
        By.CSS_SELECTOR, f"#table1-table td.link[data-col='AE-WR'][data-method='tgdpo'][data-setting='{setting}']"))
    browser.find_element(By.CSS_SELECTOR, "#items-table tbody tr")  # waits for the benchmark's index script
    assert browser.find_element(By.ID, "items-status").text.startswith("805 of 805 items")
    row = browser.find_elements(By.CSS_SELECTOR, "#items-table tbody tr")[7]
    qid = row.get_attribute("data-id")
    _click(browser, row)
    path = results / "judgments" / "alpaca_eval2" / cfg["table_judge"] / setting / "tgdpo.jsonl"
    rec = next(r for r in map(json.loads, path.read_text().splitlines()) if r["question_id"] == qid)
    verdict = browser.find_element(By.CSS_SELECTOR, f"#item-detail .verdict[data-judge='{cfg['table_judge']}'][data-method='tgdpo']")
    assert f"({rec['preference']:.3f})" in verdict.find_element(By.CSS_SELECTOR, ".vsum").text
    assert console_errors(browser) == []


def _check_strips(browser, cfg: dict) -> None:
    """The first setting's strips draw (their colour scale spans all its pairs' values), then the last pair's."""
    from selenium.webdriver.common.by import By

    _click(browser, browser.find_element(By.ID, "tokens-load"))
    browser.find_element(By.CSS_SELECTOR, "#tokens-body .pair")  # waits for the setting's data script
    key = f"tokens__{next(iter(cfg['settings']))}"
    n_values = browser.execute_script(f"return window.REPORT_DATA['{key}'].pairs.reduce((a, p) => a + "
                                      "p.chosen.r.length + p.rejected.r.length, 0)")
    assert n_values > 100_000  # the size at which spreading the values into Math.max overflowed the stack
    # type the last pair's number into the pair box (its change event redraws the strips)
    browser.execute_script("const e = document.getElementById('pair-index'); e.value = arguments[0]; "
                           "e.dispatchEvent(new Event('change'))", str(cfg["token_reward_pairs"]))
    pair = browser.find_element(By.CSS_SELECTOR, f"#tokens-body .pair[data-pair$='-{cfg['token_reward_pairs'] - 1}']")
    last = browser.execute_script(f"return window.REPORT_DATA['{key}'].pairs.at(-1).chosen.r.length")
    assert len(pair.find_elements(By.CSS_SELECTOR, ".strip")[0].find_elements(By.CSS_SELECTOR, ".tok")) == last


def _judgments(results: Path, bench: str, judge: str, method: str) -> dict[str, dict]:
    path = results / "judgments" / bench / judge / "tiny-add" / f"{method}.jsonl"
    return {r["question_id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.browser
def test_click_cell_to_item_shows_the_judgment_files_verdict(page, site):
    from selenium.webdriver.common.by import By

    cfg = tiny_cfg()
    judge = cfg["table_judge"]
    _click(page, page.find_element(By.CSS_SELECTOR, "#table1-table td.link[data-col='AH'][data-method='tgdpo']"))
    rows = page.find_elements(By.CSS_SELECTOR, "#items-table tbody tr")
    assert rows, page.find_element(By.ID, "items-status").text
    row = rows[3]
    qid = row.get_attribute("data-id")
    _click(page, row)
    detail = page.find_element(By.CSS_SELECTOR, f"#item-detail .detail[data-id='{qid}']")
    rec = _judgments(site["results"], "tiny_arena_hard", judge, "tgdpo")[qid]
    verdict = detail.find_element(By.CSS_SELECTOR, f".verdict[data-judge='{judge}'][data-method='tgdpo']")
    labels = [g["score"] or "—" for g in rec["games"]]
    assert verdict.find_element(By.CSS_SELECTOR, ".vsum").text == " / ".join(labels)
    shown = [e.text for e in verdict.find_elements(By.CSS_SELECTOR, ".gverdict")]
    assert [s.split(" ")[0] for s in shown] == labels
    assert rec["games"][0]["judgment"].strip()[:40] in verdict.text  # the judge's own explanation is shown
    # game 1 shows the baseline as A, game 2 the model: a flip is a different result for the model
    model_result = [{"A": 0, "=": 0.5, "B": 1}[labels[0][1] if labels[0][1] in "=" else labels[0][0]],
                    {"A": 1, "=": 0.5, "B": 0}[labels[1][1] if labels[1][1] in "=" else labels[1][0]]]
    assert ("position flip" in verdict.text) == (model_result[0] != model_result[1])
    ans = json.loads([line for line in (site["results"] / "answers" / "tiny_arena_hard" / "tiny-add" / "tgdpo.jsonl")
                      .read_text().splitlines() if json.loads(line)["question_id"] == qid][0])
    assert ans["turns"][0] in detail.text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.execute_script("document.getElementById('items').scrollIntoView()")
    page.save_screenshot(str(ARTIFACTS / "report_html.png"))


@pytest.mark.browser
def test_a_beats_b_filter_counts_the_judgment_files(page, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from reproduce.report.differences import prompt_stats

    cfg = tiny_cfg()
    judge = cfg["table_judge"]
    _click(page, page.find_element(By.CSS_SELECTOR, "#table1-table td.link[data-col='AE-WR'][data-method='tgdpo']"))
    page.find_element(By.CSS_SELECTOR, "#items-table tbody tr")
    Select(page.find_element(By.ID, "sel-b")).select_by_value("sft")
    Select(page.find_element(By.ID, "sel-filter")).select_by_value("a_wins")
    status = page.find_element(By.ID, "items-status").text
    per = {}
    for m in ("tgdpo", "sft"):
        recs = list(_judgments(site["results"], "tiny_alpaca_eval2", judge, m).values())
        st = prompt_stats(recs, "alpaca_eval2", "AE-WR")
        per[m] = {q: (n / d if d else None) for q, n, d in zip(st.question_ids, st.num, st.den)}
    wins = sum(1 for q, v in per["tgdpo"].items() if v is not None and per["sft"].get(q) is not None and v > per["sft"][q])
    assert status.startswith(f"{wins} of {len(per['tgdpo'])} items"), status


@pytest.mark.browser
def test_forest_plot_row_opens_the_pairs_items(page, site):
    from selenium.webdriver.common.by import By

    rows = page.find_elements(By.CSS_SELECTOR, "svg.forest g.frow")
    diffs = json.loads((site["results"] / "tables" / "method_differences.json").read_text())["rows"]
    cfg = tiny_cfg()
    assert len(rows) == sum(d["judge"] == cfg["table_judge"] for d in diffs)
    _click(page, rows[0])
    first = [d for d in diffs if d["judge"] == cfg["table_judge"]][0]
    page.find_element(By.CSS_SELECTOR, "#items-table tbody tr")
    assert page.find_element(By.ID, "sel-a").get_attribute("value") == first["method_a"]
    assert page.find_element(By.ID, "sel-b").get_attribute("value") == first["method_b"]


@pytest.mark.browser
def test_token_reward_strip_for_a_chosen_pair(page, site):
    from selenium.webdriver.common.by import By

    _click(page, page.find_element(By.ID, "tokens-load"))
    _click(page, page.find_element(By.ID, "pair-next"))  # the second pair
    prefs = [json.loads(line) for line in (site["results"] / "data" / "tiny-add" / "prefs.jsonl").read_text().splitlines()]
    pair = page.find_element(By.CSS_SELECTOR, f"#tokens-body .pair[data-pair='{prefs[1].get('pair_id', '1')}']")
    assert page.find_element(By.ID, "pair-index").get_attribute("value") == "2"
    assert prefs[1]["prompt"][-1]["content"] in pair.text
    strips = pair.find_elements(By.CSS_SELECTOR, ".strip")
    assert len(strips) == 2
    data = page.execute_script("return window.REPORT_DATA['tokens__tiny-add'].pairs[1]")
    for strip, side in zip(strips, ("chosen", "rejected")):
        toks = strip.find_elements(By.CSS_SELECTOR, ".tok")
        assert [t.get_attribute("title") for t in toks] == [f"r_t = {r:.4f}" for r in data[side]["r"]]
        assert prefs[1][side][-1]["content"] in "".join(data[side]["tokens"])
    assert any(abs(r) > 1e-6 for r in data["chosen"]["r"])  # the guide differs from the reference


def test_markdown_is_escaped():
    from reproduce.report.html.markdown import md_to_html

    out = md_to_html("# T\n\n| a | b |\n|---|---|\n| <script>x</script> | `c` |\n\ntext **b**")
    assert "<script>" not in out and "&lt;script&gt;" in out and "<code>c</code>" in out and "<b>b</b>" in out


@pytest.mark.slow
def test_per_item_values_average_to_the_score(tmp_path):
    """The drill-down's per-item values are the table's: their mean is the score file's win rate."""
    from reproduce.report.html.items import bench_items

    from tests.support.report_fixture import write_report_fixture

    cfg = tiny_cfg()
    results = write_report_fixture(tmp_path, cfg, long_text=False)
    data = bench_items(cfg, results, "tiny_alpaca_eval2", "tiny-add", None)
    vals = [it["v"]["verifier"]["dpo"]["m"]["AE-WR"] for it in data["items"]]
    score = json.loads((results / "scores" / "tiny_alpaca_eval2" / "verifier" / "tiny-add" / "dpo.json").read_text())
    assert sum(vals) / len(vals) == pytest.approx(score["win_rate"], abs=1e-3)
    assert os.path.basename(data["items"][0]["id"]) and data["missing"] == []
    # a benchmark the run has no files for is an empty list that names what is missing, not an error
    for kind in ("answers", "judgments"):
        shutil.rmtree(results / kind / "tiny_mt_bench" / ("tiny-add" if kind == "answers" else ""))
    empty = bench_items(cfg, results, "tiny_mt_bench", "tiny-add", None)
    assert empty["items"] == [] and any("judgments" in m for m in empty["missing"])


@pytest.mark.browser
def test_everything_loads_from_disk(page, site):
    """Nothing comes from a network (no CDN): after opening a benchmark and an item, every script,
    stylesheet, image and link target the page holds is a file in the page's own folder, and the CSS
    imports nothing (Chromium's Resource Timing lists no file:// loads, so the DOM is what is checked)."""
    from selenium.webdriver.common.by import By

    _click(page, page.find_element(By.CSS_SELECTOR, "#table1-table td.link[data-col='MT-S'][data-method='dpo']"))
    _click(page, page.find_element(By.CSS_SELECTOR, "#items-table tbody tr"))
    page.find_element(By.CSS_SELECTOR, "#item-detail .detail .verdict")
    urls = page.execute_script("return [...document.querySelectorAll('[src],[href]')].map(e => e.src || e.href)"
                               ".filter(u => !u.startsWith(location.href.split('#')[0] + '#'))")
    folder = site["html"].resolve().parent.as_uri() + "/"
    assert any("/data/items__tiny_mt_bench__" in u for u in urls)  # the benchmark's index and its text chunk
    assert [u for u in urls if not u.startswith(folder)] == []
    css = (site["html"].parent / f"{site['html'].stem}_files" / "report.css").read_text()
    assert "url(" not in css and "@import" not in css


def test_inline_json_escapes_every_less_than():
    """Inline page data never holds '<' (a '</script' or '<!--' in any text would change how the HTML parser
    reads the script); it parses back to the same object."""
    from reproduce.report.html.page import _inline_json

    obj = {"q": "a </script><script>alert(1)</script> <!-- b <", "n": [1, 2]}
    text = _inline_json(obj)
    assert "<" not in text and json.loads(text) == obj


def test_a_real_tie_is_not_labelled_identical_outputs():
    """alpaca_eval's identical-output draw is told by comparing the outputs: an imported tie (1.5, no raw
    completion) between different outputs is a judged tie."""
    from reproduce.report.html.items import _ae_games

    tie = {"output_1": "ref answer", "output_2": "model answer", "preference": 1.5, "raw_completion": None}
    games, summary, _ = _ae_games(tie)
    assert summary == "tie (1.500)" and len(games) == 1 and "tie preferred" in games[0]["verdict"]
    same = {**tie, "output_2": "ref answer"}
    assert _ae_games(same)[1] == "identical outputs: not judged (tie, 1.5)"


def test_files_folder_is_owned_by_marker_and_swapped_after_a_build(tmp_path):
    """report-html replaces only a `_files` folder it marked, and only after a build that succeeded."""
    from reproduce.io import DataError
    from reproduce.report.html.page import MARKER, build_html_report
    from tests.support.report_fixture import write_report_fixture

    cfg = tiny_cfg()
    results = write_report_fixture(tmp_path, cfg, long_text=False, rounds=2)
    out = tmp_path / "site" / "report.html"
    files = tmp_path / "site" / "report_files"
    files.mkdir(parents=True)
    (files / "mine.txt").write_text("a user's file")
    build = lambda **kw: build_html_report(cfg, results, results / "tables", tmp_path / "figures", out,
                                           token_pairs=0, log=lambda m: None, **{"figures": [], **kw})
    with pytest.raises(DataError, match="not a folder report-html wrote"):
        build()
    assert (files / "mine.txt").read_text() == "a user's file" and not out.exists()
    (files / "mine.txt").unlink()
    files.rmdir()
    build()
    assert (files / MARKER).is_file() and (files / "report.js").is_file()
    (files / "data" / "stale.js").write_text("old")
    with pytest.raises(DataError, match="missing figure"):  # a failed build leaves the previous report whole
        build(figures=["no_such_figure"])
    assert (files / "data" / "stale.js").is_file() and (files / MARKER).is_file()
    build()
    assert not (files / "data" / "stale.js").exists() and (files / "report.js").is_file()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no build folder left
