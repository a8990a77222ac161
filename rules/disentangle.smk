# Study 1, part 2: an invertible flow that puts each factor on its own dimension, and Figure 1.


rule train_flow:
    input:
        projection=flow_layer_file("projection"),
        split="results/latent/{model}/{dataset}/split.csv",
    output:
        checkpoint="results/latent/{model}/{dataset}/flow/flow.pt",
        curve=report(
            "results/latent/{model}/{dataset}/flow/curve.csv",
            caption="../workflow/report/flow_curve_table.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "flow: training curve (table)"},
        ),
        curve_figure=report(
            "results/latent/{model}/{dataset}/flow/curve.png",
            caption="../workflow/report/flow_curve.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "flow: training curve"},
        ),
        latents="results/latent/{model}/{dataset}/flow/latents.h5",
        invertibility="results/latent/{model}/{dataset}/flow/invertibility.json",
    params:
        flow=latent_setting("flow"),
        factors=latent_setting("factors"),
        layer=flow_layer_of,
    log:
        "results/logs/train_flow/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/train_flow/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    # The flow's matrices (512 x 64 per step) are too small for a second thread: PyTorch's thread pool made a
    # step 10x slower beside other jobs (README, measured figures); one thread leaves a core to another job.
    threads: 1
    resources:
        mem_mb=3000,
        runtime=60,
    script:
        "../workflow/scripts/train_flow.py"


rule figure1:
    input:
        latents="results/latent/{model}/{dataset}/flow/latents.h5",
        split="results/latent/{model}/{dataset}/split.csv",
    output:
        figure=report(
            "results/latent/{model}/{dataset}/figure1.png",
            caption="../workflow/report/figure1.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "figure 1"},
        ),
        check=report(
            "results/latent/{model}/{dataset}/manipulation_check.csv",
            caption="../workflow/report/manipulation_check.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "figure 1: manipulation check"},
        ),
    params:
        factors=latent_setting("factors"),
        decode=latent_setting("decode"),
    log:
        "results/logs/figure1/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/figure1/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/figure1.py"
