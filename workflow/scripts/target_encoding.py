"""Ridge encoding models of a target's channels from every cached layer of a model, with noise correction."""

from audioprobe.compare.target_steps import target_encoding
from audioprobe.workflow import setup

setup(snakemake)
target_encoding(dict(zip(snakemake.params.layers, snakemake.input.layers)), snakemake.input.target,
                snakemake.wildcards.model, snakemake.params.depth, snakemake.params.encoding, snakemake.output[0])
