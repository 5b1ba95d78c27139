"""A planted API key never reaches any file the pipeline writes.

The key sits only in an environment variable named by a judge YAML's ``api_key_env``. Judging runs through
the real CLI (``reproduce judge``, as a subprocess, and under Snakemake with a rule like the workflow's),
against the stand-in, whose first answer is a 401 that quotes the key back (as a careless server or proxy
might). Afterwards every file under the working directory (answers, judgments, failures, cache, resolved
configs, scores, the table, logs, Snakemake's .snakemake/ metadata) is searched for the key: zero hits.
The stand-in's request log proves the key really was sent, so the search is not vacuous.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reproduce.config import load_config, load_yaml, validate

from support.standin_server import Fault, StandinServer
from support.verdicts import logprobs_for, verdict_for

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "TGDPO_PLANTED_JUDGE_KEY"
SECRET = "sk-planted-0123456789abcdefSECRETkey"

SNAKEFILE = """
rule judge:
    input:
        answers="results/answers/{b}/tiny-add/{m}.jsonl",
        reference="results/answers/{b}/_reference.jsonl",
    output:
        "results/judgments/{b}/planted/tiny-add/{m}.snake.jsonl",
    params:
        job=lambda w: JOB,
    log:
        "results/logs/judge/{b}/planted/tiny-add/{m}.log",
    shell:
        "reproduce judge --job {params.job:q} --answers {input.answers} --reference {input.reference}"
        " --cache results/judgments/{wildcards.b}/planted/_cache.jsonl --out {output} 2> {log}"
"""


def _cli(args: list[str], cwd: Path, env: dict, log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.run([sys.executable, "-m", "reproduce.cli", *args], cwd=cwd, env=env, stdout=fh, stderr=fh)
    assert proc.returncode == 0, log.read_text()[-3000:]


@pytest.mark.slow
def test_planted_key_is_written_nowhere(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, **{KEY_ENV: SECRET}, TOKENIZERS_PARALLELISM="false",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    bench_name = "tiny_alpaca_eval2"
    bench = dict(load_config({"preset": "tiny"})["benchmarks"][bench_name])
    bench["questions"] = dict(bench["questions"], n=12)
    # the first run's planted 401 must come back as a listed failure, not fail the job (see test_cli for that)
    bench["judging"] = dict(bench["judging"], max_failed_fraction=1.0)
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, script=[Fault.auth_error()]) as srv:
        judge_yaml = tmp_path / "planted.yaml"  # a judge file like evals/judges/*.yaml
        judge_yaml.write_text(yaml.safe_dump({
            "kind": "openai", "description": "stand-in judge with a planted key", "model": "standin-judge",
            "base_url": srv.base_url, "api_key_env": KEY_ENV, "concurrency": 2, "timeout_s": 10,
            "max_retries": 1, "price_per_million_input": 1.0, "price_per_million_output": 2.0, "logprobs": True}))
        judge_cfg = validate(load_yaml(judge_yaml), "judge", judge_yaml)
        job = {"stage": "judge", "preset": "tiny", "setting": "tiny-add", "benchmark": bench_name, "method": "m",
               "judge": "planted", "benchmark_config": bench, "judge_config": judge_cfg}
        job_s = json.dumps(job, sort_keys=True)
        logs = work / "results" / "logs"
        _cli(["reference", "--job", job_s, "--out", f"results/answers/{bench_name}/_reference.jsonl"], work, env,
             logs / "reference.log")
        refs = [json.loads(line) for line in
                (work / f"results/answers/{bench_name}/_reference.jsonl").read_text().splitlines()]
        answers = work / f"results/answers/{bench_name}/tiny-add/m.jsonl"
        answers.parent.mkdir(parents=True, exist_ok=True)
        answers.write_text("".join(json.dumps({"question_id": r["question_id"], "model": "m",
                                               "turns": [r["turns"][0] + "0"]}) + "\n" for r in refs))
        out = f"results/judgments/{bench_name}/planted/tiny-add/m.jsonl"
        judge_args = ["judge", "--job", job_s, "--answers", str(answers.relative_to(work)),
                      "--reference", f"results/answers/{bench_name}/_reference.jsonl",
                      "--cache", f"results/judgments/{bench_name}/planted/_cache.jsonl", "--out", out]
        _cli(judge_args, work, env, logs / "judge.log")  # first game: the 401 quoting the key -> a failure
        failures = json.loads((work / out.replace(".jsonl", ".failures.json")).read_text())["failures"]
        assert len(failures) == 1 and "HTTP 401" in failures[0]["reason"], failures
        assert_no_secret(work)  # the failure as it stands after the first run, before a rerun replaces it
        _cli(judge_args, work, env, logs / "judge-rerun.log")  # the failed game is asked again
        assert json.loads((work / out.replace(".jsonl", ".failures.json")).read_text())["failures"] == []
        _cli(["score", "--job", job_s, "--benchmark", bench_name, "--judgments", out,
              "--out", f"results/scores/{bench_name}/planted/tiny-add/m.json"], work, env, logs / "score.log")
        # under Snakemake too: its metadata (.snakemake/) records the job, never the key
        (work / "Snakefile").write_text(f"JOB = {job_s!r}\n" + SNAKEFILE)
        snake = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-d", str(work), "-s",
                                str(work / "Snakefile"), f"results/judgments/{bench_name}/planted/tiny-add/m.snake.jsonl"],
                               cwd=work, env=env, capture_output=True, text=True)
        (logs / "snakemake.log").write_text(snake.stdout + snake.stderr)
        assert snake.returncode == 0, snake.stderr[-3000:]
        sent = [r["authorization"] for r in srv.requests]
    assert sent and all(a == f"Bearer {SECRET}" for a in sent), "the planted key was not the key in use"
    # the table of these scores, as `reproduce table` builds it
    from reproduce.report.table1 import build_table1

    cfg = load_config({"preset": "tiny"})
    cfg["judges"]["planted"] = judge_cfg
    build_table1(cfg, "planted", work / "results", work / "results" / "tables", log=lambda m: None)

    files = [p for p in work.rglob("*") if p.is_file()]
    assert any(".snakemake" in p.parts for p in files), "no Snakemake metadata to search"
    for must in ("_cache.jsonl", "m.jsonl", "m.failures.json", "m.config.json", "m.json", "table1_planted.md",
                 "judge.log", "m.snake.jsonl"):
        assert any(p.name == must for p in files), f"{must} was not written"
    assert_no_secret(work)


def assert_no_secret(work: Path) -> None:
    """No file under ``work`` holds the key or its tail (what a masked prefix leaves)."""
    needles = [SECRET.encode(), SECRET[8:].encode()]
    hits = [str(p.relative_to(work)) for p in work.rglob("*") if p.is_file() for n in needles if n in p.read_bytes()]
    assert hits == [], f"the planted key was written to {hits}"
