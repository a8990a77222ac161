"""Prune the neurons matched to each class and measure the change on held-out clips."""

from audioprobe.dissect.pruning import pruning_step
from audioprobe.workflow import pruned_network, setup

setup(snakemake)
pruning_step(closed_path=snakemake.input.closed, open_path=snakemake.input.open, captions_path=snakemake.input.captions,
             out_csv=snakemake.output.table, per_class_csv=snakemake.output.per_class, out_png=snakemake.output.figure,
             settings=snakemake.params.dissect, layers=snakemake.params.layers, network=pruned_network(snakemake))
