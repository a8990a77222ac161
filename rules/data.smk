# Datasets: generators write audio; ingest checks every file and writes the manifest.


rule generate_maas_synth:
    output:
        directory("results/datasets/{dataset}/audio"),
    wildcard_constraints:
        dataset=one_of(names_of_kind("datasets", "maas-synth")),
    params:
        settings=dataset_config,
    log:
        "results/logs/generate_maas_synth/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_maas_synth/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow/scripts/generate_maas_synth.py"


rule generate_commands_synth:
    output:
        directory("results/datasets/{dataset}/audio"),
    wildcard_constraints:
        dataset=one_of(names_of_kind("datasets", "commands-synth")),
    params:
        settings=dataset_config,
    log:
        "results/logs/generate_commands_synth/{dataset}.log",
    benchmark:
        "results/benchmarks/generate_commands_synth/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow/scripts/generate_commands_synth.py"


rule build_manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=report(
            "results/datasets/{dataset}/manifest.csv",
            caption="../workflow/report/dataset_manifest.rst",
            category="Foundation: datasets and activations",
            subcategory="dataset {dataset}",
            labels={"output": "clip manifest"},
        ),
        rejected=report(
            "results/datasets/{dataset}/rejected.csv",
            caption="../workflow/report/dataset_rejected.rst",
            category="Foundation: datasets and activations",
            subcategory="dataset {dataset}",
            labels={"output": "rejected files"},
        ),
    params:
        settings=dataset_config,
        root=dataset_root_of,
    log:
        "results/logs/build_manifest/{dataset}.log",
    benchmark:
        "results/benchmarks/build_manifest/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow/scripts/build_manifest.py"


rule download_esc50:
    output:
        directory("resources/datasets/{dataset}/esc50"),
    wildcard_constraints:
        dataset=one_of(names_of_kind("datasets", "esc50")),
    params:
        settings=dataset_config,
        archive=esc50_archive,
        config_key=dataset_key,
    log:
        "results/logs/download_esc50/{dataset}.log",
    benchmark:
        "results/benchmarks/download_esc50/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=1000,
        runtime=60,
    script:
        "../workflow/scripts/download_esc50.py"


rule ingest_target:
    input:
        responses=target_responses_file,
        manifest=target_stimuli_manifest,
    output:
        "results/datasets/{dataset}/responses.h5",
    wildcard_constraints:
        dataset=one_of(names_of_kind("datasets", "target")),
    params:
        settings=target_settings,
    log:
        "results/logs/ingest_target/{dataset}.log",
    benchmark:
        "results/benchmarks/ingest_target/{dataset}.tsv"
    conda:
        "../envs/compare.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/ingest_target.py"
