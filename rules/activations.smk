# Activations: one pass of each model over each dataset writes every layer's HDF5 file (full, or pooled or
# projected at extraction for the layers activations.store lists); then pooled vectors per clip and a summary
# table.


def stored_projection(layer):
    """How ``layer`` is projected at extraction ({"components": K, "seed": s}), or None when it is not."""
    how = config["activations"]["store"].get(layer, "full")
    if not (isinstance(how, dict) and "project" in how):
        return None
    return {"components": how["project"], "seed": how.get("seed", 0)}


def stored_settings(model):
    """extraction_settings with the layers stored projected (stored_projected: layer -> components and seed),
    only when there are some, so the settings, and what they rerun, of a config without any stay as they
    were."""
    general = extraction_settings(model)

    def settings(wildcards):
        projected = {layer: stored_projection(layer) for layer in run_layers(model) if stored_projection(layer)}
        return {**general(wildcards), **({"stored_projected": projected} if projected else {})}

    return settings


def stored_form_of(wildcards):
    """How the layer file pool_activations reads was stored: stored_pooling's value (None when full), with
    its projection added for a layer stored projected (so that the others' params, and what they rerun,
    stay as they were)."""
    pooling, projection = stored_pooling(wildcards.layer), stored_projection(wildcards.layer)
    if projection is None:
        return pooling
    return {**(pooling or {"axes": [], "stat": config["activations"]["pool"]["stat"]}), "project": projection}


# One extraction rule per model, since each model has its own list of layer files.
for model_name in sorted({model for model, _ in runs()}):

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
            "../envs/tensorflow.yaml"
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
