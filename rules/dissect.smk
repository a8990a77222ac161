# Study 3, audio network dissection (AND, Wu et al.): neurons' top and bottom clips, captions, LLM
# summaries, closed-set and open-set concepts, pruning by concept, and the evaluation tables.

DISSECT = "results/dissect/{model}/{dataset}"
DISSECT_REPORT = "Study 3: network dissection"


rule dissect_split:
    input:
        "results/datasets/{dataset}/manifest.csv",
    output:
        report(
            f"{DISSECT}/split.csv",
            caption="../workflow/report/dissect_split.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "split"},
        ),
    params:
        dissect=dissect_setting("label", "split"),
    log:
        "results/logs/dissect_split/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/dissect_split/{model}/{dataset}.tsv"
    conda:
        "../envs/torch.yaml"
    # The split checks the labels the study names: run it before the (long) extraction when both are ready,
    # so that a wrong label stops the run before the extraction's work, not after it.
    priority: 10
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../workflow/scripts/dissect_split.py"


rule dissect_neurons:
    wildcard_constraints:
        layer=one_of(dissected_layers()),
    input:
        layer="results/activations/{model}/{dataset}/{layer}.h5",
        split=f"{DISSECT}/split.csv",
    output:
        f"{DISSECT}/neurons/{{layer}}.h5",
    params:
        dissect=dissect_setting("pool", "top_k", "neurons"),
    log:
        "results/logs/dissect_neurons/{model}/{dataset}/{layer}.log",
    benchmark:
        "results/benchmarks/dissect_neurons/{model}/{dataset}/{layer}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/dissect_neurons.py"


rule heldout_neurons:
    wildcard_constraints:
        layer=one_of(dissected_layers()),
    input:
        layer="results/activations/{model}/{dataset}/{layer}.h5",
        split=f"{DISSECT}/split.csv",
    output:
        f"{DISSECT}/heldout/{{layer}}.h5",
    params:
        dissect=dissect_setting("pool"),
    log:
        "results/logs/heldout_neurons/{model}/{dataset}/{layer}.log",
    benchmark:
        "results/benchmarks/heldout_neurons/{model}/{dataset}/{layer}.tsv"
    conda:
        "../envs/torch.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/heldout_neurons.py"


rule dissect_head:
    input:
        layer=last_layer_file,
        split=f"{DISSECT}/split.csv",
        weights=model_weights_of,
    output:
        head=f"{DISSECT}/head.h5",
        neurons=f"{DISSECT}/neurons/head.h5",
        heldout=f"{DISSECT}/heldout/head.h5",
        evaluation=f"{DISSECT}/head.json",
    params:
        dissect=dissect_setting("label", "head", "top_k"),
        model_config=model_config_of,
        weights=weights_source_of,
    log:
        "results/logs/dissect_head/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/dissect_head/{model}/{dataset}.tsv"
    conda:
        model_env
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,
    script:
        "../workflow/scripts/dissect_head.py"


rule caption_clips:
    input:
        unpack(tagger_inputs),
        manifest="results/datasets/{dataset}/manifest.csv",
        audio=clip_audio,
        split=f"{DISSECT}/split.csv",
    output:
        report(
            f"{DISSECT}/captions.csv",
            caption="../workflow/report/dissect_captions.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "captions"},
        ),
    params:
        captions=caption_settings,
        root=dataset_root_of,
    log:
        "results/logs/caption_clips/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/caption_clips/{model}/{dataset}.tsv"
    conda:
        tagger_env
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/caption_clips.py"


rule caption_heldout:
    input:
        unpack(tagger_inputs),
        manifest="results/datasets/{dataset}/manifest.csv",
        audio=clip_audio,
        split=f"{DISSECT}/split.csv",
    output:
        report(
            f"{DISSECT}/heldout/captions.csv",
            caption="../workflow/report/dissect_heldout_captions.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "captions: held-out clips"},
        ),
    params:
        captions=caption_settings,
        root=dataset_root_of,
        which="heldout",
    log:
        "results/logs/caption_heldout/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/caption_heldout/{model}/{dataset}.tsv"
    conda:
        tagger_env
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/caption_clips.py"


