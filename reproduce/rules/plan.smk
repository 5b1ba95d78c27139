# Before anything runs: `snakemake --cores 1 plan --config preset=paper` writes the bill (reproduce/plan/).


rule plan:
    """Jobs, GPU-hours, memory, disk, judge requests, tokens and dollars of reproduce_table1, and what is cached."""
    output:
        md="results/plan.md",
        json="results/plan.json",
    params:
        config=config_arg(config),
    localrule: True
    conda:
        CONDA_ENV
    log:
        "results/logs/plan.log",
    shell:
        "reproduce plan --config-json {params.config} --out-dir results > {log} 2>&1 && cat {log}"
