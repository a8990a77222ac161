"""Share of neurons per layer whose top clips share no caption cluster (K-means, seeded)."""

from audioprobe.dissect.steps import interpretability_step
from audioprobe.workflow import setup

setup(snakemake)
interpretability_step(snakemake.input, snakemake.output, snakemake.params.dissect, snakemake.params.layers)
