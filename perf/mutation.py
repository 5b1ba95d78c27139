"""Mutation testing of the modules that compute numbers: do the tests notice a planted bug?

For each module, small bugs ("mutants") are planted one at a time, each in a scratch copy of the working
tree (never in the tree itself, which other people may be editing), and the module's own tests are run
against it: a mutant is killed when the tests fail (or time out), and survives when they pass. Prints the
mutation score (killed / total) per module and every survivor with its line, so each one can be killed by
a new test or listed as equivalent (a change that cannot alter any result) with a one-line reason.

The mutator is our own, on Python's ``ast`` (why not mutmut: mutmut 3 needs its settings in our
pyproject.toml, rewrites the package into a trampolined ``mutants/`` tree and runs each mutant in a fork
of a warm pytest, which mixes badly with torch's thread pools and with the tests that start
``python -m reproduce.cli`` subprocesses; planting the change in a real copy of the file keeps every kind
of test valid). Operators, each applied at one place per mutant:

- arithmetic ``+ - * / // % **`` swapped (``+``<->``-``, ``*``<->``/``, ``//``->``/``, ``%``->``*``,
  ``**``->``*``), also in augmented assignments; unary ``-x``->``x`` and ``not x``->``x``
- comparisons ``<``<->``<=``, ``>``<->``>=``, ``==``<->``!=``, ``is``<->``is not``, ``in``<->``not in``
- ``and``<->``or``; ``True``<->``False``; a number ``n``->``n + 1``; a string ``s``->``"XX" + s + "XX"``
  (not in docstrings, f-strings, ``raise`` statements or log/print calls: messages are not results)

Only the named functions of a module are mutated where it also holds non-scoring code (e.g. request
building of the benchmark protocols). Not in CI (minutes per module); run it by hand::

    python perf/mutation.py --modules losses --max-mutants 20
    python perf/mutation.py                     # every module, every mutant (long)
    python perf/mutation.py --list              # the mutants only, no test runs

``--max-mutants N`` keeps an evenly spread, seeded sample of N mutants per module (its score is then an
estimate; the total is printed beside it).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# module key -> (file, functions to mutate or None for the whole module, tests that check it)
MODULES = {
    "losses": ("reproduce/train/losses.py", None, ["tests/test_losses.py"]),
    "alpaca_eval2": ("reproduce/benchmarks/alpaca_eval2.py",
                     ["is_switched", "preference_from_logprobs", "parse", "score"], ["tests/test_alpaca_eval2.py"]),
    "alpaca_lc": ("reproduce/benchmarks/alpaca_lc.py", ["length_controlled", "leaderboard_rank"],
                  ["tests/test_alpaca_eval2.py"]),
    "arena_hard": ("reproduce/benchmarks/arena_hard.py",
                   ["parse_label", "parse", "_battles", "_mle_elo", "_win_rate", "_percentile", "_bootstrap_elo", "score"],
                   ["tests/test_arena_hard.py"]),
    "mt_bench": ("reproduce/benchmarks/mt_bench.py", ["parse_rating", "parse_pair", "parse", "_mean", "score"],
                 ["tests/test_mt_bench.py"]),
    "cache": ("reproduce/judges/cache.py", None, ["tests/test_judgment_cache.py"]),
    "table1": ("reproduce/report/table1.py",
               ["collect_rows", "_score_cell", "_round", "_num", "cell_text", "incomplete_cells"], ["tests/test_report.py"]),
}

_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
               ast.Mod: ast.Mult, ast.Pow: ast.Mult}
_CMP_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
             ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_MESSAGE_CALLS = {"log", "_log", "print", "debug", "info", "warning", "error", "exception"}


@dataclass
class Mutant:
    """One planted change: the source segment [start, end) (byte offsets) replaced by ``new``."""

    module: str
    function: str
    line: int
    col: int
    start: int
    end: int
    old: str
    new: str

    def describe(self) -> str:
        old = " ".join(self.old.split())
        return f"{self.function}:{self.line}:{self.col}: {old[:90]}  ->  {' '.join(self.new.split())[:90]}"


def _skipped_nodes(tree: ast.AST) -> set[int]:
    """ids of nodes under which nothing is mutated: docstrings, annotations, f-strings, messages."""
    skip: set[int] = set()

    def under(node):
        skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            under(body[0])
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.returns:
                under(node.returns)
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                if a.annotation:
                    under(a.annotation)
        elif isinstance(node, ast.AnnAssign):
            under(node.annotation)
        elif isinstance(node, (ast.JoinedStr, ast.Raise)):
            under(node)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name in _MESSAGE_CALLS:
                under(node)
    return skip


def _regions(tree: ast.Module, functions: list[str] | None) -> list[tuple[str, ast.AST]]:
    """(name, node) of the code to mutate: the named top-level functions / methods, or the whole module."""
    if functions is None:
        return [("<module>", tree)]
    found = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in functions:
            found.append((node.name, node))
        elif isinstance(node, ast.ClassDef):
            found += [(f"{node.name}.{m.name}", m) for m in node.body
                      if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef)) and m.name in functions]
    missing = set(functions) - {n.split(".")[-1] for n, _ in found}
    if missing:
        raise SystemExit(f"mutation: functions {sorted(missing)} not found (the module changed? update MODULES)")
    return found


def _enclosing(tree: ast.Module):
    """``line -> name`` of the innermost function (``Class.method``) holding that line, else ``<module>``."""
    spans = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    spans.append((first, child.end_lineno, name))
                visit(child, f"{name}.")

    visit(tree, "")

    def name_at(line: int) -> str:
        inside = [(end - start, name) for start, end, name in spans if start <= line <= end]
        return min(inside)[1] if inside else "<module>"
    return name_at


def _variants(node: ast.AST) -> list[ast.AST]:
    """Mutated copies of ``node`` (each differing at this node only)."""
    out = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAP:
        m = copy.deepcopy(node)
        m.op = _BINOP_SWAP[type(node.op)]()
        out.append(m)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        out.append(copy.deepcopy(node.operand))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in _CMP_SWAP:
                m = copy.deepcopy(node)
                m.ops[i] = _CMP_SWAP[type(op)]()
                out.append(m)
    elif isinstance(node, ast.BoolOp):
        m = copy.deepcopy(node)
        m.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(m)
    elif isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool):
            out.append(ast.Constant(not v))
        elif isinstance(v, (int, float)):
            out.append(ast.Constant(v + 1))
        elif isinstance(v, str):
            out.append(ast.Constant(f"XX{v}XX"))
    return out


def find_mutants(key: str, path: Path, functions: list[str] | None) -> list[Mutant]:
    """Every mutant of ``path`` (restricted to ``functions``), in source order."""
    source = path.read_bytes()
    tree = ast.parse(source)
    skip = _skipped_nodes(tree)
    line_starts = [0]
    for line in source.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    name_at = _enclosing(tree)
    mutants = []
    for _, region in _regions(tree, functions):
        for node in ast.walk(region):
            if id(node) in skip or not hasattr(node, "end_col_offset"):
                continue
            start = line_starts[node.lineno - 1] + node.col_offset
            end = line_starts[node.end_lineno - 1] + node.end_col_offset
            old = source[start:end].decode()
            for variant in _variants(node):
                new = ast.unparse(variant)
                if isinstance(node, ast.expr) and not isinstance(node, (ast.Constant, ast.Name)):
                    new = f"({new})"  # keep the precedence the original had where it stood
                elif isinstance(node, ast.Constant) and new.startswith("-"):
                    new = f"({new})"
                mutants.append(Mutant(key, name_at(node.lineno), node.lineno, node.col_offset + 1, start, end, old, new))
    mutants.sort(key=lambda m: (m.start, m.end, m.new))
    return mutants


def scratch_copy(dest: Path) -> Path:
    """Copy the working tree (tracked and untracked, not ignored files) to ``dest/<name>`` (official files come
    through $REPRODUCE_BENCHMARK_MIRROR, which the tests inherit)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    tree = dest / ROOT.name
    for rel in files:
        src = ROOT / rel
        if rel and src.is_file():
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
    return tree


