"""Write the HTML report: ``results/report.html`` and its folder ``results/report_files/``.

The page opens from disk with no server and loads nothing from the network. ``report.html`` holds the
first screen's data inline (Table 1 per judge, differences, agreement, figure list, plan/bridge slots) and
loads ``report_files/report.js`` and ``report.css`` (plain JavaScript and CSS of this package, no library).
The drill-down's data is an index script per benchmark and setting, ``report_files/data/items__<bench>__<setting>.js``
(what the item list filters and sorts on), the long texts in chunks of about 1 MB (``..._<k>.js``), and the
token-reward strips one script per setting, ``report_files/data/tokens__<setting>.js``. The page adds a
script tag only when a reader opens that benchmark or item (browsers refuse ``fetch()`` of ``file://``
URLs; a script tag they load). Each data script assigns its JSON to ``window.REPORT_DATA[key]``.

The folder belongs to the report: a marker file (:data:`MARKER`) says so, and a folder of that name without
it is never touched. Each build writes a new folder beside it and swaps it in only once everything is
written, so a failed build leaves the previous report whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from html import escape
from importlib import resources
from pathlib import Path

from reproduce.io import DataError, atomic_write_text
from reproduce.report.html.items import bench_items
from reproduce.report.html.summary import summary

ASSETS = ("report.js", "report.css")
# bytes of long texts per chunk script: one opened item costs loading about this much (~0.1-0.3 s in Chromium)
CHUNK_BYTES = 1_000_000
# The file that marks a ``<out stem>_files/`` folder as this report's own (only such a folder is replaced).
MARKER = ".reproduce-report-html"


def items_key(bench: str, setting: str) -> str:
    """The data key (and file stem) of one benchmark and setting's items."""
    return f"items__{bench}__{setting}"


def tokens_key(setting: str) -> str:
    """The data key (and file stem) of one setting's token-reward strips."""
    return f"tokens__{setting}"


def data_script(key: str, obj) -> str:
    """A script that registers ``obj`` as ``window.REPORT_DATA[key]`` (JSON is a JavaScript literal; Chromium
    evaluated a 21 MB literal 2.3 times faster than ``JSON.parse`` of the same text as a string literal)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return f"(window.REPORT_DATA=window.REPORT_DATA||{{}})[{json.dumps(key)}]={text};\n"


def split_items(data: dict, key: str, chunk_bytes: int = CHUNK_BYTES) -> tuple[dict, dict[str, dict]]:
    """(index, {chunk key: texts}) of one benchmark and setting's items.

    The index holds what the item list filters and sorts on (ids, categories, questions, lengths, every
    judge's per-item values, verdict summaries and flip results); the long texts (the baseline's and the
    methods' answers, each game's explanation and log-probs) go to chunks of consecutive items of about
    ``chunk_bytes`` each, loaded when a reader opens an item of that chunk."""
    index_items, chunks = [], {}
    n_chunk, size = 0, 0
    for it in data["items"]:
        texts = {"ref": it["ref"], "ans": {m: a["t"] for m, a in it["ans"].items()},
                 "games": {j: {m: v["games"] for m, v in per.items()} for j, per in it["v"].items()}}
        item_bytes = len(json.dumps(texts, ensure_ascii=False))
        if size and size + item_bytes > chunk_bytes:
            n_chunk, size = n_chunk + 1, 0
        size += item_bytes
        ckey = f"{key}__{n_chunk}"
        index_items.append({**{k: it[k] for k in ("id", "cat", "q", "ref_len", "ref_chars")}, "chunk": ckey,
                            "ans": {m: {"n": a["n"], "chars": a["chars"]} for m, a in it["ans"].items()},
                            "v": {j: {m: {k: v[k] for k in ("sum", "flip", "m")} for m, v in per.items()}
                                  for j, per in it["v"].items()}})
        chunks.setdefault(ckey, {})[it["id"]] = texts
    return {**{k: v for k, v in data.items() if k != "items"}, "items": index_items}, chunks


def _inline_json(obj) -> str:
    """``obj`` as JSON safe inside an inline ``<script>``: every ``<`` becomes ``\\u003c`` (JSON only has it
    inside strings), so no text can close the tag (``</script``) or open a comment (``<!--``) that changes
    how the HTML parser reads the rest of the script."""
    return json.dumps(obj, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


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
    strips for the first N preference pairs of each setting (default: the preset's ``token_reward_pairs``,
    else all; 0: none, the page says so).
    Raises ``DataError`` naming the file when a table or figure is missing, or when ``<out stem>_files/``
    exists without this report's marker (see the module docstring); the previous report then stays as it was.
    """
    results, tables_dir, figures_dir, out = Path(results), Path(tables_dir), Path(figures_dir), Path(out)
    files = out.parent / f"{out.stem}_files"
    check_owned(files)
    out.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{files.name}.new-"))
    try:
        html = _build(cfg, results, tables_dir, figures_dir, files.name, build, figures, token_pairs)
        (build / MARKER).write_text(f"this folder belongs to {out.name}; reproduce report-html replaces it\n")
        os.chmod(build, 0o755)  # mkdtemp makes it private; the report is read like the other results
        swap_in(build, files)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    atomic_write_text(out, html)
    log(f"wrote {out} and {files}/ ({sum(p.stat().st_size for p in files.rglob('*') if p.is_file()) / 1e6:.1f} MB)")
    return out


