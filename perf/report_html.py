"""The HTML report's size and speed in headless Chromium: the tiny run's page and a paper-preset-sized page.

For each page it prints the bytes of ``report.html``, of ``report_files/``, of the largest item index (loaded
when a benchmark is opened) and of the largest text chunk (loaded when an item is opened), the first-contentful-paint time (median and worst of ``--loads`` loads, from the browser's
Paint Timing API; goal <= 2000 ms for the paper-preset size) and the time from clicking a Table-1 cell of
the largest benchmark to its item list on screen (index script loaded, evaluated and rendered), and from
clicking an item to its verdicts on screen (text chunk loaded and drawn).

The paper-preset-sized results are synthetic (tests/support/report_fixture.py: every file in the workflow's
format, answers of 100-500 words and judge explanations of 200-500 words, 4 settings x 4 methods x
(805 + 500 + 80) questions x the preset's judges, and the token strips' pairs, log-prob cache and training
index for the preset's token_reward_pairs); they are built once into ``--work`` (``--fresh`` rebuilds).
The tiny page is ``.ci-work/tiny/results/report.html`` (from ``perf/tiny_e2e.py``) or, when that
run has results but no page, built from them into ``--work``.

    python perf/report_html.py [--work .ci-work/perf/report_html] [--fresh] [--loads 3] [--only paper|tiny]
    python perf/report_html.py --page results/report.html      # any page

Exits 1 if the paper-size first paint misses the goal.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

# scikit-learn's deprecation notes from Arena-Hard scoring (once per bootstrap fit) would bury the figures
warnings.simplefilter("ignore", FutureWarning)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.support

from reproduce.config import load_config  # noqa: E402
from reproduce.report.html.page import build_html_report  # noqa: E402
from tests.support.browser import chromium, chromium_missing, console_errors, first_contentful_paint_ms  # noqa: E402

GOAL_MS = 2000.0
TINY = ROOT / ".ci-work" / "tiny"


def _quiet(*args, **kwargs) -> None:
    pass


def paper_page(work: Path, fresh: bool) -> Path:
    """Build (or reuse) the paper-preset-sized synthetic results and their page under ``work``."""
    from reproduce.report.figures import draw_figure
    from tests.support.report_fixture import write_report_fixture

    cfg = load_config({"preset": "paper"})
    root = work / "paper"
    html = root / "results" / "report.html"
    if fresh and root.exists():
        shutil.rmtree(root)
    if not (root / "results" / "tables" / "table1.csv").exists():
        t = time.time()
        write_report_fixture(root, cfg, long_text=True)
        print(f"paper-size synthetic results written in {time.time() - t:.0f} s", flush=True)
    if not (root / "results" / "cache" / "token_logps").exists():  # the token strips' inputs, as training leaves them
        from tests.conftest import build_tiny_model
        from tests.support.report_fixture import write_token_fixture

        if not (root / "tokenizer" / "tokenizer_config.json").exists():
            build_tiny_model(root / "tokenizer")
        write_token_fixture(root / "results", cfg, root / "tokenizer", cfg["token_reward_pairs"], long_text=True)
    figures = ["scores_by_benchmark", "method_differences"]
    for name in figures:
        if not (root / "figures" / f"{name}.png").exists():
            draw_figure(name, cfg, root / "results", root / "figures")
    t = time.time()
    build_html_report(cfg, root / "results", root / "results" / "tables", root / "figures", html, figures=figures,
                      log=_quiet)
    print(f"paper-size page built in {time.time() - t:.1f} s (reproduce report-html)", flush=True)
    return html


def tiny_page(work: Path) -> Path | None:
    """The tiny run's page, or one built from its results; None when there is no tiny run."""
    if (TINY / "results" / "report.html").exists():
        return TINY / "results" / "report.html"
    if not (TINY / "results" / "tables" / "table1.csv").exists():
        return None
    cfg = load_config({"preset": "tiny"})
    out = work / "tiny" / "report.html"
    from reproduce.report.figures import default_figures

    figures = [n for n in default_figures(cfg) if (TINY / "figures" / f"{n}.png").exists()]
    build_html_report(cfg, TINY / "results", TINY / "results" / "tables", TINY / "figures", out, figures=figures,
                      log=_quiet)
    return out


