"""Figure 1: the two factor dimensions of held-out clips, and the manipulation check."""

from audioprobe.latent.steps import figure1_step
from audioprobe.workflow import setup

setup(snakemake)
figure1_step(snakemake.input.latents, snakemake.input.split, snakemake.output, factors=snakemake.params.factors,
             decode=snakemake.params.decode)
