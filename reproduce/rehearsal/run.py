"""Run the rehearsal: the paper preset's code path end to end at toy scale, and print what each stage cost.

1. build the assets the rehearsal recipes point at (``rehearsal_assets/`` in the working directory: two
   shaped model directories and the preference data in both released layouts), unless already there;
2. plan the run (``reproduce plan``: ``results/plan.{md,json}``), then start the deterministic stand-in judge on 127.0.0.1 (the port in ``evals/judges/standin-*.yaml``);
3. run the workflow (``snakemake <target> --config preset=rehearsal``) with vLLM's CPU settings;
4. stop the judge (always), then print wall time and peak memory per stage from the rules' Snakemake
   ``benchmark:`` files, the TGDPO/DPO training peak-RSS ratio, vLLM prompts/s and model loads per
   generation job, and write them to ``<workdir>/rehearsal_metrics.json`` with the plan's judge figures set
   against the counted ones (``results/plan_compare.md``: requests, tokens, dollars, seconds).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from reproduce.config import ROOT, ConfigError, load_config
from reproduce.paths import RESULTS, ResultPaths

ASSETS = "rehearsal_assets"
SHAPES = {"llama3": "llama3-shaped", "gemma2": "gemma2-shaped"}
STAGES = ("base", "prefs", "train", "generate", "judge")


def build_assets(workdir: Path, seed: int = 0, log=print) -> dict:
    """Build the shaped models and the two data layouts under ``workdir/rehearsal_assets`` (skipped when a
    complete copy is there; each piece is built in a temporary directory and renamed, so never half)."""
    from reproduce.rehearsal.data import write_release_layouts
    from reproduce.rehearsal.models import build_shaped_model

    assets = workdir / ASSETS
    timings = {}
    t0 = time.time()
    data_done = assets / "data" / ".complete"
    if not data_done.exists():
        tmp = assets / "data-build.tmp"  # write_release_layouts writes data/... under the directory it is given
        shutil.rmtree(tmp, ignore_errors=True)
        write_release_layouts(tmp, seed=seed)
        shutil.rmtree(assets / "data", ignore_errors=True)
        (tmp / "data").rename(assets / "data")
        shutil.rmtree(tmp)
        data_done.touch()
    timings["data_s"] = round(time.time() - t0, 1)
    for shape, name in SHAPES.items():
        t0 = time.time()
        final = assets / "models" / name
        if not (final / "config.json").exists():
            tmp = assets / "models" / f"{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            build_shaped_model(shape, tmp, seed=seed)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
        timings[f"model_{shape}_s"] = round(time.time() - t0, 1)
    log(f"rehearsal assets in {assets}: {json.dumps(timings)}")
    return timings


def judge_endpoint(cfg: dict) -> tuple[str, int, list[str]]:
    """Host, port and served model names of the preset's stand-in judges (they must share one endpoint)."""
    urls = {j["base_url"] for j in cfg["judges"].values()}
    if len(urls) != 1:
        raise ConfigError(f"rehearsal judges must share one base_url, got {sorted(urls)}")
    url = urlparse(urls.pop())
    return url.hostname, url.port, sorted({j["model"] for j in cfg["judges"].values()})


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def start_judge(host: str, port: int, models: list[str], log_path: Path, lifetime_s: int,
                tokenizer: Path | None = None) -> subprocess.Popen:
    """Start the stand-in judge server and wait until it lists its models (60 s at most); it counts the
    usage it reports with ``tokenizer`` (the rehearsal's Llama-3-shaped model's)."""
    if not _port_free(host, port):
        raise ConfigError(f"{host}:{port} is already in use; the stand-in judge (evals/judges/standin-*.yaml) needs it")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if host not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"the stand-in judge listens on 127.0.0.1 only; the rehearsal judges point at {host}")
    # the child keeps its own copy of the descriptor; ours is closed at once
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "reproduce.rehearsal.judge_server", "--port", str(port),
                                 "--models", *models, "--lifetime-s", str(lifetime_s),
                                 *(["--tokenizer", str(tokenizer)] if tokenizer else [])],
                                stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stand-in judge exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/v1/models", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"stand-in judge did not answer on {host}:{port} within 60 s; see {log_path}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a child process and wait for it (kill after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _read_benchmark(path: Path) -> dict:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    row = rows[-1]

    def num(key):
        try:
            return float(row.get(key, "nan"))
        except ValueError:
            return float("nan")

    return {"s": num("s"), "max_rss_mb": num("max_rss")}


def stage_metrics(workdir: Path) -> dict:
    """Per stage: jobs, summed and longest job wall time, peak RSS of one job (Snakemake benchmark files);
    per setting the TGDPO/DPO training peak-RSS ratio; vLLM prompts/s and model loads per generation job."""
    bench = Path(ResultPaths(workdir / RESULTS).timings_dir())
    out = {}
    for stage in STAGES:
        files = sorted((bench / stage).rglob("*.tsv")) if (bench / stage).exists() else []
        rows = {str(f.relative_to(bench / stage).with_suffix("")): _read_benchmark(f) for f in files}
        if rows:
            out[stage] = {"jobs": len(rows), "wall_s_sum": round(sum(r["s"] for r in rows.values()), 1),
                          "wall_s_max": round(max(r["s"] for r in rows.values()), 1),
                          "peak_rss_mb": round(max(r["max_rss_mb"] for r in rows.values()), 1), "per_job": rows}
    train = out.get("train", {}).get("per_job", {})
    ratios = {}
    for key, row in train.items():
        setting, method = key.rsplit("/", 1)
        if method == "tgdpo" and f"{setting}/dpo" in train:
            ratios[setting] = round(row["max_rss_mb"] / train[f"{setting}/dpo"]["max_rss_mb"], 3)
    out["tgdpo_over_dpo_peak_rss"] = ratios
    gen = []
    for cfg_file in sorted(Path(ResultPaths(workdir / RESULTS).answers_dir()).rglob("*.config.json")):
        summary = json.loads(cfg_file.read_text()).get("generation_summary") or {}
        if summary.get("prompts_per_s"):
            gen.append(summary)
    if gen:
        out["vllm_prompts_per_s"] = {"min": min(g["prompts_per_s"] for g in gen), "max": max(g["prompts_per_s"] for g in gen),
                                     "answer_files": len(gen)}
    loads = []
    for log_file in sorted((Path(ResultPaths(workdir / RESULTS).logs_dir()) / "generate").rglob("*.log")):
        loads.append(sum("model loaded" in line for line in log_file.read_text(errors="replace").splitlines()))
    if loads:
        out["model_loads_per_generate_job"] = {"min": min(loads), "max": max(loads), "jobs": len(loads)}
    return out


def fetch_official_files(cfg: dict, log=print) -> None:
    """Fetch every official file the preset's benchmarks pin before anything runs, so a machine with neither
    a mirror nor network stops here with one ``DataError`` line naming the files, not in a job's log."""
    from reproduce.official import fetch_all

    specs = {f"{bench}.{name}": spec for bench, b in cfg["benchmarks"].items()
             for name, spec in ((b.get("questions") or {}).get("files") or {}).items()}
    paths = fetch_all(specs)
    log(f"official files: {len(paths)} present and sha256-checked")


def run_rehearsal(workdir: str | Path, target: str = "reproduce_table1", cores: int = 2, fresh: bool = False,
                  extra_args: list[str] | None = None, log=print) -> int:
    """Build assets, start the judge, run ``target`` of the rehearsal preset in ``workdir``; returns the exit
    code of Snakemake (the judge is stopped whatever happens)."""
    workdir = Path(workdir).resolve()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cfg = load_config({"preset": "rehearsal"})
    t_all = time.time()
    fetch_official_files(cfg, log)
    python = cfg.get("generation", {}).get("python")
    if python and not (ROOT / python).exists():
        raise ConfigError(f"generation.python: {ROOT / python} does not exist; run `bash scripts/setup_vllm_cpu.sh` first")
    asset_times = build_assets(workdir, log=log)
    planned = plan_before(cfg, workdir / RESULTS, target, log)
    host, port, models = judge_endpoint(cfg)
    judge = start_judge(host, port, models, Path(ResultPaths(workdir / RESULTS).logs_dir()) / "standin_judge.log",
                        lifetime_s=4 * 3600, tokenizer=workdir / ASSETS / "models" / SHAPES["llama3"])
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    t0 = time.time()
    try:
        cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(workdir), target,
               "--cores", str(cores), "--config", "preset=rehearsal", *(extra_args or [])]
        log("$ " + " ".join(cmd))
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    finally:
        spend = spend_check(host, port, workdir / RESULTS)  # before the judge stops: its bill lives in it
        stop(judge)
    metrics = {"target": target, "returncode": rc, "snakemake_wall_s": round(time.time() - t0, 1),
               "total_wall_s": round(time.time() - t_all, 1), "assets": asset_times, "stages": stage_metrics(workdir),
               "goal_total_wall_s": 1800, "goal_tgdpo_over_dpo_peak_rss": 1.05,
               "plan_compare": compare_after(planned, workdir / RESULTS, log, cfg, target), "spend": spend}
    (workdir / "rehearsal_metrics.json").write_text(json.dumps(metrics, indent=2))
    print_metrics(metrics, log)
    table = Path(ResultPaths(workdir / RESULTS).tables_dir()) / "table1.md"
    if rc == 0 and table.exists():
        log(table.read_text())
    return rc


