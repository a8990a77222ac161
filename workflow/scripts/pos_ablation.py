"""Prune the summarised neurons richest in each part of speech, against random neurons."""

from audioprobe.dissect.steps import load_pruned_network, pos_ablation_step
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.dissect
network = load_pruned_network(snakemake.input, label=settings["label"], model_name=snakemake.wildcards.model,
                              model_config=snakemake.params.model_config, weights=snakemake.params.weights,
                              threads=snakemake.threads)
pos_ablation_step(snakemake.input, snakemake.output, settings, layers=snakemake.params.layers, network=network)
