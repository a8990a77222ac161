"""Prune the neurons matched to each class and measure the change on held-out clips."""

from audioprobe.dissect.steps import load_pruned_network, pruning_step
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.dissect
network = load_pruned_network(snakemake.input, label=settings["label"], model_name=snakemake.wildcards.model,
                              model_config=snakemake.params.model_config, weights=snakemake.params.weights,
                              threads=snakemake.threads)
pruning_step(snakemake.input, snakemake.output, settings, layers=snakemake.params.layers, network=network)
