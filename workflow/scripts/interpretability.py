"""Share of neurons per layer whose top clips share no caption cluster (K-means, seeded)."""

from audioprobe.dissect.interpretability import interpretability_step
from audioprobe.workflow import setup

setup(snakemake)
interpretability_step(neuron_paths=snakemake.input.neurons, captions_path=snakemake.input.captions,
                      out_csv=snakemake.output.table, out_png=snakemake.output.figure,
                      settings=snakemake.params.dissect, layers=snakemake.params.layers)
