"""One projection per decoding fold, fitted on that fold's training clips; every decoded clip through each."""

from audioprobe.latent.steps import project_folds
from audioprobe.workflow import setup

setup(snakemake)
project_folds(snakemake.input.layer, snakemake.input.folds, snakemake.output[0],
              components=snakemake.params.components, seed=snakemake.params.split["seed"],
              memory_mb=snakemake.params.memory_mb)
