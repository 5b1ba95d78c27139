# Seeds: every Table-1 method trained, answered, judged and scored once per training seed of the preset's
# `seeds` list (the first seed is the plain model, `dpo`; seed 43 is `dpo-s43`); Table 1 as the mean and
# spread over seeds, and the paired method comparisons over seeds and prompts, in results/tables/seeds/.
# The training, generation, judging and scoring rules are the ordinary ones: a seed variant is a model name.


rule table1_seeds:
    """Table 1 over the training seeds (mean, spread, seeds behind each cell; per-seed rows in the csv)."""
    input:
        lambda w: P.seeds_scores(w.judge),
    output:
        csv="results/tables/seeds/table1_{judge}.csv",
        md="results/tables/seeds/table1_{judge}.md",
    params:
        config=config_arg(config),
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/table1/seeds_{judge}.log",
    shell:
        "reproduce table --all-seeds --config-json {params.config} --judge {wildcards.judge}"
        " --out-dir results/tables/seeds 2> {log}"


rule method_differences_seeds:
    """Paired method comparisons with every training seed (bootstrap over seeds and prompts together)."""
    input:
        P.differences_inputs(all_seeds=True),
    output:
        P.method_differences(all_seeds=True),
    params:
        config=config_arg(config),
        methods=" ".join(CFG["methods"]),
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/report/method_differences_seeds.log",
    shell:
        "reproduce differences --all-seeds --config-json {params.config} --methods {params.methods}"
        " --out-dir results/tables/seeds 2> {log}"


rule reproduce_seeds:
    """Target: the preset's training seeds (`seeds: [...]`, e.g. --config 'seeds=[42,43,44]'): Table 1 as
    mean and spread over seeds for the table judge, and the paired comparisons over seeds and prompts."""
    input:
        P.seeds_table1(CFG["table_judge"]),
        P.method_differences(all_seeds=True) if "method_differences" in P.figure_names() else [],
