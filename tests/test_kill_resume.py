"""SIGKILL during training, generation and judging, then a rerun: the final table is byte-identical, and
the rerun did strictly less work than a fresh run (steps resumed from a checkpoint, answers and judgments
reused from the caches), counted exactly.

Choice (documented in the final report): the pipeline runs through the real CLI stages (``reproduce train /
reference / generate / judge / score / table``), not Snakemake, so the whole file stays well under five
minutes on 2 cores: an uninterrupted run in this process, then a second run in another directory where the
train, generate and judge stages are started as ``reproduce`` subprocesses and SIGKILLed at seeded points
(inside the write of the k-th logged step / cached answer / cached judgment, half the time leaving a torn
line; tests/support/halt_at.py makes the kill an event of the stage, never a race with it), then rerun.
Snakemake adds nothing to these stages' own resume logic; it only decides what to rerun (a killed job's
outputs are marked incomplete in .snakemake/ and rerun). The judge is the fault-free stand-in server with
deterministic verdicts, the model a tiny random Llama, the preference pairs 32 built here.

A byte-identical table alone cannot tell resuming from starting over (a rerun from scratch is just as
deterministic), so each stage's work is counted as well: training steps actually run (calls of the
trainer's ``training_step`` in this process), answers generated vs reused (the generation summary in
``<answers>.config.json``) and judge requests sent (the stand-in server's own record of requests, those
under this process's key, and the judge stats in ``<judgments>.config.json``). The rerun of a killed stage must do exactly the fresh run's work
minus what the killed process had durably saved (its complete checkpoint, its cache lines).

Set KILL_SEED to replay a particular schedule.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from reproduce.config import load_config
from reproduce.io import read_jsonl

from conftest import build_tiny_model, near_miss_pairs, official_file
from support.standin_server import StandinServer
from support.verdicts import logprobs_for, verdict_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # minutes: real trainings in subprocesses
SEED = int(os.environ.get("KILL_SEED", "0"))
KEY_ENV = "KILL_RESUME_JUDGE_KEY"
RUN_KEY, KILLED_KEY = "sk-kill-resume-test", "sk-kill-resume-killed"  # this process's judge key, a killed one's
BENCHES = ("tiny_alpaca_eval2", "tiny_arena_hard")  # sampled (T=0.9) and greedy decoding
MODELS = ("sft", "dpo")
METHOD = {"loss": "dpo", "beta": 0.1, "learning_rate": 1e-3, "per_device_batch_size": 4, "max_length": 64,
          "epochs": 1, "save_steps": 2, "seed": 42}
TRAIN_STEPS = 8  # 32 pairs / batch 4, one epoch
GEN_BATCH = 8  # answers per generation batch: one cache append
# Fewest progress lines before a kill. Training: the Trainer logs a step and then saves its checkpoint in
# the same step end, so step save_steps + 1 is logged only once checkpoint-<save_steps> is complete; the
# kill comes inside that log write (tests/support/halt_at.py), so it always leaves a checkpoint to resume from.
MIN_KILL_LINES = {"train": METHOD["save_steps"] + 1}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A tiny random model and 32 near-miss preference pairs."""
    from reproduce.data.prefs import write_pairs

    out = tmp_path_factory.mktemp("kill_assets")
    model_dir = build_tiny_model(out / "sft")
    write_pairs(near_miss_pairs(32), {"pairs": 32}, out / "prefs.jsonl")
    return {"model": model_dir, "prefs": out / "prefs.jsonl"}


@pytest.fixture(scope="module")
def server():
    # Both tests share it; the fixture stops it (its default lifetime only bounds an orphan).
    with StandinServer(verdict=verdict_for, top_logprobs=logprobs_for, latency_s=0.02) as srv:
        yield srv


def _benches() -> dict:
    cfg = load_config({"preset": "tiny"})
    spec = load_config({"preset": "paper"})["benchmarks"]["arena_hard"]["questions"]["files"]["judge_config"]
    official_file(spec["path"])  # the official judge prompt: present (mirror or cache) or the test fails saying why
    out = {}
    for b in BENCHES:
        bench = dict(cfg["benchmarks"][b])
        bench["questions"] = dict(bench["questions"], n=40)
        if b == "tiny_arena_hard":  # the official judge prompt, so an LLM judge can answer
            bench["questions"]["files"] = {"judge_config": spec}
        out[b] = bench
    return out


