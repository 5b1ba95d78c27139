# Stage 3: answers of every model (and the reference/baseline) to every benchmark.


rule reference_answers:
    """The benchmark's reference (AlpacaEval) or baseline (Arena-Hard, MT-Bench) answers."""
    output:
        "results/answers/{benchmark}/_reference.jsonl",
    params:
        job=lambda w: job_arg(CFG, "reference", benchmark=w.benchmark),
    conda:
        "../../environment.yml"
    log:
        "results/logs/reference/{benchmark}.log",
    shell:
        "reproduce reference --job {params.job} --threads {threads} --out {output} 2> {log}"


rule generate:
    """One model answers one benchmark (resumable; decoding settings from evals/benchmarks/)."""
    input:
        model=lambda w: P.model_dir(w.setting, w.model),
    output:
        P.answers("{benchmark}", "{setting}", "{model}"),
    params:
        job=lambda w: job_arg(CFG, "generate", setting=w.setting, method=w.model, benchmark=w.benchmark),
    threads: workflow.cores
    resources:
        mem_mb=8000,
        runtime=4 * 60,
        gpus=1,
    conda:
        "../../environment.yml"
    log:
        "results/logs/generate/{benchmark}/{setting}/{model}.log",
    shell:
        "reproduce generate --job {params.job} --threads {threads} --model {input.model} --out {output} 2> {log}"
