# Stage 1: the starting model and the preference pairs of each setting.

rule base_model:
    """Starting model: tiny -> tokenizer + SFT trained here; paper -> the instruct model at a pinned revision."""
    output:
        directory(P.model_dir("{setting}", "sft")),
    params:
        job=lambda w: job_arg(CFG, "base", setting=w.setting),
    localrule: R.local("base_model")
    threads: R.threads("base")
    resources:
        **R.resources("base"),
    conda:
        CONDA_ENV
    log:
        "results/logs/base/{setting}.log",
    benchmark:
        "results/benchmarks/base/{setting}.tsv"
    shell:
        "reproduce base --job {params.job} --threads {threads} --out {output} 2> {log}"


rule preference_pairs:
    """Preference pairs: on-policy samples scored by the reward (tiny), or the authors' released pairs."""
    input:
        base=P.model_dir("{setting}", "sft"),
    output:
        "results/data/{setting}/prefs.jsonl",
    params:
        job=lambda w: job_arg(CFG, "prefs", setting=w.setting),
    localrule: R.local("preference_pairs")
    threads: R.threads("prefs")
    resources:
        **R.resources("prefs"),
    conda:
        CONDA_ENV
    log:
        "results/logs/prefs/{setting}.log",
    benchmark:
        "results/benchmarks/prefs/{setting}.tsv"
    shell:
        "reproduce prefs --job {params.job} --threads {threads} --base {input.base} --out {output} 2> {log}"
