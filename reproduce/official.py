"""Official files (benchmark questions, judge prompts, baseline answers, published annotations): one way in.

An official file is a spec ``{path, url, sha256}``: ``url`` is pinned to a commit, ``path`` is where the file
sits inside a mirror directory (relative, never leaving it). :func:`fetch_file` looks for it, in order, as
``<dir>/<path>`` in each directory of ``$REPRODUCE_BENCHMARK_MIRROR`` (several allowed, separated by
``os.pathsep``), then in the download cache (``$REPRODUCE_CACHE``, default ``.cache/benchmarks`` in the
repository), then downloads the pinned URL into the cache. Every file is checked against its sha256 before it
is used; a copy whose sha256 differs is skipped with a warning naming it, and the next source is tried.

Specs live in the benchmark configs (``evals/benchmarks/<name>.yaml``, ``questions.files``) and, for files
only tests or tools read, in manifests ``evals/official/<name>.yaml`` (``files: {name: spec}``).
"""

from __future__ import annotations

import importlib
import logging
import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from reproduce.config import BUNDLED, ROOT, load_yaml, validate
from reproduce.io import DataError, sha256_file

log = logging.getLogger(__name__)

MIRROR_VAR = "REPRODUCE_BENCHMARK_MIRROR"
CACHE_VAR = "REPRODUCE_CACHE"
MANIFESTS = ROOT / "evals" / "official"
BENCHMARKS = ROOT / "evals" / "benchmarks"
# Further folders of official-file manifests in their own layout -> "module:function" giving their specs
# (keyed by mirror path). Named, not imported: this module is the ground floor those modules build on.
SPEC_SOURCES = {"evals/archives": "reproduce.bridge.archives:archive_specs"}
HINT = (f"set {MIRROR_VAR} to the directories holding them (separated by '{os.pathsep}'), "
        "or give this machine network access to the pinned URLs")


def mirror_dirs(mirror: str | Path | list | None = None) -> list[Path]:
    """The mirror directories, in lookup order: ``mirror`` if given (a directory, an ``os.pathsep``-separated
    string of them or a list), else ``$REPRODUCE_BENCHMARK_MIRROR``. Empty entries are ignored."""
    if mirror is None:
        mirror = os.environ.get(MIRROR_VAR, "")
    if isinstance(mirror, (str, Path)):
        mirror = str(mirror).split(os.pathsep)
    return [Path(d) for d in mirror if str(d)]


def cache_dir() -> Path:
    """Where downloads are kept: ``$REPRODUCE_CACHE``, else ``.cache/benchmarks`` in the repository, or for an
    installed copy without one the user's cache folder (never inside the installed package); read at each
    call, so a test or a job can point it elsewhere."""
    if os.environ.get(CACHE_VAR):
        return Path(os.environ[CACHE_VAR])
    if BUNDLED:
        user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return user_cache / "reproduce-tgdpo" / "benchmarks"
    return ROOT / ".cache" / "benchmarks"


def cached_path(spec: dict) -> Path:
    """Where the download of ``spec`` is (or would be) cached: keyed by its sha256, so two pins never collide."""
    return cache_dir() / spec["sha256"][:16] / Path(spec["path"]).name


def relative_path(spec: dict) -> PurePosixPath:
    """``spec['path']`` as a path inside a mirror directory; ``DataError`` when it would leave it (absolute,
    ``..``, empty), so a manifest can never make a lookup read a file elsewhere on the machine."""
    path = PurePosixPath(str(spec["path"]))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise DataError(f"official file {spec['path']!r}: its path must stay inside the mirror directory "
                        "(relative, without '..')")
    return path


def _mismatch(path: Path, spec: dict) -> str | None:
    """Why ``path`` is not the pinned file (its sha256 differs), or None when it is."""
    digest = sha256_file(path)
    if digest == spec["sha256"]:
        return None
    return (f"{path}: sha256 {digest[:12]}... does not match the pinned {spec['sha256'][:12]}... of "
            f"{spec['path']} (replace or delete the file)")


