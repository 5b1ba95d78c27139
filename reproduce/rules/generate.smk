# Stage 3: answers of every model (and the reference/baseline) to every benchmark.


rule reference_answers:
    """The benchmark's reference (AlpacaEval) or baseline (Arena-Hard, MT-Bench) answers."""
    output:
        "results/answers/{benchmark}/_reference.jsonl",
    params:
        job=lambda w: job_arg(CFG, "reference", benchmark=w.benchmark),
    localrule: R.local("reference_answers")
    threads: R.threads("reference")
    resources:
        **R.resources("reference"),
    conda:
        CONDA_ENV
    log:
        "results/logs/reference/{benchmark}.log",
    shell:
        "reproduce reference --job {params.job} --threads {threads} --out {output} 2> {log}"


rule generate:
    """One model answers every benchmark of the preset in one job, so it is loaded once (resumable and
    incremental per answer; decoding settings from evals/benchmarks/)."""
    input:
        model=lambda w: P.model_dir(w.setting, w.model),
    output:
        [P.answers(b, "{setting}", "{model}") for b in CFG["benchmarks"]],
    params:
        jobs=lambda w: generate_jobs_arg(CFG, w.setting, w.model),
        launcher=generate_launcher(CFG),
    localrule: R.local("generate")
    threads: R.threads("generate")
    resources:
        **R.resources("generate"),
    conda:
        CONDA_ENV
    log:
        "results/logs/generate/{setting}/{model}.log",
    benchmark:
        "results/benchmarks/generate/{setting}/{model}.tsv"
    shell:
        "{params.launcher} generate --jobs {params.jobs} --threads {threads} --model {input.model} --out {output} 2> {log}"
