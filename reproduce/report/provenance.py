"""Read one score file and trace it back: judge, benchmark version, answers, checkpoint, config hashes.

Also the software behind every output: each resolved config and score file records
:func:`reproduce.software.software`, and :func:`software_section` lists in the report what the results
were made with.

Every number in a table, figure or report comes through :func:`load_score`, which refuses (``DataError``)
a score whose judgments were made by another judge, on another benchmark or benchmark version than the
cell it is read for: such a cell would be silently wrong. A missing score file is not an error here; it
becomes an empty cell that says why (:func:`missing_reason`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from reproduce import names
from reproduce.io import DataError
from reproduce.paths import ResultPaths, config_beside, failures_beside
from reproduce.software import TRACKED_PACKAGES, software


def software_section(results: Path) -> list[str]:
    """Markdown lines for the report: each distinct software record among the resolved configs under
    ``results`` (how many outputs it made), then that of the report job itself."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(Path(results).rglob("*.json")):
        if not (path.name == "resolved_config.json" or path.name.endswith(".config.json")):
            continue
        try:
            record = json.loads(path.read_text()).get("software")
        except (json.JSONDecodeError, OSError, AttributeError):
            continue
        key = json.dumps(record, sort_keys=True)
        groups.setdefault(key, []).append(path)
    names = list(TRACKED_PACKAGES)
    lines = ["| made | reproduce | git commit | dirty | " + " | ".join(names) + " |",
             "|---" * (4 + len(names)) + "|"]

    def row(made: str, record: dict | None) -> str:
        if record is None:
            return f"| {made} | — (no software record: made before versions were recorded) |" + " |" * (2 + len(names))
        git, pk = record.get("git") or {}, record.get("packages") or {}
        cells = [made, record.get("reproduce") or "—", (git.get("commit") or "—")[:12],
                 {True: "yes", False: "no"}.get(git.get("dirty"), "—"), *[pk.get(n) or "—" for n in names]]
        return "| " + " | ".join(cells) + " |"

    for key, paths in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        stages = sorted({p.relative_to(results).parts[0] for p in paths})
        lines.append(row(f"{len(paths)} outputs ({', '.join(stages)})", json.loads(key)))
    lines.append(row("this report", software()))
    return lines


# The judge-name field of one native judgment record, per protocol.
_JUDGE_FIELD = {"alpaca_eval2": "annotator", "arena_hard": "judge", "mt_bench": "judge"}


@dataclass
class Score:
    """One score file with its provenance.

    score: the protocol's score dict. path: the score file. judgments: the judgments file it scored.
    trace: judge, benchmark, benchmark version and config hashes of the judge job, the answers and the
    checkpoint (``None`` where the resolved config beside that output is absent).
    """

    path: Path
    score: dict
    judgments: Path | None
    trace: dict = field(default_factory=dict)

    def get(self, key: str):
        """A finite float/int from the score, or None (NaN counts as missing)."""
        v = self.score.get(key)
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; a malformed file is a one-line ``DataError``."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def score_path(results: Path, bench: str, judge: str, setting: str, model: str) -> Path:
    """Where the workflow writes one score file."""
    return Path(ResultPaths(results).score(bench, judge, setting, model))