def local_copy(spec: dict, mirror: str | Path | list | None = None) -> tuple[Path | None, list[str]]:
    """(the first local copy of ``spec`` with the pinned sha256, or None; one line per copy skipped because
    its bytes differ). Mirror directories come first, in order, then the cache. A file with the right name
    but other bytes is never used (a silently different benchmark file would give scores that look official
    and are not): it is skipped with a warning naming it, and the next source is tried."""
    rel = relative_path(spec)
    skipped = []
    for path in [d / rel for d in mirror_dirs(mirror)] + [cached_path(spec)]:
        if not path.is_file():
            continue
        why = _mismatch(path, spec)
        if why is None:
            return path, skipped
        log.warning("%s; skipped, trying the next source", why)
        skipped.append(why)
    return None, skipped


def find_local(spec: dict, mirror: str | Path | list | None = None) -> Path | None:
    """The checked local copy of ``spec`` (a mirror directory first, then the cache), or None; copies whose
    sha256 differs are skipped with a warning (:func:`local_copy`)."""
    return local_copy(spec, mirror)[0]


def download(spec: dict, timeout: float = 60) -> Path:
    """Download ``spec['url']`` into the cache, check its sha256, and return the cached path. A failed or
    mismatching download leaves nothing in the cache; ``OSError`` (network) and ``DataError`` (sha256) pass up."""
    dest = cached_path(spec)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.{os.getpid()}.part")  # per process: parallel jobs may fetch the same file
    try:
        with urllib.request.urlopen(spec["url"], timeout=timeout) as resp, open(part, "wb") as fh:
            while chunk := resp.read(1 << 20):
                fh.write(chunk)
        digest = sha256_file(part)
        if digest != spec["sha256"]:
            raise DataError(f"{spec['url']}: downloaded sha256 {digest[:12]}... does not match the pinned "
                            f"{spec['sha256'][:12]}... of {spec['path']}; not cached")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)
    return dest


def fetch_file(spec: dict, mirror: str | Path | list | None = None, timeout: float = 60) -> Path:
    """A local, sha256-checked path to the official file ``spec`` (``{path, url, sha256}``): from a mirror
    directory, the cache, or a download of the pinned URL. Failure is one ``DataError`` line naming the file
    and ``$REPRODUCE_BENCHMARK_MIRROR`` (and every local copy skipped for its sha256)."""
    local, skipped = local_copy(spec, mirror)
    if local is not None:
        return local
    try:
        return download(spec, timeout)
    except OSError as e:
        where = os.pathsep.join(map(str, mirror_dirs(mirror))) or "none"
        raise DataError(f"official file {spec['path']}: not in the mirror ({where}) nor the cache ({cache_dir()}), "
                        f"and the download from {spec['url']} failed ({_reason(e)}){_skipped(skipped)}; {HINT}") from None
    except DataError as e:
        raise DataError(f"{e}{_skipped(skipped)}") from None


def _skipped(skipped: list[str]) -> str:
    """The local copies passed over for their sha256, for an error message ('' when none)."""
    return f"; skipped for their sha256: {'; '.join(skipped)}" if skipped else ""


