# Comparing representations (issue 15): every cached layer of one model against every layer of another by
# linear CKA, and every layer against the categorical RDM of each label by RSA, on the pooled activations.
# Each pair of models has its own job and files, so adding a model to a run computes only its comparisons.


rule cka_pair:
    input:
        unpack(cka_pair_inputs),
    output:
        table=report(
            "results/compare/{dataset}/cka/{model_a}/{model_b}.csv",
            caption="../workflow/report/compare_cka.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"output": "CKA table", "models": "{model_a} x {model_b}"},
        ),
        figure=report(
            "results/compare/{dataset}/cka/{model_a}/{model_b}.png",
            caption="../workflow/report/compare_cka.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"output": "CKA heatmap", "models": "{model_a} x {model_b}"},
        ),
    params:
        cka=compare_setting("cka"),
        layers=cka_pair_layers,
    log:
        "results/logs/cka_pair/{dataset}/{model_a}/{model_b}.log",
    benchmark:
        "results/benchmarks/cka_pair/{dataset}/{model_a}/{model_b}.tsv"
    conda:
        "../envs/compare.yaml"
    threads: 2  # Gram matrix products
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow/scripts/cka_pair.py"


rule label_rsa:
    input:
        layers=pooled_layer_files_of,
        manifest="results/datasets/{dataset}/manifest.csv",
    output:
        report(
            "results/compare/{dataset}/label_rsa/{model}.csv",
            caption="../workflow/report/compare_label_rsa.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"output": "label RSA", "models": "{model}"},
        ),
    params:
        label_rsa=compare_setting("label_rsa"),
        layers=layers_of,
        depth=relative_depth_of,
    log:
        "results/logs/label_rsa/{dataset}/{model}.log",
    benchmark:
        "results/benchmarks/label_rsa/{dataset}/{model}.tsv"
    conda:
        "../envs/compare.yaml"
    resources:
        mem_mb=3000,
        runtime=60,
    script:
        "../workflow/scripts/label_rsa.py"


rule layer_profiles:
    input:
        label_rsa_tables,
    output:
        report(
            "results/compare/{dataset}/label_rsa/profiles.png",
            caption="../workflow/report/compare_profiles.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"output": "layer profiles", "models": "all"},
        ),
    params:
        models=compared_models_of,
    log:
        "results/logs/layer_profiles/{dataset}.log",
    benchmark:
        "results/benchmarks/layer_profiles/{dataset}.tsv"
    conda:
        "../envs/compare.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/layer_profiles.py"


# A target (brain or behavioural responses to the run's clips): RSA with noise ceilings and encoding models, one
# job per model, so a new model or target adds only its own jobs.


rule target_rsa:
    input:
        layers=pooled_layer_files_of,
        target="results/datasets/{target}/responses.h5",
    output:
        report(
            "results/compare/{dataset}/{target}/rsa/{model}.csv",
            caption="../workflow/report/compare_target_rsa.rst",
            category="Comparisons",
            subcategory="{dataset}: {target}",
            labels={"output": "RSA with the target", "models": "{model}"},
        ),
    params:
        target_rsa=compare_setting("target_rsa"),
        layers=layers_of,
        depth=relative_depth_of,
    log:
        "results/logs/target_rsa/{dataset}/{target}/{model}.log",
    benchmark:
        "results/benchmarks/target_rsa/{dataset}/{target}/{model}.tsv"
    conda:
        "../envs/compare.yaml"
    resources:
        mem_mb=3000,
        runtime=60,
    script:
        "../workflow/scripts/target_rsa.py"


rule target_encoding:
    input:
        layers=pooled_layer_files_of,
        target="results/datasets/{target}/responses.h5",
    output:
        report(
            "results/compare/{dataset}/{target}/encoding/{model}.csv",
            caption="../workflow/report/compare_target_encoding.rst",
            category="Comparisons",
            subcategory="{dataset}: {target}",
            labels={"output": "encoding models of the target", "models": "{model}"},
        ),
    params:
        encoding=compare_setting("encoding"),
        layers=layers_of,
        depth=relative_depth_of,
    log:
        "results/logs/target_encoding/{dataset}/{target}/{model}.log",
    benchmark:
        "results/benchmarks/target_encoding/{dataset}/{target}/{model}.tsv"
    conda:
        "../envs/compare.yaml"
    threads: 2  # himalaya's matrix products
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../workflow/scripts/target_encoding.py"


rule target_profiles:
    input:
        rsa=target_tables("rsa"),
        encoding=target_tables("encoding"),
    output:
        report(
            "results/compare/{dataset}/{target}/profiles.png",
            caption="../workflow/report/compare_target_profiles.rst",
            category="Comparisons",
            subcategory="{dataset}: {target}",
            labels={"output": "layer profiles", "models": "all"},
        ),
    params:
        models=compared_models_of,
    log:
        "results/logs/target_profiles/{dataset}/{target}.log",
    benchmark:
        "results/benchmarks/target_profiles/{dataset}/{target}.tsv"
    conda:
        "../envs/compare.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/target_profiles.py"


# Behaviour: people's confusions in the listening test (Study 2) against the keyword networks' on the same
# metamers; only with responses (metamers.responses).


rule behaviour_rsa:
    input:
        package="results/metamers/{dataset}/listening_test",
        responses=listening_responses,
        answers="results/metamers/{dataset}/network_answers.csv",
    output:
        report(
            "results/compare/{dataset}/behaviour.csv",
            caption="../workflow/report/compare_behaviour.rst",
            category="Comparisons",
            subcategory="{dataset}",
            labels={"output": "people's and networks' confusions", "models": "keyword networks"},
        ),
    params:
        behaviour=compare_setting("behaviour"),
    log:
        "results/logs/behaviour_rsa/{dataset}.log",
    benchmark:
        "results/benchmarks/behaviour_rsa/{dataset}.tsv"
    conda:
        "../envs/compare.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/behaviour_rsa.py"
