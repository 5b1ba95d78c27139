"""One bridge run as the ``reproduce bridge`` command and the Snakemake ``bridge`` rule run it: resolve the
benchmark, judge and manifest, bridge, bridge the user's Table 1 when it exists, write the report."""

from __future__ import annotations

from pathlib import Path

from reproduce.bridge.archives import MANIFEST_FOR, load_manifest
from reproduce.config import ROOT, ConfigError, _load_named, config_from_cli, refuse_retired
from reproduce.paths import ResultPaths


def bridge_benchmarks(cfg: dict) -> list[str]:
    """The preset's benchmarks the bridge has archives for: official (not tiny-task) AlpacaEval 2 and Arena-Hard."""
    return [b for b, bc in cfg["benchmarks"].items()
            if bc["protocol"] in MANIFEST_FOR and not bc["questions"].get("task")]


def bridge_reports(cfg: dict) -> list[str]:
    """The ``bridge`` target's reports: one per bridgeable benchmark, for ``bridge_judge`` (default the table
    judge). A preset without an official benchmark (the tiny ones) is a ``ConfigError``."""
    judge = cfg.get("bridge_judge", cfg["table_judge"])
    benches = bridge_benchmarks(cfg)
    if not benches:
        raise ConfigError(f"bridge: preset '{cfg['preset']}' has no official AlpacaEval 2 or Arena-Hard benchmark (the "
                          "archives hold answers to the real questions); run it with --config preset=paper")
    return [f"{ResultPaths().bridge_dir(judge, b)}/bridge.md" for b in benches]


def _benchmark(benchmark: str, cfg: dict) -> dict:
    """The benchmark config: the preset's (with its overrides) when it has it, else evals/benchmarks/<name>.yaml."""
    bench = cfg["benchmarks"].get(benchmark) or _load_named("benchmark", ROOT / "evals" / "benchmarks", benchmark,
                                                            "benchmark", "--benchmark")
    if bench["protocol"] == "mt_bench":
        raise ConfigError(f"--benchmark {benchmark}: no MT-Bench bridge - FastChat's published gpt-4 judgments are "
                          "hosted on a Hugging Face Space, not in a pinned repository, so no archive of them is listed "
                          "(evals/archives/ has alpaca_eval and arena_hard_v0.1)")
    if bench["protocol"] not in MANIFEST_FOR or bench["questions"].get("task"):
        raise ConfigError(f"--benchmark {benchmark}: the bridge needs an official AlpacaEval 2 or Arena-Hard benchmark "
                          f"(archives exist for {', '.join(MANIFEST_FOR)}), not protocol '{bench['protocol']}'"
                          + (" on a tiny task" if bench["questions"].get("task") else ""))
    return bench


def _judge(name: str, cfg: dict, dry_run: bool):
    from reproduce.bridge.rejudge import check_judge
    from reproduce.judges.kinds import make_judge

    judge_cfg = cfg["judges"].get(name) or _load_named("judge", ROOT / "evals" / "judges", name, "judge", "--judge")
    refuse_retired(judge_cfg, "--judge")  # the retired judge is what the bridge maps onto, never the current one
    check_judge(name, judge_cfg)
    if (dry_run or judge_cfg.get("archived_verdicts")) and judge_cfg["kind"] == "openai":
        # a plan needs no key, nor does replaying the judge's archived verdicts (a request would still ask for it)
        from reproduce.judges.openai_judge import OpenAIJudge

        return OpenAIJudge(name, judge_cfg, require_key=False)
    return make_judge(name, judge_cfg)


def _default_table(results: Path, judge: str) -> Path | None:
    """The judge's own Table 1 csv when the workflow made one."""
    path = Path(ResultPaths(results).tables_dir()) / f"table1_{judge}.csv"
    return path if path.exists() else None


def run_bridge(*, benchmark: str, judge_name: str | None = None, annotator: str | None = None,
               preset: str | None = None, config_json: str | None = None, manifest: str | None = None,
               panel: list[str] | None = None, limit: int | None = None, results: Path = Path("results"),
               out_dir: Path | None = None, table: Path | None = None, dry_run: bool = False, rounds: int = 2000, seed: int = 0,
               judge=None, log=print) -> dict:
    """Run the bridge and write ``bridge.{md,json}``; returns the report. ``judge``: an already built judge
    (tests), else ``judge_name`` is loaded from evals/judges/."""
    from reproduce.bridge.report import write_report

    cfg = config_from_cli(preset, config_json)
    bench = _benchmark(benchmark, cfg)
    if judge is None and judge_name:
        judge = _judge(judge_name, cfg, dry_run)
    archived = (getattr(judge, "config", None) or {}).get("archived_verdicts")
    if archived and bench["protocol"] == "alpaca_eval2" and not annotator:
        manifest = manifest or archived["manifest"]  # the judge's own archived verdicts on that panel
    man = load_manifest(manifest or MANIFEST_FOR[bench["protocol"]])
    if man.benchmark != bench["protocol"]:
        raise ConfigError(f"{man.path}: key 'benchmark' is {man.benchmark}, but --benchmark {benchmark} runs "
                          f"{bench['protocol']}")
    name = judge.name if judge is not None else f"replay-{annotator}"
    rp = ResultPaths(results)
    if judge is not None and not dry_run:  # the judge jobs' ledger and cap hold for the bridge's requests too
        from reproduce.bridge.rejudge import attach_spending

        attach_spending(judge, (cfg.get("judging") or {}).get("max_usd"), rp.spend_ledger())
    out_dir = Path(out_dir) if out_dir else Path(rp.bridge_dir(name, benchmark))
    cache_dir = Path(rp.judge_cache(benchmark, name))
    if bench["protocol"] == "arena_hard":
        from reproduce.bridge.arena import bridge_arena, render_arena

        if judge is None:
            raise ConfigError("--replay: Arena-Hard has no archived per-game verdicts of other judges; use --judge")
        rep = bridge_arena(man, bench, judge=judge, cache_dir=cache_dir, panel=panel, limit=limit, dry_run=dry_run,
                           log=log)
        if rep.get("dry_run"):
            return rep
        table = table or _default_table(results, name)
        if table is not None and rep["slope"] is not None:
            from reproduce.bridge.arena import table_cells

            rep["table1"] = table_cells(table, name, rep["_map"])
        write_report(rep, out_dir, render_arena(rep), log=log)
        return rep
    from reproduce.bridge.alpaca import bridge_alpaca
    from reproduce.bridge.report import render_alpaca

    replay_as = None
    if archived and not annotator and any(archived["annotator"] in files for files in man.models.values()):
        replay_as, annotator = judge.name, archived["annotator"]
    rep = bridge_alpaca(man, bench, panel=panel, annotator=annotator, judge=None if replay_as else judge,
                        cache_dir=cache_dir, dry_run=dry_run, limit=limit, rounds=rounds, seed=seed,
                        replay_as=replay_as, log=log)
    if rep.get("dry_run"):
        return rep
    if judge is not None:
        table = table or _default_table(results, name)
        if table is not None:
            from reproduce.bridge.equivalents import alpaca_cells
            from reproduce.report.table1 import benchmark_for

            key = benchmark_for(cfg, "alpaca_eval2") or benchmark
            rep["table1"] = alpaca_cells(table, Path(rp.judge_dir(key, name)), name, rep["_methods"],
                                         rep["_default"])
    write_report(rep, out_dir, render_alpaca(rep), log=log)
    return rep
