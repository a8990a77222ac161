"""audioprobe: raw audio -> per-layer activations of a network -> three analyses (see README.md)."""

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/activations.smk"


rule all:
    default_target: True
    input:
        foundation_outputs(),
