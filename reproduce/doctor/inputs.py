"""The preflight's inputs: each judge's key variable set (its value never printed), the spending cap
``judging.max_usd`` (or an explicit choice of none), and the benchmarks' official files (a sha256-checked
local copy through ``reproduce/official.py``, else the pinned URL answering)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reproduce import official
from reproduce.doctor.result import FAIL, OK, WARN, Check
from reproduce.io import DataError

LC_VARS = ("REPRODUCE_ALPACA_EVAL_LC_DIR", "REPRODUCE_ALPACA_EVAL_HF_REVISION")


def judge_key_checks(cfg: dict) -> list[Check]:
    """One line per key variable the preset's judges read: set or not (the value is never read out)."""
    by_var: dict[str, list[str]] = {}
    for name, judge in cfg["judges"].items():
        if judge.get("api_key_env"):
            by_var.setdefault(judge["api_key_env"], []).append(name)
    if not by_var:
        return [Check(OK, "judge keys", "no judge reads a key")]
    return [Check(OK, f"judge key {var}", f"set (judges {', '.join(names)})") if os.environ.get(var) else
            Check(FAIL, f"judge key {var}", f"not set; judges {', '.join(names)} read it (export {var}=...)")
            for var, names in sorted(by_var.items())]


def budget_check(cfg: dict, no_budget: bool) -> Check:
    """``judging.max_usd`` set, or the run declared to have no cap."""
    cap = (cfg.get("judging") or {}).get("max_usd")
    if cap is not None:
        return Check(OK, "judging.max_usd", f"${cap:,.2f}: judge jobs stop before sending past it")
    if no_budget:
        return Check(OK, "judging.max_usd", "not set; no cap chosen (--no-budget)")
    return Check(FAIL, "judging.max_usd", f"not set in {cfg.get('_file', 'the preset')}: set judging.max_usd "
                                          "(see `reproduce plan` for the bill), or pass --no-budget to run without a cap")


def lc_check(cfg: dict, timeout: float = 10) -> Check | None:
    """AlpacaEval 2's length-controlled win rate needs its files: in ``$REPRODUCE_ALPACA_EVAL_LC_DIR``, or on
    the hub at the pinned ``$REPRODUCE_ALPACA_EVAL_HF_REVISION`` (asked with a HEAD request). Without them
    Table 1 says so in its LC cells: a warning, not a blocker."""
    from reproduce.benchmarks.alpaca_lc import LC_FILES, LC_REPO
    from reproduce.doctor import hub

    if not any(b.get("protocol") == "alpaca_eval2" for b in cfg["benchmarks"].values()):
        return None
    name = "AlpacaEval LC files"
    lc_dir, revision = (os.environ.get(v) for v in LC_VARS)
    if lc_dir:
        missing = [f for f in LC_FILES[:1] if not (Path(lc_dir) / f).is_file()]
        return (Check(WARN, name, f"{missing[0]} not in {lc_dir} ({LC_VARS[0]})") if missing else
                Check(OK, name, f"{LC_FILES[0]} in {lc_dir} ({LC_VARS[0]})"))
    if revision:
        found = hub.access_check("dataset", LC_REPO, revision, f"${LC_VARS[1]}", hub.token()[0], timeout, LC_FILES[0])
        return Check(OK if found.status == OK else WARN, name, f"{LC_REPO}/{LC_FILES[0]}: {found.detail}")
    return Check(WARN, name, f"neither {' nor '.join(LC_VARS)} set: Table 1 will say "
                             "'LC files missing' for the length-controlled win rate")


def url_answers(url: str, timeout: float) -> str | None:
    """None when ``url`` answers a HEAD request with success, else why not (one line)."""
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return None if resp.status < 400 else f"HTTP {resp.status}"
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", None) or e)


def official_checks(cfg: dict, timeout: float = 10) -> list[Check]:
    """One line per benchmark: every official file here (mirror or cache, sha256-checked) or downloadable."""
    checks = []
    for bench_name, bench in cfg["benchmarks"].items():
        specs = list(((bench.get("questions") or {}).get("files") or {}).values())
        if not specs:
            continue
        local, remote, bad = 0, [], []
        for spec in specs:
            try:
                found = official.find_local(spec)
            except DataError as e:  # a copy with other bytes is never used
                bad.append(str(e))
                continue
            if found is None:
                remote.append(spec)
            else:
                local += 1
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(remote)))) as pool:
            why = list(pool.map(lambda s: url_answers(s["url"], timeout), remote))
        missing = [f"{s['path']} ({w})" for s, w in zip(remote, why) if w]
        name = f"official files {bench_name}"
        if bad or missing:
            checks.append(Check(FAIL, name, "; ".join(bad + [f"not here and not downloadable: {', '.join(missing)}; "
                                                             f"{official.HINT}"] if missing else bad)))
        else:
            checks.append(Check(OK, name, f"{local} here (sha256-checked), {len(remote)} downloadable"))
    return checks
