"""Train the disentangling flow on the chosen layer's projection; save checkpoint, curve and latents."""

from audioprobe.latent.steps import train_flow_step
from audioprobe.workflow import setup

log = setup(snakemake)
train_flow_step(snakemake.input.projection, snakemake.input.split, snakemake.output,
                layer=snakemake.params.layer, factors=snakemake.params.factors, settings=snakemake.params.flow,
                threads=snakemake.threads, log=log)