def check_owned(files: Path) -> None:
    """Refuse a ``_files`` folder this report did not write (no :data:`MARKER`): it is never deleted."""
    if files.exists() and not (files / MARKER).is_file():
        raise DataError(f"report html: {files} exists and is not a folder report-html wrote (no {MARKER} in it); "
                        "move it away or write the report elsewhere (--out)")


def swap_in(build: Path, files: Path) -> None:
    """Put the finished folder ``build`` at ``files``: the old one (ours, checked) is renamed aside first and
    deleted only after the new one is in place."""
    old = None
    if files.exists():
        check_owned(files)
        old = files.with_name(f".{files.name}.old-{os.getpid()}")
        os.replace(files, old)
    os.replace(build, files)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _build(cfg: dict, results: Path, tables_dir: Path, figures_dir: Path, files_name: str, build: Path,
           figures: list[str] | None, token_pairs: int | None) -> str:
    """Write the report's folder into ``build`` (linked from the page as ``files_name``); return the page."""
    from reproduce.report.figures import default_figures

    data_dir = build / "data"
    data_dir.mkdir(parents=True)
    names = figures if figures is not None else default_figures(cfg)
    fig = _copy_figures(figures_dir, names, build / "figures")
    for f in fig:
        f["src"] = f"{files_name}/figures/{Path(f['src']).name}"
    page = summary(cfg, results, tables_dir, fig)
    page["files_dir"] = files_name
    page["items"] = {}
    for bench in cfg["benchmarks"]:
        questions, err = _questions(cfg, bench)
        for setting in cfg["settings"]:
            key = items_key(bench, setting)
            index, chunks = split_items(bench_items(cfg, results, bench, setting, questions, err), key)
            text = data_script(key, index)
            atomic_write_text(data_dir / f"{key}.js", text)
            for ckey, texts in chunks.items():
                atomic_write_text(data_dir / f"{ckey}.js", data_script(ckey, texts))
            page["items"][f"{bench}/{setting}"] = {"key": key, "n_items": len(index["items"]), "bytes": len(text.encode())}
    page["tokens"] = {}
    token_pairs = cfg.get("token_reward_pairs") if token_pairs is None else token_pairs
    for setting in cfg["settings"]:
        page["tokens"][setting] = _token_rewards(cfg, results, setting, token_pairs, data_dir)
    pkg = resources.files("reproduce.report.html") / "assets"
    for name in ASSETS:
        (build / name).write_text((pkg / name).read_text())
    template = (pkg / "report.html").read_text()
    return (template.replace("{{TITLE}}", escape(f"TGDPO reproduction report — preset {cfg['preset']}"))
            .replace("{{FILES}}", files_name).replace("{{DATA}}", _inline_json(page)))


def _token_rewards(cfg: dict, results: Path, setting: str, limit: int | None, data_dir: Path) -> dict:
    """Compute one setting's token-reward strips into a data script; the entry says what it holds or why not."""
    from reproduce.report.token_rewards import cached_pairs

    if limit == 0:
        return {"key": None, "reason": "not computed (--token-pairs 0)"}
    try:
        data = cached_pairs(cfg, results, setting, limit)
    except Exception as e:  # noqa: BLE001 — no TGDPO method or no cache index: the page says why, the rest shows
        return {"key": None, "reason": f"{type(e).__name__}: {e}"}
    for pair in data["pairs"]:
        for side in ("chosen", "rejected"):  # a pair without verifier scores has NaN there; JSON has no NaN
            if pair[side]["score"] != pair[side]["score"]:
                pair[side]["score"] = None
    key = tokens_key(setting)
    atomic_write_text(data_dir / f"{key}.js", data_script(key, data))
    return {"key": key, "n_pairs": len(data["pairs"]), "n_total": data["n_total"]}
