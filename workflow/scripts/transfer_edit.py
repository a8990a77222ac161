"""Edit held-out clips' factor values in the flow's space and map them back to the layer's activations."""

from audioprobe.latent.steps import transfer_edit_step
from audioprobe.workflow import setup

setup(snakemake)
transfer_edit_step(snakemake.input, snakemake.output[0], factors=snakemake.params.factors,
                   settings=snakemake.params.transfer)
