"""Assign whole recordings to train / validation / test, stratified by factor combination."""

from audioprobe.latent.steps import make_split
from audioprobe.workflow import setup

setup(snakemake)
make_split(snakemake.input[0], snakemake.output[0], snakemake.params.factors, snakemake.params.split)
