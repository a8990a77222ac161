"""Continue the network from the edited layer to its outputs."""

from audioprobe.latent.steps import transfer_continue_step
from audioprobe.workflow import setup

setup(snakemake)
transfer_continue_step(snakemake.input.edited, snakemake.output[0], model_name=snakemake.wildcards.model,
                       model_config=snakemake.params.model, weights=snakemake.params.weights,
                       threads=snakemake.threads)
