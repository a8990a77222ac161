# Model weights: downloaded once into resources/, unless the config points at a local file.


rule download_yamnet:
    output:
        "resources/models/{model}/yamnet.tflite",
    wildcard_constraints:
        model=one_of(names_of_kind("models", "yamnet")),
    params:
        url=model_setting("url"),
        sha256=model_setting("sha256"),
        config_key=weights_key,
    log:
        "results/logs/download_yamnet/{model}.log",
    benchmark:
        "results/benchmarks/download_yamnet/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=500,
        runtime=20,
    script:
        "../workflow/scripts/download.py"


rule download_yamnet_class_map:
    output:
        "resources/models/{model}/yamnet_class_map.csv",
    wildcard_constraints:
        model=one_of(names_of_kind("models", "yamnet")),
    params:
        url=model_setting("class_map_url"),
        sha256=model_setting("class_map_sha256"),
        config_key=class_map_key,
    log:
        "results/logs/download_yamnet_class_map/{model}.log",
    benchmark:
        "results/benchmarks/download_yamnet_class_map/{model}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    script:
        "../workflow/scripts/download.py"