def _reason(e: OSError) -> str:
    """Why a download failed, in one line (an HTTP error keeps its status code)."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    return str(getattr(e, "reason", None) or e).splitlines()[0]


def fetch_all(specs: dict[str, dict], mirror: str | Path | list | None = None, timeout: float = 20,
              workers: int = 8) -> dict[str, Path]:
    """Fetch every spec (``{name: spec}``) and return ``{name: path}``. Downloads run in parallel; if any file
    can be neither found nor downloaded, one ``DataError`` lists every missing file (not just the first)."""
    missing, reasons, found = [], [], {}
    todo, skipped = {}, []
    for name, spec in specs.items():
        local, passed_over = local_copy(spec, mirror)
        skipped += passed_over
        if local is None:
            todo[name] = spec
        else:
            found[name] = local

    def one(item):
        name, spec = item
        try:
            return name, download(spec, timeout), None
        except OSError as e:
            return name, None, _reason(e)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo)))) as pool:
        for name, path, reason in pool.map(one, todo.items()):
            if path is None:
                missing.append(todo[name]["path"])
                reasons.append(reason)
            else:
                found[name] = path
    if missing:
        where = os.pathsep.join(map(str, mirror_dirs(mirror))) or "not set"
        why = "; ".join(sorted(set(reasons)))
        raise DataError(f"{len(missing)} official file(s) neither in the mirror ({MIRROR_VAR}: {where}) nor the "
                        f"cache, and not downloadable ({why}): {', '.join(sorted(missing))}{_skipped(skipped)}; {HINT}")
    return found


def load_manifest(name: str) -> dict[str, dict]:
    """The specs of manifest ``evals/official/<name>.yaml`` (validated), as ``{file name: spec}``."""
    path = MANIFESTS / f"{name}.yaml"
    return validate(load_yaml(path), "official", path)["files"]


def benchmark_files(name: str) -> dict[str, dict]:
    """The official files pinned by ``evals/benchmarks/<name>.yaml`` (``questions.files``; may be empty)."""
    path = BENCHMARKS / f"{name}.yaml"
    return (validate(load_yaml(path), "benchmark", path)["questions"].get("files") or {})


def all_specs() -> dict[str, dict]:
    """Every official file the repository pins (benchmarks, ``evals/official`` manifests and the hashed files
    of the bridge's archive manifests), keyed by mirror path; the same path pinned to two different sha256 is
    an error naming both sources."""
    out, source = {}, {}
    sets = [(p, benchmark_files(p.stem)) for p in sorted(BENCHMARKS.glob("*.yaml"))]
    sets += [(p, load_manifest(p.stem)) for p in sorted(MANIFESTS.glob("*.yaml"))]
    for folder, target in SPEC_SOURCES.items():  # manifests of their own layout, flattened by their module
        module, function = target.split(":")
        sets.append((ROOT / folder, getattr(importlib.import_module(module), function)()))
    for origin, specs in sets:
        for spec in specs.values():
            prev = out.setdefault(spec["path"], spec)
            if prev["sha256"] != spec["sha256"]:
                raise DataError(f"{origin.relative_to(ROOT)}: {spec['path']} pinned to sha256 {spec['sha256'][:12]}... "
                                f"but {source[spec['path']]} pins {prev['sha256'][:12]}...")
            source.setdefault(spec["path"], origin.relative_to(ROOT))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m reproduce.official [--offline]``: make every pinned official file present (mirror, cache or
    download) and print one line; with ``--offline`` only count the ones not here, downloading nothing.
    Exit 1 with one line naming the missing files and ``$REPRODUCE_BENCHMARK_MIRROR``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m reproduce.official", description=main.__doc__)
    parser.add_argument("--offline", action="store_true", help="download nothing; report what is not here")
    args = parser.parse_args(argv)
    try:
        specs = all_specs()
        if args.offline:
            missing = sorted(p for p, spec in specs.items() if find_local(spec) is None)
            print(f"official files: {len(specs) - len(missing)} of {len(specs)} here, sha256-checked; offline, so "
                  f"tests needing the other {len(missing)} will not run" + (f" ({', '.join(missing)})" if missing else ""))
            return 0
        fetch_all(specs)
    except DataError as e:
        hint = "" if args.offline else "; REPRODUCE_OFFLINE_TESTS=1 runs the tests that do not need them"
        print(f"error: {e}{hint}", file=sys.stderr)
        return 1
    where = os.pathsep.join(map(str, mirror_dirs())) or "not set"
    print(f"official files: all {len(specs)} present and sha256-checked (mirror {MIRROR_VAR}: {where}; cache {cache_dir()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
