# Study 2: keyword networks that differ in how they connect along frequency, metamers at every layer
# (and at chosen layers of a pretrained model), validation, figures and a listening test.


rule keyword_split:
    input:
        "results/datasets/{dataset}/manifest.csv",
    output:
        report(
            "results/metamers/{dataset}/split.csv",
            caption="../workflow/report/keyword_split.rst",
            category="Study 2: model metamers",
            subcategory="keyword networks on {dataset}",
            labels={"output": "split"},
        ),
    params:
        split=metamer_setting("split"),
        label=metamer_setting("label"),
    log:
        "results/logs/keyword_split/{dataset}.log",
    benchmark:
        "results/benchmarks/keyword_split/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    # The split checks the labels the study names: run it before the (long) extraction when both are ready,
    # so that a wrong label stops the run before the extraction's work, not after it.
    priority: 10
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/keyword_split.py"


rule keyword_waveforms:
    input:
        manifest="results/datasets/{dataset}/manifest.csv",
        audio=clip_audio,
    output:
        "results/metamers/{dataset}/waveforms.h5",
    params:
        root=dataset_root_of,
        clip_seconds=dataset_clip_seconds,
        label=metamer_setting("label"),
    log:
        "results/logs/keyword_waveforms/{dataset}.log",
    benchmark:
        "results/benchmarks/keyword_waveforms/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        "../workflow/scripts/keyword_waveforms.py"


rule train_keyword_model:
    input:
        waveforms="results/metamers/{dataset}/waveforms.h5",
        split="results/metamers/{dataset}/split.csv",
    output:
        weights="results/metamers/{dataset}/models/{arch}/weights.weights.h5",
        history=report(
            "results/metamers/{dataset}/models/{arch}/history.csv",
            caption="../workflow/report/keyword_history.rst",
            category="Study 2: model metamers",
            subcategory="keyword networks on {dataset}",
            labels={"output": "training history: {arch}"},
        ),
        evaluation="results/metamers/{dataset}/models/{arch}/evaluation.json",
    params:
        model=keyword_model_settings,
        training=metamer_setting("training"),
    log:
        "results/logs/train_keyword_model/{dataset}/{arch}.log",
    benchmark:
        "results/benchmarks/train_keyword_model/{dataset}/{arch}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/train_keyword_model.py"


rule keyword_model_tables:
    input:
        weights=keyword_weights,
        evaluations=keyword_evaluations,
        waveforms="results/metamers/{dataset}/waveforms.h5",
    output:
        parameters=report(
            "results/metamers/{dataset}/models/parameters.csv",
            caption="../workflow/report/keyword_parameters.rst",
            category="Study 2: model metamers",
            subcategory="keyword networks on {dataset}",
            labels={"output": "parameters"},
        ),
        accuracy=report(
            "results/metamers/{dataset}/models/accuracy.csv",
            caption="../workflow/report/keyword_accuracy.rst",
            category="Study 2: model metamers",
            subcategory="keyword networks on {dataset}",
            labels={"output": "test accuracy"},
        ),
    params:
        architectures=metamer_setting("architectures"),
        model=keyword_model_settings,
    log:
        "results/logs/keyword_model_tables/{dataset}.log",
    benchmark:
        "results/benchmarks/keyword_model_tables/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../workflow/scripts/keyword_model_tables.py"


rule synthesise_metamers:
    input:
        unpack(metamer_network_inputs),
        waveforms="results/metamers/{dataset}/waveforms.h5",
        split="results/metamers/{dataset}/split.csv",
    output:
        "results/metamers/{dataset}/{net}/metamers.h5",
    params:
        network=metamer_network_settings,
        synthesis=metamer_setting("synthesis"),
        targets=metamer_setting("targets"),
    log:
        "results/logs/synthesise_metamers/{dataset}/{net}.log",
    benchmark:
        "results/benchmarks/synthesise_metamers/{dataset}/{net}.tsv"
    conda:
        metamer_env
    threads: 2
    resources:
        mem_mb=6000,
        runtime=240,
    script:
        "../workflow/scripts/synthesise_metamers.py"


