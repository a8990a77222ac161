"""Standardise, PCA and standardise one layer, fitted on the training split; project every clip."""

from audioprobe.latent.steps import project_layer
from audioprobe.workflow import setup

setup(snakemake)
project_layer(snakemake.input.layer, snakemake.input.split, snakemake.output[0],
              components=snakemake.params.components, seed=snakemake.params.split["seed"],
              memory_mb=snakemake.params.memory_mb)
