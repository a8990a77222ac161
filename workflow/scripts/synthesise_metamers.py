"""Metamers of the target sounds at every layer of one network, optimised in one batch."""

from audioprobe.metamers.steps import synthesise_step
from audioprobe.workflow import setup

log = setup(snakemake)
synthesise_step(snakemake.input, snakemake.output[0], network=snakemake.params.network,
                synthesis_settings=snakemake.params.synthesis, targets=snakemake.params.targets,
                threads=snakemake.threads, log=log)
