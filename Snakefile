"""audioprobe: raw audio -> per-layer activations of a network -> three analyses (see README.md)."""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"
report: "workflow/report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    dataset=one_of(list(config["datasets"])),
    model=one_of(list(config["models"])),
    model_a=one_of(list(config["models"])),
    model_b=one_of(list(config["models"])),
    target=one_of(names_of_kind("datasets", "target")),
    layer=one_of(sorted({layer for model in config["models"] for layer in run_layers(model)})),
    arch=one_of(keyword_architectures()),
    net=one_of(metamer_networks()),


include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/activations.smk"
include: "rules/decode.smk"
include: "rules/disentangle.smk"
include: "rules/transfer.smk"
include: "rules/metamers.smk"
include: "rules/dissect.smk"
include: "rules/compare.smk"


rule all:
    default_target: True
    input:
        foundation_outputs(),
        latent_outputs(),
        metamer_outputs(),
        dissect_outputs(),
        compare_outputs(),
