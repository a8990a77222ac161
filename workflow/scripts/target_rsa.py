"""RSA of every cached layer of a model with a target's RDMs, with bootstrap intervals and the noise ceiling."""

from audioprobe.compare.target_steps import target_rsa
from audioprobe.workflow import setup

setup(snakemake)
target_rsa(dict(zip(snakemake.params.layers, snakemake.input.layers)), snakemake.input.target,
           snakemake.wildcards.model, snakemake.params.depth, snakemake.params.target_rsa, snakemake.output[0])
