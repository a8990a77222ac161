"""Distances in the network's output space, paired tests with correction, and Figure 2."""

from audioprobe.latent.steps import transfer_statistics_step
from audioprobe.workflow import setup

setup(snakemake)
transfer_statistics_step(snakemake.input[0], snakemake.output, settings=snakemake.params.transfer)
