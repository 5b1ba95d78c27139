"""Every command in the ```bash blocks of README.md and docs/*.md is exercised: run for real where that is
quick, in its dry-run form where the real run is long (Snakemake plans the same command with ``-n`` in an empty
scratch directory), flags parsed where it needs a paid judge, and, for the commands whose full run is CI's own
(the test command, the rehearsal), CI must run the README block verbatim (``.ci/run``). A command this file
does not know fails the test, so a new block cannot go untested silently. A block that cannot run in a test at
all (GPUs, a cluster, a paid API) is fenced ```text instead, and is not read here.

Placeholders in the README's examples (``my_model.jsonl``, ``annotations.json``, ...) are replaced with real
files of the same format: a real AlpacaEval annotations file, Arena-Hard v0.1 judgments scored against the
official code's numbers, FastChat judgment files; `reproduce judge` (which needs an API judge) is checked
by parsing its flags and resolving its benchmark, judge and preset.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import arena_synthetic_on_real_ids, official_file

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# What a checker returns when it only checked what CI runs in full: the block must then be a line of .ci/run.
CI_RUNS_IT = "(CI runs it)"


def bash_blocks(path: Path = README) -> list[str]:
    """The ```bash blocks of one Markdown file (the README by default), in order."""
    return re.findall(r"^```bash\n(.*?)^```", path.read_text(), re.S | re.M)


def all_blocks() -> list[tuple[str, int]]:
    """(file relative to the root, block index) of every ```bash block in README.md and docs/*.md."""
    return [(str(path.relative_to(ROOT)), i) for path in [README, *DOCS] for i in range(len(bash_blocks(path)))]


def commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists: continuation lines joined, comments dropped, `&&` chains split."""
    text = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(words[:cut])
            words = words[cut + 1:]
    return out


def _run(argv: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{shlex.join(argv)}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    return out


# ---- one checker per kind of command; each returns what it did, for the test's report ----

def _snakemake(argv: list[str], tmp: Path) -> str:
    """Dry run of the same command in an empty scratch working directory; it must plan its targets."""
    work = tmp / "snakemake-work"
    work.mkdir(exist_ok=True)
    plan = _run([sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "-d", str(work), *argv[1:]],
                cwd=ROOT, timeout=240).stdout
    assert "Job stats:" in plan, plan[-2000:]
    from snakemake.cli import get_argument_parser

    targets = get_argument_parser().parse_args(argv[1:]).targets
    assert targets, f"{shlex.join(argv)} names no target"
    for target in targets:
        assert re.search(rf"^{target}\s+1$", plan, re.M), f"{target} not planned by {shlex.join(argv)}"
    return "dry run"


def _bash_script(argv: list[str], tmp: Path) -> str:
    script = ROOT / argv[1]
    assert script.is_file(), f"{argv[1]} does not exist"
    _run(["bash", "-n", str(script)], cwd=ROOT)
    if argv[1] == "scripts/setup.sh":
        # real: a no-op when .venv is up to date with the pins, an install when it is not
        _run(["bash", str(script)], cwd=ROOT, timeout=1800)
        return "run"
    if argv[1] == "scripts/setup_gpu.sh":
        return "syntax checked (it needs Linux with CUDA and installs requirements/gpu.lock; docs/install.md)"
    return f"syntax checked {CI_RUNS_IT}"


def _activate(argv: list[str], tmp: Path) -> str:
    assert argv[1] == ".venv/bin/activate" and (ROOT / argv[1]).is_file(), "scripts/setup.sh makes .venv"
    return "exists"


def _conda(argv: list[str], tmp: Path) -> str:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    if argv[1:3] == ["env", "create"]:
        assert argv[3] == "-f" and (ROOT / argv[4]).is_file()
    else:
        assert argv[1] == "activate" and argv[2] == env["name"], f"environment.yml's name is {env['name']!r}"
    return "checked against environment.yml (no conda here)"


def _hub_reads(name: str) -> bool:
    """Whether the installed Hugging Face hub client reads the environment variable ``name``."""
    import huggingface_hub

    return any(f'"{name}"' in p.read_text() for p in Path(huggingface_hub.__file__).parent.rglob("*.py"))


def _export(argv: list[str], tmp: Path) -> str:
    named = {yaml.safe_load(p.read_text()).get("api_key_env") for p in (ROOT / "evals" / "judges").glob("*.yaml")}
    ours = "\n".join(p.read_text() for p in (ROOT / "reproduce").rglob("*.py"))
    readers = []
    for assignment in argv[1:]:
        name = assignment.split("=")[0]
        if name in named:
            readers.append(f"{name}: a judge")
        elif name.startswith("REPRODUCE_") and f'"{name}"' in ours:
            readers.append(f"{name}: reproduce/")
        else:
            assert name.startswith("HF_") and _hub_reads(name), f"neither a judge, reproduce/ nor the hub client reads ${name}"
            readers.append(f"{name}: the hub client")
    return "read by " + ", ".join(readers)


def _python(argv: list[str], tmp: Path) -> str:
    """`python -m pytest FILES`: the files exist (CI runs pytest); `python -m reproduce.X`: the module exists;
    `python perf/X.py FLAGS`: the script exists and defines every flag used."""
    if argv[1:3] == ["-m", "pytest"]:
        files = [a.split("::")[0] for a in argv[3:] if not a.startswith("-")]
        assert files and all((ROOT / f).is_file() for f in files), f"{shlex.join(argv)}: no such test file"
        return f"test files exist {CI_RUNS_IT}"
    if argv[1] == "-m":
        assert argv[2].startswith("reproduce.") and (ROOT / (argv[2].replace(".", "/") + ".py")).is_file(), argv[2]
        return "module exists"
    script = ROOT / argv[1]
    assert argv[1].startswith("perf/") and script.is_file(), f"{argv[1]} does not exist"
    text = script.read_text()
    for flag in (a.split("=")[0] for a in argv[2:] if a.startswith("--")):
        assert f'"{flag}"' in text, f"{argv[1]} has no flag {flag}"
    return "script exists with these flags (a perf script: not run in tests)"


def _placeholders(tmp: Path) -> dict[str, str]:
    """README example file names -> real files of that format."""
    from test_mt_bench import MODELS, _fastchat_files

    single, _ = _fastchat_files(tmp)
    arena = arena_synthetic_on_real_ids(tmp / "arena_m.jsonl")
    return {"annotations.json": str(official_file("alpaca_eval_annotations/claude-2/annotations.json")),
            "model_judgment/gpt-4-1106-preview/m.jsonl": str(arena), "gpt-4_single.jsonl": str(single),
            "NAME": MODELS[0]}


def _reproduce(argv: list[str], tmp: Path) -> str:
    from reproduce.cli import build_parser
    from reproduce.config import load_config

    args = build_parser().parse_args(argv[1:])  # every flag is one the command has
    if args.command == "score":
        subs = _placeholders(tmp)
        real = [subs.get(a, a) for a in argv[1:]]
        out = _run([sys.executable, "-m", "reproduce.cli", *real], cwd=tmp)
        assert out.stdout.strip(), "score printed nothing"
        return "run on a real file of that format"
    if args.command == "judge":
        cfg = load_config({"preset": args.preset})
        assert args.benchmark in cfg["benchmarks"] and (ROOT / "evals" / "judges" / f"{args.judge}.yaml").is_file()
        return "flags parsed; benchmark, judge and preset resolved (the judge is a paid API)"
    if args.command == "bridge":
        if args.replay or args.dry_run:  # no judge calls: run it for real (a dry run on the 10 shortest pairs)
            extra = ["--limit", "10"] if args.dry_run else []
            out = _run([sys.executable, "-m", "reproduce.cli", *argv[1:], *extra, "--results", str(tmp / "results")],
                       cwd=tmp)
            assert "bridge plan:" in out.stderr or "# Bridge:" in out.stderr, out.stderr[-2000:]
            return "run (replay or dry run: nothing sent)"
        from reproduce.bridge.run import _benchmark, _judge

        cfg = load_config({"preset": args.preset or "paper"})
        _benchmark(args.benchmark, cfg)
        _judge(args.judge, cfg, dry_run=True)
        return "flags parsed; benchmark and judge resolved, the judge not retired (the judge is a paid API)"
    if args.command == "check-config":
        _run([sys.executable, "-m", "reproduce.cli", *argv[1:]], cwd=tmp)
        return "run"
    if args.command == "doctor":
        from reproduce.config import config_from_cli

        cfg = config_from_cli(args.preset, args.config_json)
        assert cfg["settings"], "the preset has no settings"
        return "flags parsed and preset resolved (it asks the hub: tests/test_doctor.py runs it against a stand-in)"
    if args.command == "plan":
        cfg = load_config({"preset": args.preset} if args.preset else None)
        assert cfg["settings"], "the preset has no settings"
        return "flags parsed and preset resolved (tests/test_plan.py runs the plan)"
    if args.command == "rehearsal":
        plan = _snakemake(["snakemake", "--cores", str(args.cores), args.target, "--config", "preset=rehearsal"], tmp)
        return f"{plan} of its workflow {CI_RUNS_IT}"
    raise AssertionError(f"README runs `reproduce {args.command}`, which tests/test_readme.py does not exercise")


CHECKERS = {"snakemake": _snakemake, "bash": _bash_script, ".": _activate, "conda": _conda, "export": _export,
            "reproduce": _reproduce, "python": _python}


def test_readme_has_the_documented_blocks():
    blocks = bash_blocks()
    assert len(blocks) >= 3
    assert "snakemake --cores all reproduce_table1" in blocks[0] and "scripts/setup.sh" in blocks[0]
    assert "bash scripts/test.sh" in blocks[1]


def test_docs_pages_have_blocks_to_check():
    """The docs/ pages are read: the index's pages exist and some of them hold ```bash blocks."""
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)", README.read_text()))
    assert linked == {str(p.relative_to(ROOT)) for p in DOCS}, "README's index and docs/*.md differ"
    assert any(name != "README.md" for name, _ in all_blocks())


def starts_processes(block: str) -> bool:
    """Whether checking the block runs a command for real (a Snakemake dry run, ``scripts/setup.sh``, a
    ``reproduce`` command that runs): seconds each, so such a block's test is ``slow`` (not in --quick)."""
    for argv in commands(block):
        if argv[0] == "snakemake" or argv[:2] == ["bash", "scripts/setup.sh"]:
            return True
        if argv[0] == "reproduce" and len(argv) > 1 and (argv[1] in ("score", "check-config", "rehearsal") or (
                argv[1] == "bridge" and ("--replay" in argv or "--dry-run" in argv))):
            return True
    return False


def block_params() -> list:
    """Every block as a test parameter, marked ``slow`` where checking it runs a command for real."""
    return [pytest.param(where, marks=[pytest.mark.slow] if starts_processes(bash_blocks(ROOT / where[0])[where[1]])
                         else [], id=f"{where[0]}:block{where[1] + 1}") for where in all_blocks()]


@pytest.mark.parametrize("where", block_params())
def test_readme_block(where, tmp_path):
    name, index = where
    block = bash_blocks(ROOT / name)[index]
    done = []
    for argv in commands(block):
        checker = CHECKERS.get(argv[0])
        assert checker, f"{name} block {index + 1}: `{shlex.join(argv)}` is not exercised by tests/test_readme.py"
        done.append(f"{shlex.join(argv)[:60]}: {checker(argv, tmp_path)}")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    if name == "README.md" and any(d.endswith(CI_RUNS_IT) for d in done):
        assert block.strip() in ci, f".ci/run must run README block {index + 1} verbatim: {block.strip()!r}"
        done.append("CI runs the block verbatim")
    print(f"{name} block {index + 1}:", *done, sep="\n  ")


def test_readme_stays_short():
    """The README carries a new user from clone to the paper's table; everything else lives in docs/."""
    lines = len(README.read_text().splitlines())
    assert lines <= 220, f"README.md has {lines} lines (at most 220): move detail into docs/"
