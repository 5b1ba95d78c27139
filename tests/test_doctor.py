"""``reproduce doctor`` against a real HTTP stand-in for the hub on 127.0.0.1 (``HF_ENDPOINT``): a
repository it grants (200), a gated one (401) and a wrong revision (404); the whole command's lines and
exit status; and the workflow's ``onstart:`` step that runs it for the paper preset."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reproduce.config import load_config

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sk-test-value-never-printed"
HUB_TOKEN = "hf_test_token_never_printed"


class HubStandIn(BaseHTTPRequestHandler):
    """Answers HEAD /<repo>/resolve/<revision>/<file> as the hub does: ``GATED`` repositories 401 without a
    token (403 with one), a revision other than the repository's ``PINNED`` one 404 RevisionNotFound."""

    PINNED: dict[str, str] = {}
    GATED: set[str] = set()
    seen: list[tuple[str, str | None]] = []

    def do_HEAD(self):  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0].lstrip("/")
        auth = self.headers.get("Authorization")
        type(self).seen.append((path, auth))
        repo, _, rest = path.partition("/resolve/")
        revision = rest.split("/")[0]
        if repo not in self.PINNED:
            return self._answer(404, "RepoNotFound")
        if repo in self.GATED and auth != f"Bearer {HUB_TOKEN}":
            return self._answer(401 if auth is None else 403, "GatedRepo")
        if revision != self.PINNED[repo]:
            return self._answer(404, "RevisionNotFound")
        return self._answer(200, None)

    def _answer(self, code: int, error: str | None):
        self.send_response(code)
        if error:
            self.send_header("X-Error-Code", error)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):  # quiet test output
        pass


def _paper_repos(cfg: dict) -> dict[str, str]:
    """{hub path: pinned revision} of every repository the paper preset downloads, as the doctor asks them."""
    from reproduce.doctor.hub import hub_repos

    return {("datasets/" if kind == "dataset" else "") + repo: rev for kind, repo, rev, _ in hub_repos(cfg)}


@pytest.fixture()
def hub(monkeypatch):
    """The stand-in hub on 127.0.0.1 with the paper preset's repositories all granted; HF_ENDPOINT points at it."""
    cfg = load_config({"preset": "paper"})
    HubStandIn.PINNED = _paper_repos(cfg)
    HubStandIn.GATED = set()
    HubStandIn.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / "doctor-test-no-stored-token"))
    yield {"cfg": cfg, "endpoint": endpoint}
    server.shutdown()
    server.server_close()


@pytest.mark.server
def test_granted_gated_and_wrong_revision(hub, monkeypatch):
    from reproduce.doctor.hub import access_check

    cfg = hub["cfg"]
    HubStandIn.GATED = {"meta-llama/Llama-3.2-3B-Instruct"}
    llama8 = cfg["settings"]["llama3-8b-pairrm"]["base"]
    ok = access_check("model", llama8["model"], llama8["revision"], "settings.llama3-8b-pairrm.base", None, 5)
    assert ok.status == "ok" and llama8["revision"][:12] in ok.detail
    gated = access_check("model", "meta-llama/Llama-3.2-3B-Instruct",
                         cfg["settings"]["llama3.2-3b-armorm"]["base"]["revision"], "settings.llama3.2-3b-armorm.base", None, 5)
    assert gated.status == "FAIL" and "HTTP 401 GatedRepo" in gated.detail and "HF_TOKEN" in gated.detail
    assert "licence" in gated.detail and "settings.llama3.2-3b-armorm.base" in gated.detail
    wrong = access_check("model", llama8["model"], "0" * 40, "settings.llama3-8b-pairrm.base", None, 5)
    assert wrong.status == "FAIL" and "HTTP 404 RevisionNotFound" in wrong.detail and "0" * 40 in wrong.detail
    # the requests were HEADs for the pinned revision's config.json at HF_ENDPOINT
    assert (f"{llama8['model']}/resolve/{llama8['revision']}/config.json", None) in HubStandIn.seen