rule validate_metamers:
    input:
        unpack(metamer_network_inputs),
        metamers="results/metamers/{dataset}/{net}/metamers.h5",
        waveforms="results/metamers/{dataset}/waveforms.h5",
    output:
        validation=report(
            "results/metamers/{dataset}/{net}/validation.csv",
            caption="../workflow/report/metamer_validation.rst",
            category="Study 2: model metamers",
            subcategory="metamers on {dataset}",
            labels={"output": "validation: {net}"},
        ),
        null=report(
            "results/metamers/{dataset}/{net}/null.csv",
            caption="../workflow/report/metamer_null.rst",
            category="Study 2: model metamers",
            subcategory="metamers on {dataset}",
            labels={"output": "null distribution: {net}"},
        ),
        wavs=directory("results/metamers/{dataset}/{net}/wav"),
        figure=report(
            "results/metamers/{dataset}/{net}/metamers.png",
            caption="../workflow/report/metamer_figure.rst",
            category="Study 2: model metamers",
            subcategory="metamers on {dataset}",
            labels={"output": "metamers: {net}"},
        ),
    params:
        network=metamer_network_settings,
        null=metamer_setting("null_distribution"),
    log:
        "results/logs/validate_metamers/{dataset}/{net}.log",
    benchmark:
        "results/benchmarks/validate_metamers/{dataset}/{net}.tsv"
    conda:
        metamer_env
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/validate_metamers.py"


rule metamer_pass_rates:
    input:
        metamer_validations,
    output:
        report(
            "results/metamers/{dataset}/pass_rates.csv",
            caption="../workflow/report/pass_rates.rst",
            category="Study 2: model metamers",
            subcategory="metamers on {dataset}",
            labels={"output": "pass rates"},
        ),
    params:
        networks=metamer_networks_of,
    log:
        "results/logs/metamer_pass_rates/{dataset}.log",
    benchmark:
        "results/benchmarks/metamer_pass_rates/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/metamer_pass_rates.py"


rule listening_package:
    input:
        validations=metamer_validations,
        wavs=metamer_wav_folders,
        waveforms="results/metamers/{dataset}/waveforms.h5",
    output:
        report(
            directory("results/metamers/{dataset}/listening_test"),
            patterns=["{name}.csv"],
            caption="../workflow/report/listening_trials.rst",
            category="Study 2: model metamers",
            subcategory="listening test on {dataset}",
            labels={"output": "answer key ({name}.csv)"},
        ),
    params:
        networks=metamer_networks_of,
        listening=metamer_setting("listening"),
    log:
        "results/logs/listening_package/{dataset}.log",
    benchmark:
        "results/benchmarks/listening_package/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/listening_package.py"


rule listening_analysis:
    input:
        package="results/metamers/{dataset}/listening_test",
        responses=listening_responses,
    output:
        accuracy=report(
            "results/metamers/{dataset}/listening_results/accuracy.csv",
            caption="../workflow/report/listening_accuracy.rst",
            category="Study 2: model metamers",
            subcategory="listening test on {dataset}",
            labels={"output": "accuracy"},
        ),
        comparison=report(
            "results/metamers/{dataset}/listening_results/architectures.csv",
            caption="../workflow/report/listening_architectures.rst",
            category="Study 2: model metamers",
            subcategory="listening test on {dataset}",
            labels={"output": "architectures compared"},
        ),
        confusion=report(
            "results/metamers/{dataset}/listening_results/confusion.png",
            caption="../workflow/report/listening_confusion.rst",
            category="Study 2: model metamers",
            subcategory="listening test on {dataset}",
            labels={"output": "confusion matrices"},
        ),
    params:
        architectures=metamer_setting("architectures"),
    log:
        "results/logs/listening_analysis/{dataset}.log",
    benchmark:
        "results/benchmarks/listening_analysis/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/listening_analysis.py"


rule network_answers:
    input:
        metamers=metamer_files,
        weights=keyword_weights,
        evaluations=keyword_evaluations,
    output:
        report(
            "results/metamers/{dataset}/network_answers.csv",
            caption="../workflow/report/network_answers.rst",
            category="Study 2: model metamers",
            subcategory="listening test on {dataset}",
            labels={"output": "the keyword networks' answers"},
        ),
    params:
        networks=metamer_networks_of,
        evaluators=keyword_architectures_of,
        settings=keyword_model_settings,
    log:
        "results/logs/network_answers/{dataset}.log",
    benchmark:
        "results/benchmarks/network_answers/{dataset}.tsv"
    conda:
        "../envs/tensorflow.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow/scripts/network_answers.py"