def spend_check(host: str, port: int, results: Path) -> dict:
    """The stand-in judge's own bill (``GET /billing``) against the spend ledger the judge jobs kept, in
    tokens (the stand-in judges are free): ``equal`` when the ledger holds exactly what was billed."""
    from reproduce.judges.ledger import SpendLedger

    ledger = SpendLedger(ResultPaths(results).spend_ledger())
    ledger.look()
    out = {"ledger_prompt_tokens": ledger.tokens[0], "ledger_completion_tokens": ledger.tokens[1],
           "ledger_open_usd": ledger.open_usd}
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/billing", timeout=10) as r:
            bill = json.loads(r.read())
    except (OSError, ValueError) as e:
        return {**out, "error": f"no bill from the stand-in judge ({type(e).__name__})"}
    out.update(billed_completions=bill["completions"], billed_prompt_tokens=bill["prompt_tokens"],
               billed_completion_tokens=bill["completion_tokens"])
    out["equal"] = (out["ledger_prompt_tokens"], out["ledger_completion_tokens"]) == \
        (bill["prompt_tokens"], bill["completion_tokens"])
    return out


def plan_before(cfg: dict, results: Path, target: str, log=print) -> Path | None:
    """``reproduce plan`` of the run about to start, written to ``results/plan.{md,json}`` (the figures
    ``compare_after`` sets the run against); None, with the reason logged, when planning fails."""
    from reproduce.io import DataError, atomic_write_json, atomic_write_text
    from reproduce.plan.build import build_plan
    from reproduce.plan.render import render_markdown, summary_lines

    try:
        plan = build_plan(cfg, results, target if target in ("reproduce_table1", "all") else "reproduce_table1")
    except (DataError, ConfigError, OSError) as e:  # the rehearsal still runs; the comparison is then missing, and says so
        log(f"plan: not made ({type(e).__name__}: {e})")
        return None
    path = results / "plan.json"
    atomic_write_json(path, plan)
    atomic_write_text(results / "plan.md", render_markdown(plan))
    for line in summary_lines(plan):
        log(f"plan: {line}")
    return path


