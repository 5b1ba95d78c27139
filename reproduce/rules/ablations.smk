# The paper's other results (docs/ablations.md): alpha sensitivity at mid-run checkpoints, guidance quality,
# training to loss convergence, in the preset's 'ablations' setting. Its models are judged on the ablation
# benchmarks only and never enter Table 1 or method_differences.


rule step_model:
    """One weights-only eval-step save of a trained method as a model of its own (<method>-step<N>), its
    files hard-linked from the save; generate, judge and score treat it like any other model."""
    input:
        P.model_dir("{setting}", "{method}"),  # the run that saved it has finished
    output:
        directory(P.model_dir("{setting}", "{method}-step{step}")),
    wildcard_constraints:
        step="[0-9]+",
    params:
        job=lambda w: job_arg(CFG, "train", setting=w.setting, method=f"{w.method}-step{w.step}"),
        save=lambda w: P.step_save(w.setting, w.method, w.step),
    localrule: True
    conda:
        CONDA_ENV
    log:
        "results/logs/step_model/{setting}/{method}-step{step}.log",
    shell:
        "reproduce step-model --job {params.job} --save {params.save} --out {output} 2> {log}"


rule ablations_table:
    """results/tables/ablations.{md,csv,json} (ours, the paper's, Δ, intervals, paired differences) and one
    figure per ablation."""
    input:
        P.ablation_inputs(),
    output:
        P.ablation_tables(),
        P.ablation_figures(),
    params:
        config=config_arg(config),
    localrule: R.local("report")
    threads: R.threads("report")
    resources:
        **R.resources("report"),
    conda:
        CONDA_ENV
    log:
        "results/logs/report/ablations.log",
    shell:
        "reproduce ablations --config-json {params.config} --out-dir results/tables --figures-dir figures 2> {log}"


rule reproduce_ablations:
    """Target: the paper's ablations beside ours (needs the preset's 'ablations')."""
    input:
        P.ablation_tables(),
        P.ablation_figures(),
