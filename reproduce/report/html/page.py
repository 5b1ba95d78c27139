"""Write the HTML report: ``results/report.html`` and its folder ``results/report_files/``.

The page opens from disk with no server and loads nothing from the network. ``report.html`` holds the
first screen's data inline (Table 1 per judge, differences, agreement, figure list, plan/bridge slots) and
loads ``report_files/report.js`` and ``report.css`` (plain JavaScript and CSS of this package, no library).
The drill-down's data is one script per benchmark and setting, ``report_files/data/items__<bench>__<setting>.js``,
and the token-reward strips one per setting, ``report_files/data/tokens__<setting>.js``; the page adds the
script tag only when a reader opens that benchmark (browsers refuse ``fetch()`` of ``file://`` URLs, a
script tag they load). Each data script assigns ``JSON.parse('...')`` to ``window.REPORT_DATA[key]``
(parsing a JSON string is faster than evaluating the same object literal).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from reproduce.io import DataError, atomic_write_text
from reproduce.report.html.items import bench_items
from reproduce.report.html.summary import summary

ASSETS = ("report.js", "report.css")


def items_key(bench: str, setting: str) -> str:
    """The data key (and file stem) of one benchmark and setting's items."""
    return f"items__{bench}__{setting}"


def tokens_key(setting: str) -> str:
    """The data key (and file stem) of one setting's token-reward strips."""
    return f"tokens__{setting}"


def data_script(key: str, obj) -> str:
    """A script that registers ``obj`` as ``window.REPORT_DATA[key]``."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"(window.REPORT_DATA=window.REPORT_DATA||{{}})[{json.dumps(key)}]=JSON.parse({json.dumps(text, ensure_ascii=False)});\n"


def _inline_json(obj) -> str:
    # inside <script>: a "</" in any text would close the tag
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


def _questions(cfg: dict, bench: str) -> tuple[list[dict] | None, str | None]:
    from reproduce.benchmarks.questions import load_questions

    try:
        return load_questions(cfg["benchmarks"][bench]), None
    except Exception as e:  # noqa: BLE001 — a report without question texts is still a report; it says why
        return None, f"{type(e).__name__}: {e}"


def _copy_figures(figures_dir: Path, names: list[str], dest: Path) -> list[dict]:
    from reproduce.report.report import CAPTIONS

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        png = figures_dir / f"{name}.png"
        if not png.exists():
            raise DataError(f"report html: missing figure {png} (build it with `reproduce figure --name {name}`)")
        shutil.copyfile(png, dest / png.name)
        out.append({"name": name, "src": f"report_files/figures/{png.name}", "caption": CAPTIONS.get(name, name)})
    return out


def build_html_report(cfg: dict, results: Path, tables_dir: Path, figures_dir: Path, out: Path,
                      figures: list[str] | None = None, token_pairs: int | None = None, log=print) -> Path:
    """Write ``out`` (``results/report.html``) and ``<out stem>_files/`` (assets, figures, data scripts).

    ``figures``: names to show (default: all the config supports). ``token_pairs``: compute the token-reward
    strips for the first N preference pairs of each setting (default all; 0: none, the page says so).
    Raises ``DataError`` naming the file when a table or figure is missing.
    """
    from reproduce.report.figures import default_figures

    results, tables_dir, figures_dir, out = Path(results), Path(tables_dir), Path(figures_dir), Path(out)
    files = out.parent / f"{out.stem}_files"
    data_dir = files / "data"
    if files.exists():
        shutil.rmtree(files)  # a stale data script of a benchmark no longer in the preset must not linger
    data_dir.mkdir(parents=True)
    names = figures if figures is not None else default_figures(cfg)
    fig = _copy_figures(figures_dir, names, files / "figures")
    for f in fig:
        f["src"] = f"{files.name}/figures/{Path(f['src']).name}"
    page = summary(cfg, results, tables_dir, fig)
    page["files_dir"] = files.name
    page["items"] = {}
    for bench in cfg["benchmarks"]:
        questions, err = _questions(cfg, bench)
        for setting in cfg["settings"]:
            key = items_key(bench, setting)
            data = bench_items(cfg, results, bench, setting, questions, err)
            text = data_script(key, data)
            atomic_write_text(data_dir / f"{key}.js", text)
            page["items"][f"{bench}/{setting}"] = {"key": key, "n_items": len(data["items"]), "bytes": len(text.encode()),
                                                   "categories": sorted({i["cat"] for i in data["items"]})}
    page["tokens"] = {}
    for setting in cfg["settings"]:
        page["tokens"][setting] = _token_rewards(cfg, results, setting, token_pairs, data_dir)
    pkg = resources.files("reproduce.report.html") / "assets"
    for name in ASSETS:
        (files / name).write_text((pkg / name).read_text())
    template = (pkg / "report.html").read_text()
    html = (template.replace("{{TITLE}}", f"TGDPO reproduction report — preset {cfg['preset']}")
            .replace("{{FILES}}", files.name).replace("{{DATA}}", _inline_json(page)))
    atomic_write_text(out, html)
    log(f"wrote {out} and {files}/ ({sum(p.stat().st_size for p in files.rglob('*') if p.is_file()) / 1e6:.1f} MB)")
    return out


def _token_rewards(cfg: dict, results: Path, setting: str, limit: int | None, data_dir: Path) -> dict:
    """Compute one setting's token-reward strips into a data script; the entry says what it holds or why not."""
    from reproduce.report.token_rewards import all_pairs

    if limit == 0:
        return {"key": None, "reason": "not computed (--token-pairs 0)"}
    try:
        data = all_pairs(cfg, results, setting, limit)
    except Exception as e:  # noqa: BLE001 — no TGDPO method or no models: the page says why, the rest still shows
        return {"key": None, "reason": f"{type(e).__name__}: {e}"}
    for pair in data["pairs"]:
        for side in ("chosen", "rejected"):  # a pair without verifier scores has NaN there; JSON has no NaN
            if pair[side]["score"] != pair[side]["score"]:
                pair[side]["score"] = None
    key = tokens_key(setting)
    atomic_write_text(data_dir / f"{key}.js", data_script(key, data))
    return {"key": key, "n_pairs": len(data["pairs"]), "n_total": data["n_total"]}
