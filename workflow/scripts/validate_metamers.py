"""Validate each metamer (prediction match, similarity beyond the null), write WAVs and a figure."""

from audioprobe.metamers.steps import validate_step
from audioprobe.workflow import setup

log = setup(snakemake)
validate_step(snakemake.input, snakemake.output, network=snakemake.params.network, null=snakemake.params.null,
              net_name=snakemake.wildcards.net, threads=snakemake.threads, log=log)
