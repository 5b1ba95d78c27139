# Stage 5: Table 1 beside the paper's numbers (one per judge), the judge-agreement report, the figures,
# and results/report.md embedding all of them with provenance.


rule table1:
    """Table 1 (csv, md, tex) for one judge."""
    input:
        lambda w: P.all_scores(w.judge),
    output:
        csv="results/tables/table1_{judge}.csv",
        md="results/tables/table1_{judge}.md",
        tex="results/tables/table1_{judge}.tex",
    params:
        config=config_arg(config),
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/table1/{judge}.log",
    shell:
        "reproduce table --config-json {params.config} --judge {wildcards.judge} --out-dir results/tables 2> {log}"


rule table1_main:
    """Table 1 under its plain name for the preset's table judge."""
    input:
        csv=f"results/tables/table1_{CFG['table_judge']}.csv",
        md=f"results/tables/table1_{CFG['table_judge']}.md",
        tex=f"results/tables/table1_{CFG['table_judge']}.tex",
    output:
        csv="results/tables/table1.csv",
        md="results/tables/table1.md",
        tex="results/tables/table1.tex",
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/table1/main.log",
    shell:
        "(cp {input.csv} {output.csv} && cp {input.md} {output.md} && cp {input.tex} {output.tex}) 2> {log}"


rule judge_agreement:
    """Re-judging report: every judge against the table judge on the same cached answers."""
    input:
        scores=lambda w: [p for j in CFG["judges"] for p in P.all_scores(j, routed=False)],
        judgments=lambda w: [P.judgments(b, j, s, m) for j in CFG["judges"] for b in CFG["benchmarks"]
                             for s in CFG["settings"] for m in CFG["methods"]],
        # the judge-reliability length bias reads the answers and the baseline's answers
        answers=lambda w: sorted({p for b in CFG["benchmarks"] for s in CFG["settings"]
                                  for p in [P.reference(b, s), *[P.answers(b, s, m) for m in CFG["methods"]]]}),
    output:
        P.judge_agreement(),
    params:
        config=config_arg(config),
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/report/judge_agreement.log",
    shell:
        "reproduce agreement --config-json {params.config} --out-dir results/tables 2> {log}"


rule figure:
    """One figure (PNG + PDF) from the result files it depends on."""
    input:
        # a config that sweeps no alpha stops here with one clear line (only when that figure is requested)
        lambda w: P.figure_inputs(w.name),
    output:
        png="figures/{name}.png",
        pdf="figures/{name}.pdf",
    wildcard_constraints:
        name="scores_by_benchmark|judge_scatter|length_bias|training_curves|token_rewards|alpha_sensitivity|method_differences",
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
        "results/logs/figures/{name}.log",
    shell:
        "reproduce figure --config-json {params.config} --methods {params.methods} --name {wildcards.name}"
        " --out-dir figures 2> {log}"


rule report:
    """results/report.md: every table, the judge agreement and the figures, with provenance."""
    input:
        tables=P.all_tables(),
        agreement=P.judge_agreement() if len(CFG["judges"]) > 1 else [],
        figures=P.figures(P.figure_names()),
        differences=P.method_differences() if "method_differences" in P.figure_names() else [],
    output:
        P.report(),
    params:
        config=config_arg(config),
        methods=" ".join(CFG["methods"]),
        figures=" ".join(P.figure_names()),
        differences="--differences" if "method_differences" in P.figure_names() else "",
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/report/report.log",
    shell:
        "reproduce report --config-json {params.config} --methods {params.methods} --figures {params.figures}"
        " {params.differences} --out {output} 2> {log}"


rule report_html:
    """results/report.html (+ results/report_files/): Table 1, differences, agreement and figures, down to each
    item's answers and verdicts, and TGDPO's token-reward strips; opens from disk with no server."""
    input:
        tables=P.all_tables(),
        agreement=P.judge_agreement() if len(CFG["judges"]) > 1 else [],
        figures=P.figures(P.figure_names()),
        differences=P.method_differences() if "method_differences" in P.figure_names() else [],
        drilldown=P.report_html_inputs(),
    output:
        html=P.report_html(),
        files=directory(P.report_html().removesuffix(".html") + "_files"),
    params:
        config=config_arg(config),
        methods=" ".join(CFG["methods"]),
        figures=" ".join(P.figure_names()),
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/report/report_html.log",
    shell:
        "reproduce report-html --config-json {params.config} --methods {params.methods} --figures {params.figures}"
        " --out {output.html} 2> {log}"


rule alpha_sensitivity:
    """Target: the alpha-sensitivity figure; needs a config that sweeps TGDPO's alpha, e.g.
    --config 'methods=[sft,dpo,simpo,tgdpo,tgdpo_a1,tgdpo_a2]' (recipe tiny-add defines those)."""
    input:
        P.figure("alpha_sensitivity"),


rule method_differences:
    """Paired method comparisons (bootstrap CIs over prompts, p-values, the paper's gaps, verdicts) for every
    benchmark, judge and pair of the preset's 'comparisons', and the prompts/seeds planning from them."""
    input:
        P.differences_inputs(),
    output:
        P.method_differences(),
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
        "results/logs/report/method_differences.log",
    shell:
        "reproduce differences --config-json {params.config} --methods {params.methods} --out-dir results/tables 2> {log}"
