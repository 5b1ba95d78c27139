"""Official files through ``reproduce.official``: a real HTTP server on 127.0.0.1 stands in for the pinned
host, so downloads go through the real download code (urllib, sha256 check, cache); mirror directories in
``$REPRODUCE_BENCHMARK_MIRROR`` (several, in order) win over the cache and the network; a file whose bytes
differ from the pin is never used wherever it comes from (a local one is skipped for the next source, with a
warning); a path that leaves its mirror directory is refused; and a machine with neither a mirror nor network gets
one line naming the files and the variable, from the test preflight and from ``reproduce rehearsal``."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reproduce.io import DataError
from reproduce.official import MIRROR_VAR, all_specs, cache_dir, fetch_all, fetch_file, mirror_dirs

ROOT = Path(__file__).resolve().parent.parent
BODY = b'{"question_id": "q1", "turns": ["Name a prime."]}\n'


class Host:
    """A static file server on 127.0.0.1 over ``root``, counting the GET requests per path."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        host = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                host.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def host(tmp_path, monkeypatch):
    """A pinned host serving ``tmp/served``; no mirror, and the cache in ``tmp/cache``."""
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.delenv(MIRROR_VAR, raising=False)
    monkeypatch.setenv("REPRODUCE_CACHE", str(tmp_path / "cache"))
    h = Host(served)
    yield h
    h.close()


def _spec(host: Host, name: str, body: bytes, pinned: bytes | None = None) -> dict:
    (host.root / name).write_bytes(body)
    return {"path": f"bench/{name}", "url": f"{host.url}/{name}", "sha256": hashlib.sha256(pinned or body).hexdigest()}


def test_download_is_checked_and_cached(host, tmp_path):
    spec = _spec(host, "question.jsonl", BODY)
    path = fetch_file(spec)
    assert path.read_bytes() == BODY and path.is_relative_to(tmp_path / "cache") and path == cache_dir() / spec["sha256"][:16] / "question.jsonl"
    assert host.requests == ["/question.jsonl"]
    assert fetch_file(spec) == path and host.requests == ["/question.jsonl"]  # the second time from the cache
    assert not list(path.parent.glob("*.part"))


def test_tampered_download_is_refused_and_not_cached(host):
    spec = _spec(host, "question.jsonl", BODY.replace(b"prime", b"PRIME"), pinned=BODY)
    with pytest.raises(DataError, match=r"question.jsonl: downloaded sha256 \w+\.\.\. does not match the pinned"):
        fetch_file(spec)
    assert not [p for p in cache_dir().rglob("*") if p.is_file()]  # neither the file nor a partial one


def test_a_tampered_copy_is_skipped_for_the_next_source_with_a_warning(host, tmp_path, monkeypatch, caplog):
    """A mirror copy whose sha256 differs is never used: the next mirror directory, then the cache, then the
    pinned URL is tried, and a warning names the skipped copy. A tampered cache is replaced by the download."""
    spec = _spec(host, "question.jsonl", BODY)
    bad, good = tmp_path / "bad", tmp_path / "good"
    for root, body in ((bad, b"edited\n"), (good, BODY)):
        (root / "bench").mkdir(parents=True)
        (root / "bench" / "question.jsonl").write_bytes(body)
    monkeypatch.setenv(MIRROR_VAR, os.pathsep.join([str(bad), str(good)]))
    with caplog.at_level("WARNING", logger="reproduce.official"):
        assert fetch_file(spec) == good / "bench" / "question.jsonl"  # the next mirror directory
    assert f"{bad}/bench/question.jsonl: sha256" in caplog.text and "skipped" in caplog.text
    assert host.requests == []

    monkeypatch.setenv(MIRROR_VAR, str(bad))
    cached = cache_dir() / spec["sha256"][:16] / "question.jsonl"
    caplog.clear()
    with caplog.at_level("WARNING", logger="reproduce.official"):
        assert fetch_file(spec) == cached and cached.read_bytes() == BODY  # no good copy here: the URL
    assert host.requests == ["/question.jsonl"] and f"{bad}/bench/question.jsonl" in caplog.text
    assert fetch_file(spec) == cached and host.requests == ["/question.jsonl"]  # then the cache

    cached.write_bytes(b"edited too\n")
    caplog.clear()
    with caplog.at_level("WARNING", logger="reproduce.official"):
        assert fetch_file(spec) == cached and cached.read_bytes() == BODY  # a tampered cache is downloaded over
    assert f"{cached}: sha256" in caplog.text and len(host.requests) == 2


