"""The hub side of the preflight: a token, and access to every model and dataset a config downloads, at its
pinned revision, asked with one HEAD request each (``$HF_ENDPOINT`` honoured, as huggingface_hub does).

A model is asked for its ``config.json`` at the revision and a dataset for its ``.gitattributes`` (every hub
repository holds one): 200 (or a redirect to the file's storage) means the token may download it; 401/403
means a gated or private repository whose licence the token's account has not accepted; 404 a repository,
revision or file that does not exist (the hub's ``X-Error-Code`` header says which).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reproduce.doctor.result import FAIL, OK, WARN, Check

DEFAULT_ENDPOINT = "https://huggingface.co"
# the one file every repository of its kind holds, asked at the pinned revision
PROBE_FILE = {"model": "config.json", "dataset": ".gitattributes"}


def endpoint() -> str:
    """The hub's address: ``$HF_ENDPOINT`` (a mirror or a test server), else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def token() -> tuple[str | None, str]:
    """(the hub token or None, where it came from): ``$HF_TOKEN``, else the file ``hf auth login`` wrote."""
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"], "$HF_TOKEN"
    try:
        from huggingface_hub import get_token

        stored = get_token()
    except ImportError:
        stored = None
    return (stored, "the stored login (hf auth login)") if stored else (None, "")


def hub_repos(cfg: dict) -> list[tuple[str, str, str, str]]:
    """(kind, repository, revision, config key) of every hub repository the config's jobs download: base
    models and preference data sets (unless a ``local_dir`` stands in) and external TGDPO guides."""
    out = []
    for s, recipe in cfg["settings"].items():
        base = recipe.get("base") or {}
        if base.get("kind") == "hf" and not base.get("local_dir"):
            out.append(("model", base["model"], str(base.get("revision") or "main"), f"settings.{s}.base"))
        data = recipe.get("preference_data") or {}
        if data.get("kind") == "hf_dataset" and not data.get("local_dir"):
            out.append(("dataset", data["dataset"], str(data.get("revision") or "main"), f"settings.{s}.preference_data"))
        for m, method in (recipe.get("methods") or {}).items():
            guide = method.get("guide")
            if isinstance(guide, dict) and not Path(str(guide["model"])).expanduser().is_dir():
                out.append(("model", guide["model"], str(guide.get("revision") or "main"), f"settings.{s}.methods.{m}.guide"))
    seen, unique = set(), []
    for kind, repo, rev, key in out:  # one request per repository and revision; the first key names it
        if (kind, repo, rev) not in seen:
            seen.add((kind, repo, rev))
            unique.append((kind, repo, rev, key))
    return unique


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is the hub's answer for a file in large-file storage: access is granted, nothing to follow."""

    def redirect_request(self, *args, **kwargs):
        return None


def head_status(url: str, auth: str | None, timeout: float) -> tuple[int | None, str]:
    """(HTTP status or None, the hub's error code or the network error) of a HEAD request."""
    req = urllib.request.Request(url, method="HEAD", headers={"Authorization": f"Bearer {auth}"} if auth else {})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, ""
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("X-Error-Code") or e.headers.get("X-Error-Message") or ""
    except (urllib.error.URLError, OSError) as e:
        return None, str(getattr(e, "reason", None) or e)


def probe_url(kind: str, repo: str, revision: str, file: str | None = None) -> str:
    """The address asked for one repository at one revision (``file``, default the kind's probe file)."""
    prefix = "datasets/" if kind == "dataset" else ""
    return (f"{endpoint()}/{prefix}{urllib.parse.quote(repo)}/resolve/{urllib.parse.quote(revision, safe='')}/"
            f"{file or PROBE_FILE[kind]}")


def access_check(kind: str, repo: str, revision: str, key: str, auth: str | None, timeout: float,
                 file: str | None = None) -> Check:
    """One repository's line: downloadable at its revision, or why not and what to do."""
    name = f"hub {kind} {repo}"
    status, why = head_status(probe_url(kind, repo, revision, file), auth, timeout)
    pinned = "" if revision != "main" else " (revision main: not pinned)"
    if status is not None and (200 <= status < 400):
        return Check(OK, name, f"reachable at {revision[:12]}{pinned}")
    page = f"{endpoint()}/{'datasets/' if kind == 'dataset' else ''}{repo}"
    if status in (401, 403):
        fix = ("set HF_TOKEN (or run `hf auth login`) for an account that" if not auth else "the token's account")
        return Check(FAIL, name, f"HTTP {status}{' ' + why if why else ''}: gated or private; {fix} must accept "
                                 f"its licence at {page} ({key})")
    if status == 404:
        return Check(FAIL, name, f"HTTP 404{' ' + why if why else ''}: no such repository, revision {revision} "
                                 f"or file {file or PROBE_FILE[kind]} ({key})")
    if status is None:
        return Check(FAIL, name, f"hub unreachable at {endpoint()} ({why}); set HF_ENDPOINT for a mirror, or "
                                 f"local_dir in {key}")
    return Check(FAIL, name, f"HTTP {status}{' ' + why if why else ''} from {endpoint()} ({key})")


def offline() -> bool:
    """Whether huggingface_hub is told to stay offline (``$HF_HUB_OFFLINE``): downloads then come from its cache."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached(kind: str, repo: str, revision: str) -> bool:
    """Whether the hub cache holds ``repo`` at ``revision`` (a snapshot folder, or a ref naming one)."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}"
    return (folder / "snapshots" / revision).is_dir() or (folder / "refs" / revision).is_file()


def offline_check(kind: str, repo: str, revision: str, key: str) -> Check:
    """One repository's line when the hub may not be asked: its snapshot must already be in the cache."""
    name = f"hub {kind} {repo}"
    if cached(kind, repo, revision):
        return Check(OK, name, f"in the hub cache at {revision[:12]} (HF_HUB_OFFLINE)")
    return Check(FAIL, name, f"HF_HUB_OFFLINE is set and the hub cache holds no {revision} snapshot; download it on "
                             f"a machine with network into the same HF_HOME, or set local_dir in {key}")


def hub_checks(cfg: dict, timeout: float = 10) -> list[Check]:
    """The token's line and one line per hub repository of ``cfg`` (requests in parallel; with
    ``$HF_HUB_OFFLINE`` set, the cache is looked at instead)."""
    repos = hub_repos(cfg)
    if not repos:
        return [Check(OK, "hub", "nothing to download from the hub (local models and data)")]
    if offline():
        return [offline_check(*r) for r in repos]
    auth, source = token()
    checks = [Check(OK, "hub token", f"set ({source}); {endpoint()}") if auth else
              Check(WARN, "hub token", f"not set (HF_TOKEN or `hf auth login`): gated repositories will refuse; "
                                       f"{endpoint()}")]
    with ThreadPoolExecutor(max_workers=min(8, len(repos))) as pool:
        checks += list(pool.map(lambda r: access_check(*r, auth, timeout), repos))
    return checks
