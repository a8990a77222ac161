"""RSA of every cached layer of a model with the categorical RDM of each label, with bootstrap intervals."""

from audioprobe.compare.steps import label_rsa
from audioprobe.workflow import setup

setup(snakemake)
label_rsa(dict(zip(snakemake.params.layers, snakemake.input.layers)), snakemake.input.manifest,
          snakemake.wildcards.model, snakemake.params.depth, snakemake.params.label_rsa, snakemake.output[0])
