# Study 1, part 3: latent transfer. Edit a factor in the flow's space (torch), map the edit back to the
# layer and continue the network from there (TensorFlow), then compare outputs (Figure 2).


rule transfer_edit:
    input:
        checkpoint="results/latent/{model}/{dataset}/flow/flow.pt",
        latents="results/latent/{model}/{dataset}/flow/latents.h5",
        projection=flow_layer_file("projection"),
        activations=flow_layer_file("activations"),
        split="results/latent/{model}/{dataset}/split.csv",
    output:
        "results/latent/{model}/{dataset}/transfer/edited.h5",
    params:
        transfer=latent_keys("transfer", "typical_quantile", "max_clips", "clips", "seed"),
        factors=latent_setting("factors"),
    log:
        "results/logs/transfer_edit/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/transfer_edit/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        "../workflow/scripts/transfer_edit.py"


rule transfer_continue:
    input:
        edited="results/latent/{model}/{dataset}/transfer/edited.h5",
        weights=model_weights_of,
    output:
        "results/latent/{model}/{dataset}/transfer/outputs.h5",
    params:
        model=model_config_of,
        weights=weights_source_of,
    log:
        "results/logs/transfer_continue/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/transfer_continue/{model}/{dataset}.tsv"
    conda:
        model_env
    threads: 2
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        "../workflow/scripts/transfer_continue.py"


rule transfer_statistics:
    input:
        "results/latent/{model}/{dataset}/transfer/outputs.h5",
    output:
        distances=report(
            "results/latent/{model}/{dataset}/transfer/distances.csv",
            caption="../workflow/report/transfer_distances.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "transfer: distances"},
        ),
        statistics=report(
            "results/latent/{model}/{dataset}/transfer/statistics.csv",
            caption="../workflow/report/transfer_statistics.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "transfer: statistics"},
        ),
        figure=report(
            "results/latent/{model}/{dataset}/transfer/figure2.png",
            caption="../workflow/report/figure2.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "figure 2"},
        ),
    params:
        transfer=latent_keys("transfer", "distance_space"),
    log:
        "results/logs/transfer_statistics/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/transfer_statistics/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/transfer_statistics.py"
