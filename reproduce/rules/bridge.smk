# The bridge: the current judge's numbers beside what the paper's retired judges would have said
# (reproduce/bridge/). `snakemake --cores all bridge --config preset=paper` re-judges the archived panel
# (evals/archives/) with the preset's table judge (or `--config bridge_judge=NAME`), compares it with the
# retired judge's archived verdicts, calibrates, and bridges that judge's Table 1.
from reproduce.bridge.run import bridge_reports


rule bridge:
    """Bridge reports for the preset's bridge judge (default its table judge) on every bridgeable benchmark."""
    input:
        lambda w: bridge_reports(CFG),


rule bridge_report:
    """One bridge report: the archived panel re-judged, compared, calibrated; the judge's Table 1 bridged."""
    input:
        table="results/tables/table1_{bjudge}.csv",
    output:
        md="results/bridge/{bjudge}/{bbench}/bridge.md",
        json="results/bridge/{bjudge}/{bbench}/bridge.json",
    wildcard_constraints:
        bjudge=wildcard_pattern(CFG["judges"]),
        bbench=wildcard_pattern(CFG["benchmarks"]),
    params:
        config=config_arg(config),
        cache="results/judgments/{bbench}/{bjudge}/_cache",
    localrule: R.local("judge")
    threads: R.threads("judge")
    resources:
        **R.resources("judge"),
        judge_api=lambda w: R.judge_api(w.bjudge),
    conda:
        CONDA_ENV
    log:
        "results/logs/bridge/{bjudge}/{bbench}.log",
    shell:
        "reproduce bridge --config-json {params.config} --judge {wildcards.bjudge} --benchmark {wildcards.bbench}"
        " --table {input.table} --out-dir results/bridge/{wildcards.bjudge}/{wildcards.bbench} 2> {log}"