def test_no_good_copy_anywhere_names_the_skipped_copies(host, tmp_path, monkeypatch):
    spec = _spec(host, "question.jsonl", b"edited at the host\n", pinned=BODY)
    mirror = tmp_path / "mirror"
    (mirror / "bench").mkdir(parents=True)
    (mirror / "bench" / "question.jsonl").write_bytes(b"edited\n")
    monkeypatch.setenv(MIRROR_VAR, str(mirror))
    with pytest.raises(DataError) as e:
        fetch_file(spec)
    msg = str(e.value)
    assert "\n" not in msg and "downloaded sha256" in msg
    assert f"skipped for their sha256: {mirror}/bench/question.jsonl: sha256" in msg
    gone = {**spec, "url": f"{host.url}/gone.jsonl"}
    with pytest.raises(DataError, match=rf"HTTP 404.*skipped for their sha256: {mirror}/bench/question.jsonl"):
        fetch_file(gone)
    with pytest.raises(DataError, match=rf"1 official file\(s\).*skipped for their sha256: {mirror}/bench"):
        fetch_all({"q": gone})


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.jsonl", "bench/../../outside.jsonl", "", "."])
def test_a_path_that_leaves_its_mirror_directory_is_refused(host, tmp_path, monkeypatch, path):
    """A manifest's path stays inside the mirror directory: nothing outside it is read, even when it exists."""
    mirror = tmp_path / "mirror"
    (mirror / "bench").mkdir(parents=True)
    (tmp_path / "outside.jsonl").write_bytes(BODY)
    monkeypatch.setenv(MIRROR_VAR, str(mirror / "bench"))
    spec = {"path": path, "url": f"{host.url}/outside.jsonl", "sha256": hashlib.sha256(BODY).hexdigest()}
    with pytest.raises(DataError, match=r"its path must stay inside the mirror directory"):
        fetch_file(spec)
    with pytest.raises(DataError, match=r"its path must stay inside the mirror directory"):
        fetch_all({"x": spec})
    assert host.requests == []


def test_mirror_directories_are_searched_in_order_before_the_network(host, tmp_path, monkeypatch):
    spec = _spec(host, "question.jsonl", BODY)
    first, second = tmp_path / "m1", tmp_path / "m2"
    (second / "bench").mkdir(parents=True)
    first.mkdir()
    (second / "bench" / "question.jsonl").write_bytes(BODY)
    monkeypatch.setenv(MIRROR_VAR, os.pathsep.join([str(first), "", str(second)]))
    assert mirror_dirs() == [first, second]  # empty entries ignored
    assert fetch_file(spec) == second / "bench" / "question.jsonl"
    assert host.requests == []


def test_unreachable_files_fail_in_one_line_naming_them_and_the_variable(host):
    present = _spec(host, "a.jsonl", BODY)
    gone = {"path": "bench/gone.jsonl", "url": f"{host.url}/gone.jsonl", "sha256": "0" * 64}
    gone2 = {"path": "bench/gone2.jsonl", "url": f"{host.url}/gone2.jsonl", "sha256": "1" * 64}
    with pytest.raises(DataError) as e:
        fetch_file(gone)
    msg = str(e.value)
    assert "\n" not in msg and "bench/gone.jsonl" in msg and MIRROR_VAR in msg and "404" in msg
    with pytest.raises(DataError) as e:
        fetch_all({"a": present, "gone": gone, "gone2": gone2})
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("2 official file(s)") and MIRROR_VAR in msg
    assert "bench/gone.jsonl, bench/gone2.jsonl" in msg and "bench/a.jsonl" not in msg
    assert fetch_all({"a": present})["a"].read_bytes() == BODY


def test_every_pinned_file_has_one_pin():
    """Benchmark configs and evals/official manifests together pin each mirror path once, to a commit."""
    specs = all_specs()
    assert "alpaca_eval_annotations/claude-2/annotations.json" in specs
    assert "arena_hard_v0.1/judge_config.yaml" in specs
    for path, spec in specs.items():
        assert spec["url"].startswith("https://") and not spec["url"].split("/")[-1] == "", path


def _offline_env(tmp_path: Path) -> dict:
    """No mirror, an empty cache, and every download refused (a proxy address nothing listens on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {k: v for k, v in os.environ.items() if k not in (MIRROR_VAR, "no_proxy", "NO_PROXY")}
    return {**env, "REPRODUCE_CACHE": str(tmp_path / "cache"), "https_proxy": dead, "http_proxy": dead,
            "PYTHONPATH": str(ROOT)}


def test_preflight_without_mirror_or_network_is_one_message(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reproduce.official"], capture_output=True, text=True,
                          env=_offline_env(tmp_path), cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"error: {len(all_specs())} official file(s)") and MIRROR_VAR in line
    assert "mt_bench/judge_prompts.jsonl" in line and "alpaca_eval_annotations/claude-2/annotations.json" in line
    offline = subprocess.run([sys.executable, "-m", "reproduce.official", "--offline"], capture_output=True, text=True,
                             env=_offline_env(tmp_path), cwd=ROOT, timeout=120)
    assert offline.returncode == 0 and f"0 of {len(all_specs())} here" in offline.stdout


def test_rehearsal_without_mirror_or_network_stops_with_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "reproduce.cli", "rehearsal", "--workdir", str(tmp_path / "w")],
                          capture_output=True, text=True, env=_offline_env(tmp_path), cwd=ROOT, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: ") and "official file(s)" in line and MIRROR_VAR in line
    assert "Traceback" not in proc.stderr and not (tmp_path / "w" / "rehearsal_assets").exists()
