"""Train one keyword architecture on the shared input representation; save weights, history, test accuracy."""

from audioprobe.metamers.steps import train_keyword_model_step
from audioprobe.workflow import setup

log = setup(snakemake)
train_keyword_model_step(snakemake.input.waveforms, snakemake.input.split, snakemake.output,
                         model=snakemake.params.model, training=snakemake.params.training, threads=snakemake.threads,
                         log=log)
