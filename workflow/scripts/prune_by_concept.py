"""Prune the neurons matched to each class and measure the change on held-out clips."""

from audioprobe.dissect.steps import pruning_step
from audioprobe.workflow import pruned_network, setup

setup(snakemake)
pruning_step(snakemake.input, snakemake.output, snakemake.params.dissect, layers=snakemake.params.layers,
             network=pruned_network(snakemake))