rule summarise_neurons:
    input:
        neurons=neuron_files,
        captions=f"{DISSECT}/captions.csv",
    output:
        table=report(
            f"{DISSECT}/summaries.csv",
            caption="../workflow/report/dissect_summaries.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "LLM summaries"},
        ),
        stats=f"{DISSECT}/summaries.llm.json",
    params:
        llm=llm_setting("summary"),
    log:
        "results/logs/summarise_neurons/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/summarise_neurons/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=240,
    script:
        "../workflow/scripts/summarise_neurons.py"


rule calibrate_summaries:
    input:
        f"{DISSECT}/summaries.csv",
    output:
        report(
            f"{DISSECT}/calibrated.csv",
            caption="../workflow/report/dissect_calibrated.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "calibrated summaries"},
        ),
    params:
        dissect=dissect_setting("calibration", "concepts"),
        pos_model=pos_model,
    log:
        "results/logs/calibrate_summaries/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/calibrate_summaries/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        "../workflow/scripts/calibrate_summaries.py"


rule open_concepts:
    input:
        f"{DISSECT}/calibrated.csv",
    output:
        report(
            f"{DISSECT}/open_concepts.csv",
            caption="../workflow/report/dissect_open_concepts.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "open concepts"},
        ),
    params:
        dissect=dissect_setting("open_concepts"),
        llm=llm_setting("adjective"),
    log:
        "results/logs/open_concepts/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/open_concepts/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=60,
    script:
        "../workflow/scripts/open_concepts.py"


rule concept_scores:
    input:
        concepts=concept_file,
        captions=f"{DISSECT}/captions.csv",
        manifest="results/datasets/{dataset}/manifest.csv",
        split=f"{DISSECT}/split.csv",
        audio=clip_audio,
    output:
        f"{DISSECT}/concept_scores.h5",
    params:
        dissect=dissect_setting("concepts", "methods", "label"),
        root=dataset_root_of,
    log:
        "results/logs/concept_scores/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/concept_scores/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=3000,
        runtime=30,
    script:
        "../workflow/scripts/concept_scores.py"


rule closed_concepts:
    input:
        neurons=neuron_files,
        scores=f"{DISSECT}/concept_scores.h5",
        summaries=f"{DISSECT}/summaries.csv",
    output:
        table=report(
            f"{DISSECT}/closed_concepts.csv",
            caption="../workflow/report/dissect_closed_concepts.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "closed concepts"},
        ),
        top=f"{DISSECT}/closed_concepts.h5",
    params:
        dissect=closed_concepts_setting,
    log:
        "results/logs/closed_concepts/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/closed_concepts/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/closed_concepts.py"


rule icl_concepts:
    input:
        summaries=icl_summaries,
        scores=f"{DISSECT}/concept_scores.h5",
    output:
        report(
            f"{DISSECT}/icl.csv",
            caption="../workflow/report/dissect_icl.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "in-context concepts"},
        ),
    params:
        dissect=dissect_setting("concepts", "methods", "icl"),
        llm=llm_setting("icl"),
    log:
        "results/logs/icl_concepts/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/icl_concepts/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    script:
        "../workflow/scripts/icl_concepts.py"


rule evaluate_last_layer:
    input:
        closed=f"{DISSECT}/closed_concepts.csv",
        top=f"{DISSECT}/closed_concepts.h5",
        icl=f"{DISSECT}/icl.csv",
        head=f"{DISSECT}/head.h5",
        captions=f"{DISSECT}/captions.csv",
    output:
        table=report(
            f"{DISSECT}/last_layer.csv",
            caption="../workflow/report/dissect_last_layer.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "last layer: table"},
        ),
        figure=report(
            f"{DISSECT}/last_layer.png",
            caption="../workflow/report/dissect_last_layer.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "last layer: figure"},
        ),
    params:
        dissect=dissect_setting("concepts"),
    log:
        "results/logs/evaluate_last_layer/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/evaluate_last_layer/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        "../workflow/scripts/evaluate_last_layer.py"