class Pipeline:
    """The CLI stages of one run in ``root``; ``kill`` names stages to SIGKILL once in a subprocess."""

    def __init__(self, root: Path, assets: dict, server: StandinServer, rng: random.Random | None):
        self.root, self.assets, self.rng, self.server = root, assets, rng, server
        self.benches = _benches()
        self.judge_cfg = {"kind": "openai", "model": "standin-judge", "base_url": server.base_url,
                          "api_key_env": KEY_ENV, "concurrency": 4, "timeout_s": 10, "max_retries": 2}
        self.kills: list[str] = []
        self.saved_by_kill: dict[str, dict] = {}  # stage -> what the killed process left durably saved
        self.work: dict[str, dict] = {}  # stage -> work done by its (re)run in this process
        root.mkdir(parents=True, exist_ok=True)

    def job(self, stage: str, **keys) -> str:
        job = {"stage": stage, "preset": "tiny", "setting": "tiny-add", "threads": 2,
               "generation": {"backend": "hf", "batch_size": GEN_BATCH}, **keys}
        if "benchmark" in keys:
            job["benchmark_config"] = self.benches[keys["benchmark"]]
        if stage == "train":
            job["method_config"] = METHOD
        if stage in ("judge", "score"):
            job["judge"], job["judge_config"] = "standin", self.judge_cfg
        return json.dumps(job, sort_keys=True)

    def model_dir(self, m: str) -> str:
        return str(self.assets["model"]) if m == "sft" else f"results/models/tiny-add/{m}"

    def stages(self):
        """(name, argv, progress file, total units) in pipeline order."""
        yield ("train", ["train", "--job", self.job("train", method="dpo"), "--base", str(self.assets["model"]),
                         "--prefs", str(self.assets["prefs"]), "--cache", "results/cache/token_logps",
                         "--checkpoints", "results/checkpoints/tiny-add/dpo", "--out", "results/models/tiny-add/dpo"],
               "results/models/tiny-add/dpo/train_log.jsonl", TRAIN_STEPS)
        for b in BENCHES:
            yield ("reference", ["reference", "--job", self.job("reference", benchmark=b),
                                 "--out", f"results/answers/{b}/_reference.jsonl"], None, 0)
        for b in BENCHES:
            for m in MODELS:
                out = f"results/answers/{b}/tiny-add/{m}.jsonl"
                yield (f"generate:{b}:{m}", ["generate", "--job", self.job("generate", benchmark=b, method=m),
                                             "--model", self.model_dir(m), "--out", out], out + ".gen-cache.jsonl", 40)
        for b in BENCHES:
            for m in MODELS:
                cache = f"results/judgments/{b}/standin/_cache.jsonl"
                yield (f"judge:{b}:{m}", ["judge", "--job", self.job("judge", benchmark=b, method=m),
                                          "--answers", f"results/answers/{b}/tiny-add/{m}.jsonl",
                                          "--reference", f"results/answers/{b}/_reference.jsonl",
                                          "--cache", cache, "--out", f"results/judgments/{b}/standin/tiny-add/{m}.jsonl"],
                       cache, 40 if m == "sft" else 40)
                yield ("score", ["score", "--job", self.job("score", benchmark=b, method=m), "--benchmark", b,
                                 "--judgments", f"results/judgments/{b}/standin/tiny-add/{m}.jsonl",
                                 "--out", f"results/scores/{b}/standin/tiny-add/{m}.json"], None, 0)
        yield ("table", None, None, 0)

    def run(self, kill: tuple[str, ...] = ()) -> None:
        from reproduce import cli
        from reproduce.train.trainer import PreferenceTrainer

        steps_run = [0]
        step = PreferenceTrainer.training_step

        def counted_step(trainer, *args, **kwargs):
            steps_run[0] += 1
            return step(trainer, *args, **kwargs)

        with mock.patch.object(PreferenceTrainer, "training_step", counted_step):
            for name, argv, progress, total in self.stages():
                if name in kill:
                    self._kill_once(name, argv, progress, total)
                steps_run[0], requests_before = 0, len(self.server.requests)
                with contextlib.chdir(self.root):
                    if argv is None:
                        self.table()
                    else:
                        assert cli.main(argv) == 0, f"stage {name} failed"
                self.work[name] = self._work(name, argv, steps_run[0], self._sent_since(requests_before))

    def _sent_since(self, first: int) -> int:
        """Requests this process sent since the server's ``first``-th: a killed stage's requests that reach
        the server late carry the killed process's key and are not counted."""
        return sum(r["authorization"] == f"Bearer {RUN_KEY}" for r in list(self.server.requests)[first:])

    def _work(self, name: str, argv: list[str] | None, steps_run: int, requests_sent: int) -> dict:
        """What the stage just did, from its own outputs plus the two independent counts."""
        if name == "train":
            summary = json.loads((self.root / argv[argv.index("--out") + 1] / "train_summary.json").read_text())
            return {"steps_run": steps_run, "resumed_from": summary["resumed_from"], "steps": summary["steps"]}
        if name.startswith(("generate", "judge")):
            out = Path(argv[argv.index("--out") + 1])
            resolved = json.loads((self.root / out.with_name(out.name.split(".")[0] + ".config.json")).read_text())
            if name.startswith("generate"):
                return dict(resolved["generation_summary"])
            return {**resolved["judge_stats"], "requests_sent": requests_sent}
        return {}

    def _complete_checkpoints(self) -> list[int]:
        """Steps of the checkpoints whose trainer_state.json (written last) exists and parses."""
        steps = []
        for p in (self.root / "results/checkpoints/tiny-add/dpo").glob("checkpoint-*"):
            with contextlib.suppress(OSError, ValueError):
                json.loads((p / "trainer_state.json").read_text())
                steps.append(int(p.name.split("-")[-1]))
        return sorted(steps)

    def table(self) -> None:
        """``reproduce table``'s code with the stand-in added to the preset's judges (the CLI accepts only
        judges of the preset, and the stand-in's config must not be written into the repo)."""
        from reproduce.report.table1 import build_table1

        cfg = load_config({"preset": "tiny"})
        cfg["judges"]["standin"] = self.judge_cfg
        build_table1(cfg, "standin", Path("results"), Path("results/tables"), log=lambda m: None)

    def _lines(self, progress: str) -> int:
        """Complete lines of a progress file (a torn last line has no newline)."""
        path = self.root / progress
        return path.read_bytes().count(b"\n") if path.exists() else 0

    def _kill_once(self, name: str, argv: list[str], progress: str, total: int) -> None:
        """Run the stage as a subprocess that SIGKILLs itself once it has appended at least a seeded number
        of progress lines (tests/support/halt_at.py; a generation batch is one append), half the time tearing
        the next line as a kill in the middle of a write does. The kill is an event of the stage, never a
        race with it: the stage cannot finish first."""
        k = self.rng.randint(MIN_KILL_LINES.get(name, 1), total - 1)
        tear = self.rng.random() < 0.5
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        # the killed process judges under its own key: the server tells its requests from the rerun's
        env[KEY_ENV] = KILLED_KEY
        before = self._lines(progress)  # a judge cache is shared with the benchmark's earlier model
        proc = subprocess.run([sys.executable, str(ROOT / "tests/support/halt_at.py"), "--file", progress,
                               "--lines", str(k), "--kill", *(["--tear"] if tear else []), "--", *argv],
                              cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
        assert proc.returncode == -signal.SIGKILL, f"{name}: rc {proc.returncode}, not killed at line {k} " \
                                                   f"(seed {SEED}): {proc.stderr.decode()[-2000:]}"
        # complete lines only (a torn last line has no newline): what a rerun can reuse
        saved = self._lines(progress) - before
        assert k <= saved < k + GEN_BATCH, f"{name}: {saved} complete lines after the kill, the halt was at {k}"
        self.saved_by_kill[name] = {"lines": saved, "torn": tear,
                                    "checkpoints": self._complete_checkpoints() if name == "train" else []}
        self.kills.append(f"{name}: killed after {saved} progress lines (k={k}){' and a torn one' if tear else ''}")


def check_jsonl(root: Path) -> int:
    """Every JSONL under ``root``: no torn line, no duplicate line, no duplicate record id. Returns files."""
    n = 0
    for path in sorted(root.rglob("*.jsonl")):
        raw = path.read_bytes()
        assert not raw or raw.endswith(b"\n"), f"{path}: torn last line"
        records = read_jsonl(path)  # strict: every line parses
        lines = [line for line in raw.split(b"\n") if line]
        assert len(lines) == len(set(lines)), f"{path}: duplicate line"
        for id_key in ("question_id", "key", "step", "pair_id"):
            ids = [json.dumps(r[id_key]) for r in records if id_key in r]
            if ids:
                assert len(ids) == len(set(ids)), f"{path}: duplicate {id_key}"
                break
        n += 1
    return n


def test_killed_pipeline_reruns_to_the_identical_table(tmp_path, assets, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, RUN_KEY)
    clean = Pipeline(tmp_path / "clean", assets, server, None)
    clean.run()
    rng = random.Random(SEED)
    killed = Pipeline(tmp_path / "killed", assets, server, rng)
    killed.run(kill=("train", "generate:tiny_alpaca_eval2:dpo", "judge:tiny_alpaca_eval2:dpo",
                     "judge:tiny_arena_hard:sft"))
    assert len(killed.kills) == 4, killed.kills
    check_less_work(clean, killed)
    summary = json.loads((tmp_path / "killed/results/models/tiny-add/dpo/train_summary.json").read_text())
    for name in ("table1_standin.csv", "table1_standin.md"):
        a = (tmp_path / "clean/results/tables" / name).read_bytes()
        b = (tmp_path / "killed/results/tables" / name).read_bytes()
        assert a == b, f"{name} differs after kills {killed.kills} (seed {SEED}, resumed_from {summary['resumed_from']})"
    for b in BENCHES:  # and, in more detail, every score and every answer
        for m in MODELS:
            rel = f"results/scores/{b}/standin/tiny-add/{m}.json"
            assert json.loads((tmp_path / "clean" / rel).read_text()) == json.loads((tmp_path / "killed" / rel).read_text())
            rel = f"results/answers/{b}/tiny-add/{m}.jsonl"
            turns = lambda p: [r["turns"] for r in read_jsonl(p)]  # noqa: E731
            assert turns(tmp_path / "clean" / rel) == turns(tmp_path / "killed" / rel), rel
    assert check_jsonl(tmp_path / "killed") >= 10
    assert check_jsonl(tmp_path / "clean") >= 10
    table = (tmp_path / "killed/results/tables/table1_standin.md").read_text()
    assert "| Tiny addition (CPU) | DPO |" in table and "not run" in table  # simpo/tgdpo rows: not run here
    print("\n".join(killed.kills))


def check_less_work(clean: Pipeline, killed: Pipeline) -> None:
    """Each killed stage's rerun did the fresh run's work minus exactly what the killed process had saved;
    every other stage did the same work in both runs."""
    fresh = clean.work["train"]
    assert fresh == {"steps_run": TRAIN_STEPS, "resumed_from": None, "steps": TRAIN_STEPS}, fresh
    for name, work in killed.work.items():
        fresh, saved = clean.work[name], killed.saved_by_kill.get(name)
        if name.startswith("judge"):
            assert work["requests_sent"] == work["new_requests"], (name, work)  # the stats count what was sent
        if saved is None:
            if name != "train":  # untouched stages: the same work as the fresh run
                assert {k: work.get(k) for k in ("generated", "cached", "new_requests", "requests")} == \
                       {k: fresh.get(k) for k in ("generated", "cached", "new_requests", "requests")}, name
            continue
        if name == "train":
            last = saved["checkpoints"][-1]  # MIN_KILL_LINES guarantees one
            assert work["resumed_from"] == f"checkpoint-{last}", (work, saved)
            assert work["steps_run"] == TRAIN_STEPS - last < TRAIN_STEPS, (work, saved)
            assert work["steps"] == TRAIN_STEPS
        elif name.startswith("generate"):
            assert fresh["generated"] == fresh["questions"] and fresh["cached"] == 0, fresh
            assert saved["lines"] >= 1  # the kill came after at least one cached answer
            assert (work["cached"], work["generated"]) == (saved["lines"], fresh["generated"] - saved["lines"]), \
                (name, work, saved)
        else:
            assert fresh["new_requests"] == fresh["requests_sent"] > 0, fresh
            assert saved["lines"] >= 1
            assert work["requests"] == fresh["requests"]
            assert work["requests_sent"] == fresh["requests_sent"] - saved["lines"], (name, work, saved)
    print(f"rerun work: train {killed.work['train']}, "
          + ", ".join(f"{n}: {w.get('generated', w.get('requests_sent'))} of "
                      f"{clean.work[n].get('generated', clean.work[n].get('requests_sent'))}"
                      for n, w in killed.work.items() if n in killed.saved_by_kill and n != "train"))


def test_train_log_has_no_repeated_step_after_resume(tmp_path, assets):
    """A run killed between checkpoints repeats the steps after the last checkpoint; its log must not
    list them twice, and a checkpoint cut short by the kill (no trainer_state.json) is never resumed."""
    from reproduce.train.run import train_method

    out, ckpt = tmp_path / "dpo", tmp_path / "ckpt"
    train_method(dict(METHOD, keep_checkpoints=True), assets["model"], assets["prefs"], out, checkpoint_dir=ckpt,
                 threads=2, log=lambda m: None)
    # simulate a kill after step 6 was logged, with checkpoint-6 half written and checkpoint-4 complete
    rows = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 9))
    (out / "train_summary.json").unlink()
    (out / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:6]) + '{"step": 7, "lo')
    import shutil

    assert sorted(p.name for p in ckpt.glob("checkpoint-*")) == ["checkpoint-6"]  # none at the final step
    (ckpt / "checkpoint-6" / "trainer_state.json").unlink()  # cut short: saved last
    first = tmp_path / "first"
    train_method(dict(METHOD, max_steps=5, keep_checkpoints=True), assets["model"], assets["prefs"], first,
                 checkpoint_dir=tmp_path / "c4", threads=2, log=lambda m: None)
    shutil.copytree(tmp_path / "c4" / "checkpoint-4", ckpt / "checkpoint-4")
    summary = train_method(dict(METHOD), assets["model"], assets["prefs"], out, checkpoint_dir=ckpt, threads=2,
                           log=lambda m: None)
    assert summary["resumed_from"] == "checkpoint-4"
    steps = [r["step"] for r in read_jsonl(out / "train_log.jsonl")]
    assert steps == list(range(1, 9)), steps