def compare_after(plan_path: Path | None, results: Path, log=print, cfg: dict | None = None,
                  target: str = "reproduce_table1") -> dict | None:
    """Planned against counted judge requests, tokens, dollars and seconds (``results/plan_compare.md``).

    With ``cfg``, the plan is made once more on the answers the run generated, as if nothing were cached:
    the requests those answers made the jobs send (answers repeated across models are asked once, through
    the judge's cache). The plan made before generation cannot know which answers will repeat; this one
    can, so its difference from the counted requests measures what the cache's cross-job hits explain."""
    if plan_path is None:
        return None
    from reproduce.io import atomic_write_text
    from reproduce.plan.compare import compare, render_compare

    result = compare(plan_path, results)
    text = render_compare(result)
    totals = result["groups"][-1]  # the totals row
    if cfg is not None:
        from reproduce.plan.judging import plan_judging

        rows = plan_judging(cfg, results, target if target in ("reproduce_table1", "all") else "reproduce_table1",
                            ignore_cache=True)
        totals["replanned_on_answers_to_send"] = sum(r["to_send"] for r in rows if "error" not in r)
        totals["replanned_asked_by_earlier_job"] = sum(r["asked_by_earlier_job"] for r in rows if "error" not in r)
        text += (f"\nPlanned again on the generated answers, nothing cached: "
                 f"{totals['replanned_on_answers_to_send']:,.0f} requests to send "
                 f"({totals['replanned_asked_by_earlier_job']:,.0f} repeat an earlier job's), against "
                 f"{totals.get('counted_new_requests', 0):,.0f} counted and {totals.get('planned_to_send', 0):,.0f} "
                 "planned before the answers existed.\n")
    atomic_write_text(results / "plan_compare.md", text)
    log(text)
    return totals


def print_metrics(metrics: dict, log=print) -> None:
    """The rehearsal's figures, one line each."""
    log(f"rehearsal {metrics['target']}: exit {metrics['returncode']}, {metrics['total_wall_s']:.0f} s end to end "
        f"(snakemake {metrics['snakemake_wall_s']:.0f} s; goal <= {metrics['goal_total_wall_s']} s)")
    stages = metrics["stages"]
    for stage in STAGES:
        if stage in stages:
            s = stages[stage]
            log(f"  {stage:9s} {s['jobs']:3d} jobs  {s['wall_s_sum']:7.1f} s summed  {s['wall_s_max']:6.1f} s longest  "
                f"peak RSS {s['peak_rss_mb'] / 1024:.2f} GiB")
    spend = metrics.get("spend") or {}
    if "equal" in spend:
        log(f"  spend ledger against the stand-in's bill: {spend['ledger_prompt_tokens']:,} / "
            f"{spend['billed_prompt_tokens']:,} prompt, {spend['ledger_completion_tokens']:,} / "
            f"{spend['billed_completion_tokens']:,} completion tokens ({'equal' if spend['equal'] else 'NOT equal'})")
    if stages.get("tgdpo_over_dpo_peak_rss"):
        log(f"  TGDPO / DPO training peak RSS: {stages['tgdpo_over_dpo_peak_rss']} (goal <= {metrics['goal_tgdpo_over_dpo_peak_rss']})")
    if stages.get("vllm_prompts_per_s"):
        v = stages["vllm_prompts_per_s"]
        log(f"  vLLM prompts/s per answer file: {v['min']}..{v['max']} over {v['answer_files']} files")
    if stages.get("model_loads_per_generate_job"):
        m = stages["model_loads_per_generate_job"]
        log(f"  model loads per generation job: {m['min']}..{m['max']} over {m['jobs']} jobs")
