"""Prune the summarised neurons richest in each part of speech, against random neurons."""

from audioprobe.dissect.steps import pos_ablation_step
from audioprobe.workflow import pruned_network, setup

setup(snakemake)
pos_ablation_step(snakemake.input, snakemake.output, snakemake.params.dissect, layers=snakemake.params.layers,
                  network=pruned_network(snakemake))
