# Stage 4: judging (through the content-addressed cache) and scoring per benchmark protocol.


rule judge:
    """One judge judges one model's answers on one benchmark."""
    input:
        answers=P.answers("{benchmark}", "{setting}", "{model}"),
        reference=lambda w: P.reference(w.benchmark, w.setting),
    output:
        P.judgments("{benchmark}", "{judge}", "{setting}", "{model}"),
    params:
        job=lambda w: job_arg(CFG, "judge", setting=w.setting, method=w.model, benchmark=w.benchmark, judge=w.judge),
        # the judge's cache folder: read whole for hits; this job appends only to _cache/{setting}/{model}.jsonl
        cache="results/judgments/{benchmark}/{judge}/_cache",
    localrule: R.local("judge")
    threads: R.threads("judge")
    resources:
        **R.resources("judge"),
        # slots of the profile's judge_api cap: this job's concurrent API requests
        judge_api=lambda w: R.judge_api(w.judge),
    conda:
        CONDA_ENV
    log:
        "results/logs/judge/{benchmark}/{judge}/{setting}/{model}.log",
    benchmark:
        "results/benchmarks/judge/{benchmark}/{judge}/{setting}/{model}.tsv"
    shell:
        "reproduce judge --job {params.job} --answers {input.answers} --reference {input.reference}"
        " --cache {params.cache} --spend-ledger results/judgments/_spend.jsonl --out {output} 2> {log}"


rule score:
    """Score one model's judgments with the benchmark's official protocol."""
    input:
        P.judgments("{benchmark}", "{judge}", "{setting}", "{model}"),
    output:
        P.score("{benchmark}", "{judge}", "{setting}", "{model}"),
    params:
        job=lambda w: job_arg(CFG, "score", setting=w.setting, method=w.model, benchmark=w.benchmark, judge=w.judge),
    localrule: R.local("score")
    threads: R.threads("score")
    resources:
        **R.resources("score"),
    conda:
        CONDA_ENV
    log:
        "results/logs/score/{benchmark}/{judge}/{setting}/{model}.log",
    shell:
        "reproduce score --job {params.job} --benchmark {wildcards.benchmark} --judgments {input} --out {output} 2> {log}"
