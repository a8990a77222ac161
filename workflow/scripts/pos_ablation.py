"""Prune the summarised neurons richest in each part of speech, against random neurons."""

from audioprobe.dissect.pruning import pos_ablation_step
from audioprobe.workflow import pruned_network, setup

setup(snakemake)
pos_ablation_step(open_path=snakemake.input.open, captions_path=snakemake.input.captions,
                  out_csv=snakemake.output.table, out_png=snakemake.output.figure, settings=snakemake.params.dissect,
                  layers=snakemake.params.layers, network=pruned_network(snakemake))
