# Model files a family fetches (rules/common.smk: model_download), downloaded once into resources/models/
# and sha256-checked, unless the config points at a local file.


rule download_model_file:
    output:
        "resources/models/{model}/{file}",
    wildcard_constraints:
        model=one_of(downloading_models()),
        file=one_of(downloaded_files()),
    params:
        url=download_setting("url_key"),
        sha256=download_setting("sha256_key"),
        config_key=download_setting("local_key"),
    log:
        "results/logs/download_model_file/{model}/{file}.log",
    benchmark:
        "results/benchmarks/download_model_file/{model}/{file}.tsv"
    conda:
        model_env
    resources:
        mem_mb=500,
        runtime=20,
    script:
        "../workflow/scripts/download.py"