rule prune_by_concept:
    input:
        closed=f"{DISSECT}/closed_concepts.h5",
        open=f"{DISSECT}/open_concepts.csv",
        head=f"{DISSECT}/head.h5",
        split=f"{DISSECT}/split.csv",
        start=first_layer_file,
        weights=model_weights_of,
        captions=f"{DISSECT}/captions.csv",
    output:
        table=report(
            f"{DISSECT}/pruning.csv",
            caption="../workflow/report/dissect_pruning.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "pruning: table"},
        ),
        per_class=report(
            f"{DISSECT}/pruning_per_class.csv",
            caption="../workflow/report/dissect_pruning.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "pruning: per class"},
        ),
        figure=report(
            f"{DISSECT}/pruning.png",
            caption="../workflow/report/dissect_pruning.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "pruning: figure"},
        ),
    params:
        dissect=dissect_setting("pruning", "methods", "label"),
        layers=dissect_layers_of,
        model_config=model_config_of,
        weights=weights_source_of,
    log:
        "results/logs/prune_by_concept/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/prune_by_concept/{model}/{dataset}.tsv"
    conda:
        model_env
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
    script:
        "../workflow/scripts/prune_by_concept.py"


rule pos_ablation:
    input:
        open=f"{DISSECT}/open_concepts.csv",
        head=f"{DISSECT}/head.h5",
        split=f"{DISSECT}/split.csv",
        start=first_layer_file,
        weights=model_weights_of,
        captions=f"{DISSECT}/captions.csv",
    output:
        table=report(
            f"{DISSECT}/pos_ablation.csv",
            caption="../workflow/report/dissect_pos_ablation.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "part of speech: table"},
        ),
        figure=report(
            f"{DISSECT}/pos_ablation.png",
            caption="../workflow/report/dissect_pos_ablation.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "part of speech: figure"},
        ),
    params:
        dissect=dissect_setting("pos_ablation", "label"),
        layers=dissect_layers_of,
        model_config=model_config_of,
        weights=weights_source_of,
    log:
        "results/logs/pos_ablation/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/pos_ablation/{model}/{dataset}.tsv"
    conda:
        model_env
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
    script:
        "../workflow/scripts/pos_ablation.py"


rule interpretability:
    input:
        neurons=neuron_files,
        captions=f"{DISSECT}/captions.csv",
    output:
        table=report(
            f"{DISSECT}/interpretability.csv",
            caption="../workflow/report/dissect_interpretability.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "interpretability: table"},
        ),
        figure=report(
            f"{DISSECT}/interpretability.png",
            caption="../workflow/report/dissect_interpretability.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "interpretability: figure"},
        ),
    params:
        dissect=dissect_setting("clustering", "concepts"),
        layers=dissect_layers_of,
    log:
        "results/logs/interpretability/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/interpretability/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=3000,
        runtime=30,
    script:
        "../workflow/scripts/interpretability.py"


rule simulate_explanations:
    input:
        closed=f"{DISSECT}/closed_concepts.csv",
        icl=f"{DISSECT}/icl.csv",
        open=f"{DISSECT}/open_concepts.csv",
        captions=f"{DISSECT}/heldout/captions.csv",
    output:
        simulation=f"{DISSECT}/simulation.h5",
        stats=f"{DISSECT}/simulation.llm.json",
    params:
        scoring=simulation_setting,
        llm=simulation_llm_setting,
    log:
        "results/logs/simulate_explanations/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/simulate_explanations/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=120,
    script:
        "../workflow/scripts/simulate_explanations.py"


rule score_explanations:
    input:
        closed=f"{DISSECT}/closed_concepts.csv",
        icl=f"{DISSECT}/icl.csv",
        open=f"{DISSECT}/open_concepts.csv",
        heldout=heldout_files,
        captions=f"{DISSECT}/heldout/captions.csv",
        simulation=f"{DISSECT}/simulation.h5",
    output:
        table=report(
            f"{DISSECT}/explanation_scores.csv",
            caption="../workflow/report/dissect_explanation_scores.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "explanation scores: per neuron"},
        ),
        summary=report(
            f"{DISSECT}/explanation_summary.csv",
            caption="../workflow/report/dissect_explanation_scores.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "explanation scores: per layer"},
        ),
        figure=report(
            f"{DISSECT}/explanation_scores.png",
            caption="../workflow/report/dissect_explanation_scores.rst",
            category=DISSECT_REPORT,
            subcategory="{model} on {dataset}",
            labels={"output": "explanation scores: figure"},
        ),
    params:
        scoring=scoring_setting,
    log:
        "results/logs/score_explanations/{model}/{dataset}.log",
    benchmark:
        "results/benchmarks/score_explanations/{model}/{dataset}.tsv"
    conda:
        "../envs/llm.yaml"
    resources:
        mem_mb=3000,
        runtime=30,
    script:
        "../workflow/scripts/score_explanations.py"
