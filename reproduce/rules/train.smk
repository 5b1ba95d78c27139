# Stage 2: every method from the starting model (TGDPO also needs its guidance model).


rule train:
    """Train one method (dpo, simpo, tgdpo, ...) of one setting with the shared preference trainer."""
    input:
        unpack(P.guide_input),
        base=P.model_dir("{setting}", "sft"),
        prefs="results/data/{setting}/prefs.jsonl",
    output:
        directory(P.model_dir("{setting}", "{method}")),
    params:
        job=lambda w: job_arg(CFG, "train", setting=w.setting, method=w.method),
        guide=lambda w, input: f"--guide {input.guide}" if "guide" in input.keys() else "",
        checkpoints=lambda w: P.checkpoints(w.setting, w.method),
        launcher=train_launcher(CFG),
    threads: R.threads("train")
    resources:
        **R.resources("train"),  # GPUs: what accelerate launch starts processes on
    conda:
        CONDA_ENV
    log:
        "results/logs/train/{setting}/{method}.log",
    benchmark:
        "results/benchmarks/train/{setting}/{method}.tsv"
    shell:
        "{params.launcher} train --job {params.job} --threads {threads} --base {input.base} --prefs {input.prefs} {params.guide}"
        " --cache results/cache/token_logps/{wildcards.setting} --checkpoints {params.checkpoints}"
        " --out {output} 2> {log}"
