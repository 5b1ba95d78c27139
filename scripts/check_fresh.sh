#!/usr/bin/env bash
# What the newest releases do to us: a temporary venv with the newest versions pyproject.toml's ranges allow
# (not the lock), then the judge and scoring smoke tests against the local stand-in server; then the judge
# smoke test again with httpx2 2.16.2 and 2.17.0 (the transport under the openai client, either side of the
# release that broke judging on 2026-12-06). Prints what moved from requirements/cpu.lock and each step's
# result; exits 1 if a step failed. Run it before a release, and weekly where scheduling is possible; it is
# not part of the test command (it downloads the newest releases, so its outcome changes with the day).
# An upstream release that breaks us becomes an upper bound in pyproject.toml, with a comment naming the
# version and the failure, until the code is fixed (docs/install.md).
#   bash scripts/check_fresh.sh      (needs uv and the package index; REPRODUCE_TORCH_FIND_LINKS as in lock.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
export REPRODUCE_BENCHMARK_MIRROR=${REPRODUCE_BENCHMARK_MIRROR:-}
JUDGE_TESTS=(tests/test_openai_judge.py)
SCORE_TESTS=(tests/test_cli.py tests/test_faults.py -k "score or survivable or failed_games_mark")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
venv=$tmp/venv
py=$venv/bin/python
uv venv -q --python 3.11 "$venv" || exit 1
# torch alone stays at the lock's CPU build (PyTorch's CPU index, or a local wheel folder as in lock.sh): its
# newest release on PyPI is the CUDA build, gigabytes of downloads, and the smoke tests do not exercise it
torch=(--extra-index-url https://download.pytorch.org/whl/cpu)
[ -n "${REPRODUCE_TORCH_FIND_LINKS:-}" ] && torch=(--find-links "$REPRODUCE_TORCH_FIND_LINKS")
grep -oE '^torch==[^ ]+' requirements/cpu.lock > "$tmp/overrides.txt"
echo "== newest versions pyproject.toml allows (plus pytest; $(cat "$tmp/overrides.txt") held), $(date -u +%Y-%m-%d)"
# the package's dependencies only: the tests run this checkout's code (pytest's pythonpath is the checkout)
uv pip install -q --python "$py" --index-strategy unsafe-best-match "${torch[@]}" --override "$tmp/overrides.txt" \
  -r pyproject.toml pytest || exit 1
# what moved from the lock: name, locked version -> newest allowed
"$py" - requirements/cpu.lock <<'EOF'
import importlib.metadata as md, re, sys
lock = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", open(sys.argv[1]).read(), re.M))
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
lock = {norm(k): v for k, v in lock.items()}
moved = sorted((norm(d.metadata["Name"]), lock.get(norm(d.metadata["Name"]), "-"), d.version) for d in md.distributions()
               if lock.get(norm(d.metadata["Name"])) != d.version)
print(f"{len(moved)} distributions differ from requirements/cpu.lock:")
for name, old, new in moved:
    print(f"  {name:40s} {old:>14s} -> {new}")
EOF

failed=()
step() {  # step NAME PYTEST-ARGS...: run the tests, print one result line
  local name=$1
  shift
  local versions
  versions=$("$py" -c 'import importlib.metadata as m; print(" ".join(f"{p} {m.version(p)}" for p in ("openai", "httpx2")))')
  if "$py" -m pytest -q -p no:cacheprovider "$@" > "$tmp/$name.log" 2>&1; then
    echo "ok      $name ($versions): $(tail -1 "$tmp/$name.log")"
  else
    echo "FAILED  $name ($versions): $(tail -1 "$tmp/$name.log")"
    grep -E "^(FAILED|ERROR|E  )" "$tmp/$name.log" | head -20 | sed 's/^/        /'
    failed+=("$name")
  fi
}
echo "== smoke tests (stand-in server, no network, no key)"
step judge "${JUDGE_TESTS[@]}"
step scoring "${SCORE_TESTS[@]}"
for v in 2.16.2 2.17.0; do
  uv pip install -q --python "$py" "httpx2==$v" || { echo "FAILED  httpx2 $v: not installable"; failed+=("httpx2-$v"); continue; }
  step "judge-httpx2-$v" "${JUDGE_TESTS[@]}"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "check_fresh: failed: ${failed[*]} - bound the release that broke it in pyproject.toml (docs/install.md)"
  exit 1
fi
echo "check_fresh: all passed"