@pytest.mark.server
def test_the_token_is_sent_and_opens_a_gated_repository(hub, monkeypatch):
    from reproduce.doctor.hub import hub_checks

    HubStandIn.GATED = {"meta-llama/Llama-3.2-3B-Instruct"}
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    checks = hub_checks(hub["cfg"], timeout=5)
    assert [c.status for c in checks] == ["ok"] * len(checks)
    assert checks[0].name == "hub token" and "$HF_TOKEN" in checks[0].detail
    assert len(checks) == 1 + len(HubStandIn.PINNED)  # one line per repository and revision
    assert all(auth == f"Bearer {HUB_TOKEN}" for _, auth in HubStandIn.seen)
    assert all(HUB_TOKEN not in c.line() for c in checks)


def _doctor(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reproduce.cli", "doctor", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _fake_tools(folder: Path, gpus: str | None) -> None:
    """Stand-ins for nvidia-smi on PATH (the GPUs a machine reports; none: not installed)."""
    folder.mkdir(exist_ok=True)
    if gpus is not None:
        tool = folder / "nvidia-smi"
        tool.write_text(f"#!/bin/sh\nprintf '{gpus}'\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


@pytest.mark.server
def test_the_command_one_line_per_check_and_exit_status(hub, tmp_path):
    tools = tmp_path / "bin"
    _fake_tools(tools, "NVIDIA H100 80GB HBM3, 81559\\n" * 8)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "OPENAI_API_KEY": SECRET,
           "HF_TOKEN": HUB_TOKEN, "HF_HUB_CACHE": str(tmp_path / "hub"), "PYTHONPATH": str(ROOT),
           "REPRODUCE_ALPACA_EVAL_LC_DIR": str(tmp_path)}
    results = tmp_path / "results"
    # no judging.max_usd in the paper preset: a blocker until a cap is set or --no-budget says none
    out = _doctor(["--preset", "paper", "--results", str(results), "--timeout", "5"], env)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 1, out.stdout + out.stderr
    assert any(line.startswith("FAIL  judging.max_usd") for line in lines)
    # the disk check compares the plan's needs with the free space of this filesystem: only its outcome varies
    budget = json.dumps({"preset": "paper", "judging": {"max_usd": 250}})
    out = _doctor(["--config-json", budget, "--results", str(results), "--timeout", "5"], env)
    lines = out.stdout.strip().splitlines()
    by_name = {re.split(r"\s{2,}", line)[1]: line[:4].strip() for line in lines[:-1]}
    assert by_name["judging.max_usd"] == "ok" and by_name["judge key OPENAI_API_KEY"] == "ok"
    assert by_name["GPUs (this machine)"] == "ok" and by_name["hub token"] == "ok"
    assert all(by_name[f"hub model {m}"] == "ok" for m in ("meta-llama/Meta-Llama-3-8B-Instruct", "google/gemma-2-2b-it"))
    disk = [line for line in lines if line[6:].startswith("disk:")]
    assert disk and "GB needed" in disk[0]
    assert out.returncode == (1 if "FAIL" in "".join(by_name.values()) else 0)
    assert lines[-1].startswith("doctor: preset paper,") and SECRET not in out.stdout + out.stderr
    assert HUB_TOKEN not in out.stdout + out.stderr
    # one GPU of 24 GB: a training job starts 8 processes and its planned peak does not fit
    _fake_tools(tools, "NVIDIA GeForce RTX 4090, 24564\\n")
    out = _doctor(["--config-json", budget, "--results", str(results), "--timeout", "5"], env)
    gpu = [line for line in out.stdout.splitlines() if "GPUs (this machine)" in line][0]
    assert gpu.startswith("FAIL") and "8 processes" in gpu and out.returncode == 1


def test_missing_judge_key_and_no_gpu_are_blockers(monkeypatch, tmp_path):
    from reproduce.doctor import inputs, machine

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi here
    cfg = load_config({"preset": "paper"})
    keys = inputs.judge_key_checks(cfg)
    assert [(c.status, c.name) for c in keys] == [("FAIL", "judge key OPENAI_API_KEY")]
    assert inputs.budget_check(cfg, no_budget=True).status == "ok"
    from reproduce.plan.build import model_stages, training_gpus
    from reproduce.plan.gpu import Rates

    stages, _ = model_stages(cfg, tmp_path / "results", Rates(), training_gpus(cfg))
    gpu = machine.gpu_check_local(stages, training_gpus(cfg))
    assert gpu.status == "FAIL" and "nvidia-smi not found" in gpu.detail


def test_slurm_partition_gpus_from_sinfo(monkeypatch, tmp_path):
    from reproduce.doctor import machine

    tool = tmp_path / "sinfo"
    tool.write_text("#!/bin/sh\necho \"$@\" > " + str(tmp_path / "args") + "\nprintf 'gpu|gpu:h100:4(S:0-1)|2|up\\n'\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    stages = [{"stage": "train", "done": False, "peak_gpu_gb": 30.0}, {"stage": "base", "disk_gb": 16.0}]
    checks = machine.slurm_checks(stages, 8, "gpu")
    assert checks[0].status == "ok" and "-p gpu" in (tmp_path / "args").read_text()
    assert checks[1].status == "FAIL" and "2 node(s) x 4 h100" in checks[1].detail and "8 GPUs on one node" in checks[1].detail
    assert machine.slurm_checks(stages, 4, "gpu")[1].status == "warn"  # enough GPUs; memory sinfo cannot tell


def test_workflow_runs_the_doctor_for_the_paper_preset_only():
    from reproduce.workflow import doctor_command

    paper = load_config({"preset": "paper"})
    argv = doctor_command(paper, {"preset": "paper"})
    assert argv[:2] == ["reproduce", "doctor"] and json.loads(argv[3]) == {"preset": "paper"}
    assert "--slurm" not in argv
    assert doctor_command(paper, {"preset": "paper"}, "slurm", "gpu")[-3:] == ["--slurm", "--partition", "gpu"]
    assert doctor_command(load_config({"preset": "paper", "doctor": "false"}), {"preset": "paper", "doctor": "false"}) is None
    for preset in ("tiny", "rehearsal"):
        assert doctor_command(load_config({"preset": preset}), {"preset": preset}) is None


def test_slurm_partition_is_read_from_the_command_line_resource():
    """--default-resources slurm_partition=NAME arrives as an expression evaluated per job: its text is the name."""
    from types import SimpleNamespace

    from snakemake.resources import Resources

    from reproduce.workflow import slurm_partition

    def given(*exprs):
        return SimpleNamespace(default_resources=Resources.parse(list(exprs), allow_expressions=True))

    assert slurm_partition(given("slurm_partition=gpux", "mem_mb=100")) == "gpux"
    assert slurm_partition(given("slurm_partition='gpu a'")) == "gpu a"
    assert slurm_partition(given("mem_mb=100")) is None
    assert slurm_partition(SimpleNamespace(default_resources=None)) is None


@pytest.mark.slow
def test_snakemake_stops_on_a_blocker_before_any_job(tmp_path):
    """The paper preset's workflow runs the doctor as its onstart step and stops there (no GPU, no key here);
    a dry run never runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": "http://127.0.0.1:9", "PATH": os.environ["PATH"]}
    env.pop("OPENAI_API_KEY", None)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "1",
           "plan", "--config", "preset=paper"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode != 0
    assert "FAIL  judge key OPENAI_API_KEY" in out.stdout + out.stderr and "doctor=false" in out.stderr
    assert not (tmp_path / "results" / "plan.md").exists()
    dry = subprocess.run(cmd + ["-n"], capture_output=True, text=True, env=env, timeout=300)
    assert dry.returncode == 0 and "judge key" not in dry.stdout + dry.stderr


@pytest.mark.slow
def test_under_the_slurm_executor_the_partition_is_checked_not_the_submit_host(tmp_path):
    """With --executor slurm and --default-resources slurm_partition=NAME, the onstart doctor asks sinfo about
    that partition (stand-ins for the SLURM commands on PATH record what they were asked) and never looks
    for GPUs on the submit host."""
    tools = tmp_path / "bin"
    tools.mkdir()
    asked = tmp_path / "sinfo.args"
    (tools / "sinfo").write_text(f"#!/bin/sh\necho \"$@\" >> {asked}\nprintf 'gpux|gpu:h100:8|2|up\\n'\n")
    for name in ("squeue", "sacct", "scontrol"):  # the executor plugin's own status commands: answer nothing
        (tools / name).write_text("#!/bin/sh\nexit 0\n")
    for tool in tools.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_ENDPOINT": "http://127.0.0.1:9",
           "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(work), "plan",
                          "--config", "preset=paper", "--executor", "slurm", "--jobs", "1",
                          "--default-resources", "slurm_partition=gpux"], capture_output=True, text=True, env=env,
                         timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "doctor=false" in text  # no key or budget here: blocked before any job
    assert asked.read_text().split()[-2:] == ["-p", "gpux"]
    assert "GPUs (partition gpux)" in text and "2 node(s) x 8 h100" in text and "GPUs (this machine)" not in text


@pytest.mark.server
def test_alpaca_eval_lc_files_folder_or_pinned_revision(hub, monkeypatch, tmp_path):
    """The length-control files: a folder holding df_gamed.csv, or the hub dataset at the pinned revision
    (a HEAD request for the file there); missing is a warning (Table 1 then says so), never a blocker."""
    from reproduce.doctor.inputs import lc_check

    cfg = hub["cfg"]
    HubStandIn.PINNED["datasets/tatsu-lab/alpaca_eval"] = "1" * 40
    monkeypatch.delenv("REPRODUCE_ALPACA_EVAL_LC_DIR", raising=False)
    monkeypatch.setenv("REPRODUCE_ALPACA_EVAL_HF_REVISION", "1" * 40)
    assert lc_check(cfg, 5).status == "ok"
    assert ("datasets/tatsu-lab/alpaca_eval/resolve/" + "1" * 40 + "/df_gamed.csv", None) in HubStandIn.seen
    monkeypatch.setenv("REPRODUCE_ALPACA_EVAL_HF_REVISION", "2" * 40)
    wrong = lc_check(cfg, 5)
    assert wrong.status == "warn" and "RevisionNotFound" in wrong.detail
    monkeypatch.setenv("REPRODUCE_ALPACA_EVAL_LC_DIR", str(tmp_path))
    assert lc_check(cfg, 5).status == "warn"
    (tmp_path / "df_gamed.csv").write_text("x\n")
    assert lc_check(cfg, 5).status == "ok"


def test_offline_hub_is_checked_in_the_cache(monkeypatch, tmp_path):
    """With HF_HUB_OFFLINE set nothing is asked: a repository is fine when its snapshot at the pinned revision
    is in the hub cache, a blocker when not (compute nodes without network)."""
    from huggingface_hub import constants

    from reproduce.doctor.hub import hub_checks

    cfg = load_config({"preset": "paper"})
    base = cfg["settings"]["llama3-8b-pairrm"]["base"]
    (tmp_path / "models--meta-llama--Meta-Llama-3-8B-Instruct" / "snapshots" / base["revision"]).mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # never asked
    checks = {c.name: c for c in hub_checks(cfg, timeout=5)}
    assert checks["hub model meta-llama/Meta-Llama-3-8B-Instruct"].status == "ok"
    gemma = checks["hub model google/gemma-2-2b-it"]
    assert gemma.status == "FAIL" and "HF_HUB_OFFLINE" in gemma.detail and "settings.gemma2-2b-armorm.base" in gemma.detail
