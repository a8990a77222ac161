# Study 1, part 1: a persistent split, per-layer projections, and KNN decoding of both factors. Decoding runs
# on the clips outside the test split, in grouped folds, each fold through a projection fitted on its own
# training clips; the test split is left for the flow's evaluation (Figure 1, transfer).


rule latent_split:
    input:
        "results/datasets/{dataset}/manifest.csv",
    output:
        report(
            "results/latent/{model}/{dataset}/split.csv",
            caption="../workflow/report/latent_split.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "split"},
        ),
    params:
        split=latent_setting("split"),
        factors=latent_setting("factors"),
    log:
        "results/logs/latent_split/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/latent_split/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    # The split checks the labels the study names: run it before the (long) extraction when both are ready,
    # so that a wrong label stops the run before the extraction's work, not after it.
    priority: 10
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/latent_split.py"


rule project_layer:
    input:
        layer="results/activations/{model}/{dataset}/{layer}.h5",
        split="results/latent/{model}/{dataset}/split.csv",
    output:
        "results/latent/{model}/{dataset}/projection/{layer}.h5",
    params:
        components=latent_setting("pca_components"),
        split=latent_setting("split"),
        memory_mb=latent_setting("projection_memory_mb"),
    log:
        "results/logs/project_layer/{model}/{dataset}/{layer}.log",
    benchmark:
        "results/benchmarks/project_layer/{model}/{dataset}/{layer}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2  # BLAS products; Snakemake sets OPENBLAS_NUM_THREADS to a rule's threads (1 if undeclared)
    resources:
        mem_mb=projection_mem_mb,
        runtime=30,
    script:
        "../workflow/scripts/project_layer.py"


rule latent_folds:
    input:
        manifest="results/datasets/{dataset}/manifest.csv",
        split="results/latent/{model}/{dataset}/split.csv",
    output:
        report(
            "results/latent/{model}/{dataset}/cv_folds.csv",
            caption="../workflow/report/latent_folds.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "decoding: folds"},
        ),
    params:
        decode=latent_keys("decode", "folds", "seed"),
        factors=latent_setting("factors"),
    log:
        "results/logs/latent_folds/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/latent_folds/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/latent_folds.py"


rule project_folds:
    input:
        layer="results/activations/{model}/{dataset}/{layer}.h5",
        folds="results/latent/{model}/{dataset}/cv_folds.csv",
    output:
        "results/latent/{model}/{dataset}/projection_folds/{layer}.h5",
    params:
        components=latent_setting("pca_components"),
        split=latent_setting("split"),
        memory_mb=latent_setting("projection_memory_mb"),
    log:
        "results/logs/project_folds/{model}/{dataset}/{layer}.log",
    benchmark:
        "results/benchmarks/project_folds/{model}/{dataset}/{layer}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2  # BLAS products; Snakemake sets OPENBLAS_NUM_THREADS to a rule's threads (1 if undeclared)
    resources:
        mem_mb=projection_mem_mb,
        runtime=60,
    script:
        "../workflow/scripts/project_folds.py"


checkpoint decode_layers:
    input:
        projections=fold_projection_files,
        folds="results/latent/{model}/{dataset}/cv_folds.csv",
    output:
        folds=report(
            "results/latent/{model}/{dataset}/decoding/folds.csv",
            caption="../workflow/report/decoding_folds.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "decoding: per fold"},
        ),
        null=report(
            "results/latent/{model}/{dataset}/decoding/null.csv",
            caption="../workflow/report/decoding_null.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "decoding: permutation null"},
        ),
        summary=report(
            "results/latent/{model}/{dataset}/decoding/summary.csv",
            caption="../workflow/report/decoding_summary.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "decoding: summary"},
        ),
        tests=report(
            "results/latent/{model}/{dataset}/decoding/tests.csv",
            caption="../workflow/report/decoding_tests.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "decoding: layer tests"},
        ),
        figure=report(
            "results/latent/{model}/{dataset}/decoding/decoding.png",
            caption="../workflow/report/decoding_figure.rst",
            category="Study 1: latent disentanglement",
            subcategory="{model} on {dataset}",
            labels={"output": "decoding: figure"},
        ),
    params:
        decode=latent_setting("decode"),
        factors=latent_setting("factors"),
        layers=layers_of,
    log:
        "results/logs/decode_layers/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/decode_layers/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 2  # the neighbour search's float32 products
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow/scripts/decode_layers.py"
