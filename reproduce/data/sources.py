"""Where preference rows come from: a local ``.json``/``.jsonl``/``.parquet`` file, a local directory of them
(a hub snapshot or a copy of the authors' files), or a Hugging Face hub dataset at a revision.

Each source opens as one or more :class:`Table` objects that know their column names before any row is
read, so the caller can detect the layout and read only the columns it needs (the princeton-nlp files carry
``all_generated_responses`` and ``all_rm_scores``, several times larger than the pair itself). Every error
is a one-line ``DataError`` naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from reproduce.io import DataError, read_jsonl

DATA_SUFFIXES = (".json", ".jsonl", ".parquet")
# Files in a dataset directory that are metadata, not rows (LLaMA-Factory keeps dataset_info.json beside
# the data; our own prefs writer leaves *.summary.json / *.config.json).
NOT_DATA = ("dataset_info.json",)
NOT_DATA_SUFFIXES = (".summary.json", ".config.json")
# Split names the hub recognises in file names; a directory whose files name none of them is one train split.
KNOWN_SPLITS = ("train", "test", "validation", "valid", "dev", "eval")


@dataclass
class Table:
    """Rows of one file (or one hub split): ``where`` names it in messages; ``read(columns)`` yields dicts."""

    where: str
    columns: list[str]
    read: Callable[[list[str]], Iterator[dict]]


def looks_local(source: str) -> bool:
    """True when ``source`` is meant as a path (exists, or is spelled like one), not a hub id."""
    return Path(source).exists() or source.startswith((".", "/", "~")) or source.endswith(DATA_SUFFIXES)


def open_source(source: str, revision: str | None = None, split: str = "train") -> list[Table]:
    """The tables of ``source``: a local file, a local directory (files of ``split``), or a hub dataset id."""
    if looks_local(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise DataError(f"{path}: file not found")
        return [open_file(f) for f in data_files(path, split)] if path.is_dir() else [open_file(path)]
    return [open_hub(source, revision, split)]


def data_files(directory: Path, split: str) -> list[Path]:
    """The data files of ``split`` in ``directory`` (recursively, hidden folders skipped), in name order.

    Follows the hub's file-name convention: ``train.parquet``, ``train-00000-of-00002.parquet``,
    ``data/train/...``; when no file names any split, all files are the train split.
    """
    files = sorted(f for f in directory.rglob("*") if f.is_file() and f.suffix in DATA_SUFFIXES
                   and f.name not in NOT_DATA and not f.name.endswith(NOT_DATA_SUFFIXES)
                   and not any(part.startswith(".") for part in f.relative_to(directory).parts))
    if not files:
        raise DataError(f"{directory}: no .json, .jsonl or .parquet files")
    named = {f: _split_of(f.relative_to(directory)) for f in files}
    if all(s is None for s in named.values()):
        if split == "train":
            return files
        raise DataError(f"{directory}: no file names split '{split}' (files: {_names(files, directory)})")
    chosen = [f for f, s in named.items() if s == split]
    if not chosen:
        found = sorted({s for s in named.values() if s})
        raise DataError(f"{directory}: no files for split '{split}' (splits found: {', '.join(found)})")
    return chosen


def _split_of(rel: Path) -> str | None:
    for part in list(rel.parts[:-1]) + [rel.name.split(".")[0]]:
        for split in KNOWN_SPLITS:
            if part == split or part.startswith((f"{split}-", f"{split}_")):
                return split
    return None


def _names(files: list[Path], directory: Path, limit: int = 5) -> str:
    names = [str(f.relative_to(directory)) for f in files[:limit]]
    return ", ".join(names) + (f", ... ({len(files)} files)" if len(files) > limit else "")


def open_file(path: Path) -> Table:
    """A table over one local file; a malformed file is a ``DataError`` naming it."""
    if path.suffix == ".parquet":
        return _parquet_table(path)
    if path.suffix == ".jsonl":
        rows = read_jsonl(path)
    elif path.suffix == ".json":
        rows = _read_json_records(path)
    else:
        raise DataError(f"{path}: not a .json, .jsonl or .parquet file")
    columns = list(dict.fromkeys(k for r in rows for k in r))  # union, first-seen order
    return Table(str(path), columns, lambda cols: iter(rows))


def _read_json_records(path: Path) -> list[dict]:
    """A JSON array of objects (the alpaca files); JSON lines under a .json name are accepted too, as the
    hub's json loader accepts them."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and text.lstrip().startswith("{"):
            return read_jsonl(path)
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataError(f"{path}: record {i} is a {type(rec).__name__}, not an object")
    return data


def _parquet_table(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        columns = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({_first_line(e)})") from None

    def read(cols: list[str]) -> Iterator[dict]:
        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=cols):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not a readable parquet file ({_first_line(e)})") from None

    return Table(str(path), columns, read)


def open_hub(repo_id: str, revision: str | None, split: str) -> Table:
    """A hub dataset split through ``datasets.load_dataset`` (cached by huggingface_hub); any failure to
    fetch or parse it is one line naming the dataset, revision and split."""
    from datasets import load_dataset

    where = f"{repo_id}@{revision or 'main'} split '{split}'"
    try:
        ds = load_dataset(repo_id, revision=revision, split=split)
    except Exception as e:  # network, auth, missing split, malformed files: all one line for the user
        raise DataError(f"{where}: cannot load from the Hugging Face hub ({type(e).__name__}: {_first_line(e)})") from None
    return Table(where, list(ds.column_names), lambda cols: iter(ds.select_columns(cols)))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]