def sizes(html: Path) -> dict:
    """Bytes of the page, its folder, its largest item index and its largest text chunk."""
    files = html.parent / f"{html.stem}_files"
    data = list((files / "data").glob("items__*.js"))
    chunk = [p for p in data if p.stem.rsplit("__", 1)[-1].isdigit()]
    index = [p for p in data if p not in chunk]
    big = lambda ps: max((p.stat().st_size for p in ps), default=0)  # noqa: E731
    return {"html": html.stat().st_size, "folder": sum(p.stat().st_size for p in files.rglob("*") if p.is_file()),
            "largest_index": big(index), "largest_chunk": big(chunk)}


def measure(driver, html: Path, loads: int) -> dict:
    """First-contentful-paint times of ``loads`` loads and the time to open the largest benchmark's items."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    fcp = []
    for _ in range(loads):
        driver.get("about:blank")
        driver.get(html.resolve().as_uri())
        fcp.append(first_contentful_paint_ms(driver))
    errors = console_errors(driver)
    n_items = driver.execute_script("return Object.values(window.REPORT.items).map(e => [e.key, e.n_items, e.bytes])")
    key = max(n_items, key=lambda x: x[2])[0]
    bench = key.split("__")[1]
    cell = driver.execute_script(
        "const t = window.REPORT.tables[window.REPORT.table_judge].rows; for (const r of t) for (const [c, v] of "
        "Object.entries(r.cells)) if (v.bench === arguments[0] && v.value !== null) return [c, r.method_key]; return null;", bench)
    opened = item_ms = None
    if cell:
        td = driver.find_element(By.CSS_SELECTOR, f"#table1-table td.link[data-col='{cell[0]}'][data-method='{cell[1]}']")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", td)
        t = time.time()
        td.click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#items-table tbody tr"))
        opened = (time.time() - t) * 1000
        rows = driver.find_elements(By.CSS_SELECTOR, "#items-table tbody tr")
        row = rows[len(rows) // 2]
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
        t = time.time()
        row.click()
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#item-detail .detail .verdict"))
        item_ms = (time.time() - t) * 1000
    errors += console_errors(driver)
    return {"fcp": fcp, "open_ms": opened, "item_ms": item_ms, "open_key": key, "errors": errors}


def report(name: str, html: Path, driver, loads: int) -> dict:
    """Print one page's figures; returns them."""
    s, m = sizes(html), measure(driver, html, loads)
    fcp = [x for x in m["fcp"] if x is not None]
    print(f"{name}: report.html {s['html'] / 1e3:.0f} kB, report_files/ {s['folder'] / 1e6:.1f} MB "
          f"(largest item index {s['largest_index'] / 1e6:.2f} MB, largest text chunk {s['largest_chunk'] / 1e6:.2f} MB); "
          f"first contentful paint "
          f"median {statistics.median(fcp):.0f} ms, worst {max(fcp):.0f} ms over {len(fcp)} loads; "
          f"cell -> items of {m['open_key']}: {m['open_ms']:.0f} ms; item -> verdicts: {m['item_ms']:.0f} ms; "
          f"console errors: {len(m['errors'])}", flush=True)
    for e in m["errors"]:
        print(f"  console error: {e}")
    return {**s, **m, "fcp_median": statistics.median(fcp), "fcp_max": max(fcp)}


def main() -> None:
    """Measure the pages (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=str(ROOT / ".ci-work" / "perf" / "report_html"), help="scratch directory")
    ap.add_argument("--fresh", action="store_true", help="rebuild the paper-size synthetic results")
    ap.add_argument("--loads", type=int, default=3, help="page loads per first-paint figure (default 3)")
    ap.add_argument("--only", choices=("paper", "tiny"), help="measure one page only")
    ap.add_argument("--page", help="measure this report.html only (any results folder's page)")
    args = ap.parse_args()
    if chromium_missing():
        sys.exit(f"perf/report_html.py: {chromium_missing()}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    pages = [(f"page {args.page}", Path(args.page))] if args.page else []
    if not args.page and args.only != "paper":
        tiny = tiny_page(work)
        if tiny is None:
            print("tiny: no tiny run in .ci-work/tiny (run perf/tiny_e2e.py first); skipped")
        else:
            pages.append(("tiny run", tiny))
    if args.only != "tiny" and not args.page:
        pages.append(("paper-preset size (synthetic)", paper_page(work, args.fresh)))
    ok = True
    with chromium() as driver:
        for name, html in pages:
            r = report(name, html, driver, args.loads)
            if name.startswith("paper") and r["fcp_max"] > GOAL_MS:
                print(f"  MISSED: first paint {r['fcp_max']:.0f} ms > {GOAL_MS:.0f} ms")
                ok = False
            ok = ok and not r["errors"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