def run_tests(tree: Path, tests: list[str], timeout: float | None) -> tuple[str, float, str]:
    """Run ``tests`` in the scratch tree: ('pass' | 'fail' | 'timeout', seconds, last output)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-B", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=lambda: os.nice(5))
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, ""
    tail = (proc.stdout + proc.stderr)[-1500:]
    if proc.returncode == 5:
        raise SystemExit(f"mutation: no tests collected from {tests}:\n{tail}")
    return ("pass" if proc.returncode == 0 else "fail"), time.monotonic() - t0, tail


def mutate_module(key: str, tree: Path, max_mutants: int | None, seed: int, log=print) -> dict:
    """Plant every (or a sample of) mutant of one module in ``tree``, run its tests, restore the file."""
    rel, functions, tests = MODULES[key]
    path = tree / rel
    original = path.read_bytes()
    mutants = find_mutants(key, path, functions)
    total = len(mutants)
    if max_mutants is not None and total > max_mutants:
        mutants = sorted(random.Random(seed).sample(mutants, max_mutants), key=lambda m: (m.start, m.new))
    status, base_s, tail = run_tests(tree, tests, None)
    if status != "pass":  # e.g. someone's edit in progress: nothing to learn from mutants here
        log(f"{key}: SKIPPED, its tests fail before any mutation ({' '.join(tests)}):\n{tail}")
        return {"module": key, "file": rel, "mutants_total": total, "run": 0, "killed": 0, "timeouts": 0,
                "score": None, "tests": tests, "survivors": [], "error": "tests fail unmutated"}
    timeout = max(60.0, 3 * base_s)
    log(f"{key}: {rel}, {total} mutants, running {len(mutants)}; tests {' '.join(tests)} ({base_s:.0f}s unmutated)")
    killed, timeouts, survivors = 0, 0, []
    try:
        for i, m in enumerate(mutants, 1):
            path.write_bytes(original[: m.start] + m.new.encode() + original[m.end:])
            result, secs, _ = run_tests(tree, tests, timeout)
            killed += result != "pass"
            timeouts += result == "timeout"
            if result == "pass":
                survivors.append(m)
            log(f"  [{i}/{len(mutants)}] {'SURVIVED' if result == 'pass' else result:8s} {secs:5.1f}s  {m.describe()}")
    finally:
        path.write_bytes(original)
    return {"module": key, "file": rel, "mutants_total": total, "run": len(mutants), "killed": killed,
            "timeouts": timeouts, "score": killed / len(mutants) if mutants else None, "tests": tests,
            "survivors": [{"line": m.line, "col": m.col, "function": m.function, "old": m.old, "new": m.new,
                           "text": m.describe()} for m in survivors]}


def main(argv: list[str] | None = None) -> int:
    """Parse options, make the scratch copy, mutate each module, print the scores and survivors."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated, of {', '.join(MODULES)}")
    ap.add_argument("--max-mutants", type=int, default=None, help="seeded sample of at most N mutants per module")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list", action="store_true", help="print the mutants and exit (no tests run)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--keep-scratch", action="store_true", help="leave the scratch copy (its path is printed)")
    args = ap.parse_args(argv)
    keys = [k.strip() for k in args.modules.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODULES]
    if unknown:
        ap.error(f"--modules: unknown {unknown} (known: {', '.join(MODULES)})")
    if args.list:
        for k in keys:
            rel, functions, _ = MODULES[k]
            ms = find_mutants(k, ROOT / rel, functions)
            print(f"{k}: {rel}: {len(ms)} mutants")
            for m in ms:
                print(f"  {m.describe()}")
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="mutation-"))
    results = []
    t0 = time.monotonic()
    try:
        tree = scratch_copy(scratch)
        print(f"scratch copy: {tree}", flush=True)
        for k in keys:
            results.append(mutate_module(k, tree, args.max_mutants, args.seed, log=lambda s: print(s, flush=True)))
    finally:
        if not args.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\nmutation score per module ({time.monotonic() - t0:.0f}s)")
    print("| module | killed / run | score | mutants in module | timeouts |")
    print("|---|---|---|---|---|")
    for r in results:
        score = f"{100 * r['score']:.0f}%" if r["score"] is not None else r.get("error", "—")
        print(f"| {r['module']} | {r['killed']} / {r['run']} | {score} | {r['mutants_total']} | {r['timeouts']} |")
    for r in results:
        if r["survivors"]:
            print(f"\nsurvivors in {r['file']} ({len(r['survivors'])}):")
            for s in r["survivors"]:
                print(f"  {s['text']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
