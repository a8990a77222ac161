# Activations: one pass of each model over each dataset writes every layer's HDF5 file (full, or pooled or
# projected at extraction for the layers activations.store lists); then pooled vectors per clip and a summary
# table.

# One extraction rule per model, since each model has its own list of layer files. A profile configures them
# all under the name extract_activations.
for model_name in sorted({model for model, _ in runs()}):
    inherit_profile_settings("extract_activations", f"extract_activations_{model_name}")

    rule:
        name:
            f"extract_activations_{model_name}"
        input:
            manifest="results/datasets/{dataset}/manifest.csv",
            audio=clip_audio,
            weights=weights_input(model_name),
        output:
            [
                f"results/activations/{model_name}/{{dataset}}/{layer}.h5"
                for layer in run_layers(model_name)
            ],
        params:
            model=model_name,
            weights=weights_source(model_name),
            root=dataset_root_of,
            settings=stored_settings(model_name),
        log:
            f"results/logs/extract_activations/{model_name}/{{dataset}}.log",
        benchmark:
            f"results/benchmarks/extract_activations/{model_name}/{{dataset}}.tsv"
        conda:
            model_env_file(model_name)
        threads: 2
        resources:
            mem_mb=6000,
            runtime=120,
        script:
            "../workflow/scripts/extract_activations.py"


rule pool_activations:
    input:
        "results/activations/{model}/{dataset}/{layer}.h5",
    output:
        "results/activations/{model}/{dataset}/pooled/{layer}.h5",
    params:
        pool=config["activations"]["pool"],
        model=model_config_of,
        clip_seconds=dataset_clip_seconds,
        stored_pooling=stored_form_of,
    log:
        "results/logs/pool_activations/{model}/{dataset}/{layer}.log",
    benchmark:
        "results/benchmarks/pool_activations/{model}/{dataset}/{layer}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    script:
        "../workflow/scripts/pool_activations.py"


rule summarise_activations:
    input:
        layer_files_of,
    output:
        report(
            "results/activations/{model}/{dataset}/summary.csv",
            caption="../workflow/report/activation_summary.rst",
            category="Foundation: datasets and activations",
            subcategory="activations of {model} on {dataset}",
            labels={"output": "summary per layer"},
        ),
    params:
        layers=layers_of,
    log:
        "results/logs/summarise_activations/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/summarise_activations/{model}/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=2000,
        runtime=20,
    script:
        "../workflow/scripts/summarise_activations.py"