def load_score(results: Path, cfg: dict, bench: str, judge: str, setting: str, model: str,
               check_records: bool = True) -> Score | None:
    """Load and check one score file; None when it does not exist.

    Raises ``DataError`` when the file was scored for another benchmark, or its judgments were made by
    another judge or for another benchmark version than ``cfg`` says (results must never be mixed).
    """
    results = Path(results)
    path = score_path(results, bench, judge, setting, model)
    if not path.exists():
        return None
    score = read_json(path)
    bench_cfg = cfg["benchmarks"][bench]
    want_version = bench_cfg.get("version")
    if score.get("benchmark") not in (None, bench, bench_cfg["protocol"]):
        raise DataError(f"{path}: scored for benchmark '{score['benchmark']}', but it is filed under '{bench}'")
    judgments = Path(score["judgments"]) if score.get("judgments") else None
    if score.get("judgments_from_score"):
        # where the judgments lie relative to the score file itself: right in a copy or move of the tree
        judgments = path.parent / score["judgments_from_score"]
    elif judgments is not None and not judgments.is_absolute() and (results.parent / judgments).exists():
        # score files record the path relative to the workflow directory (the parent of results/), not to
        # the current directory: resolve it there first so another run's files are never picked up
        judgments = results.parent / judgments
    trace = {"score_file": str(path), "judge": judge, "benchmark": bench, "benchmark_version": want_version,
             "judgments_file": str(judgments) if judgments else None, "judge_config_hash": None,
             "answers_config_hash": None, "checkpoint": str(Path(ResultPaths(results).model_dir(setting, model))),
             "checkpoint_config_hash": None}
    if judgments is not None:
        jcfg_path = config_beside(judgments)
        if jcfg_path.exists():
            jcfg = read_json(jcfg_path)
            got_judge = jcfg.get("judge")
            got_version = (jcfg.get("benchmark_config") or {}).get("version")
            if got_judge is not None and got_judge != judge:
                raise DataError(f"{path}: its judgments were made by judge '{got_judge}' ({jcfg_path}), not '{judge}'; "
                                "re-judge or move the file — judges must not be mixed in one cell")
            if got_version is not None and want_version is not None and got_version != want_version:
                raise DataError(f"{path}: its judgments are for {bench} version '{got_version}' ({jcfg_path}), but the "
                                f"config says '{want_version}'; re-judge — benchmark versions must not be mixed in one cell")
            trace["judge_config_hash"] = jcfg.get("config_hash")
            trace["judge_model"] = (jcfg.get("judge_config") or {}).get("model") or (jcfg.get("judge_config") or {}).get("kind")
        if check_records and judgments.exists():
            _check_record_judges(judgments, bench_cfg["protocol"], judge)
    if config_beside(path).exists():  # newer runs write the score job's resolved config beside the score
        trace["score_config_hash"] = read_json(config_beside(path)).get("config_hash")
    answers = Path(ResultPaths(results).answers(bench, setting, model))
    if config_beside(answers).exists():
        trace["answers_config_hash"] = read_json(config_beside(answers)).get("config_hash")
    ckpt_cfg = Path(ResultPaths(results).model_dir(setting, model)) / "resolved_config.json"
    if ckpt_cfg.exists():
        trace["checkpoint_config_hash"] = read_json(ckpt_cfg).get("config_hash")
    return Score(path=path, score=score, judgments=judgments, trace=trace)


def _check_record_judges(judgments: Path, protocol: str, judge: str) -> None:
    """Every judgment record must name the same judge (a judgments file never mixes judges)."""
    key = _JUDGE_FIELD.get(protocol)
    if key is None:
        return
    names = set()
    for line in judgments.read_text().splitlines():
        if line.strip():
            try:
                names.add(json.loads(line).get(key))
            except json.JSONDecodeError:
                raise DataError(f"{judgments}: a line is not valid JSON") from None
    names.discard(None)
    if names and names != {judge}:
        raise DataError(f"{judgments}: records judged by {sorted(names)}, expected only '{judge}' — judges mixed in one file")


def missing_reason(results: Path, cfg: dict, bench: str, judge: str, setting: str, model: str) -> tuple[str, str]:
    """Why a score file is absent, as (short reason for md/tex, full reason for csv)."""
    results = Path(results)
    path = score_path(results, bench, judge, setting, model)
    failures = failures_beside(ResultPaths(results).judgments(bench, judge, setting, model))
    if failures.exists():
        try:
            info = read_json(failures)
            n_failed = len(info.get("failures", []))
            n_req = (info.get("stats") or {}).get("requests")
        except DataError:
            n_failed, n_req = None, None
        if n_failed:
            return "judge unavailable", f"judge unavailable: {n_failed} of {n_req} judge calls failed ({failures}); no score file {path}"
    judge_cfg = (cfg.get("judges") or {}).get(judge) or {}
    env = judge_cfg.get("api_key_env")
    if env and not os.environ.get(env):
        # only a value shaped like a variable's name is shown: a key pasted in its place must not reach a table
        shown = f"${env}" if isinstance(env, str) and names.ENV_VAR.fullmatch(env) else "its api_key_env (not a variable name; not shown)"
        return "judge unavailable", f"judge unavailable: {shown} is not set (judge '{judge}'); no score file {path}"
    return "not run", f"not run: no score file {path}"
