"""Grouped cross-validation folds for decoding, over the clips outside the test split."""

from audioprobe.latent.steps import make_folds
from audioprobe.workflow import setup

setup(snakemake)
make_folds(snakemake.input.manifest, snakemake.input.split, snakemake.output[0], snakemake.params.factors,
           snakemake.params.decode)
