"""Train one keyword architecture on the shared input representation; save weights, history, test accuracy."""

from audioprobe.metamers.keyword_models import train_keyword_model_step
from audioprobe.workflow import setup

log = setup(snakemake)
train_keyword_model_step(waveforms_path=snakemake.input.waveforms, split_path=snakemake.input.split,
                         weights_h5=snakemake.output.weights, history_csv=snakemake.output.history,
                         evaluation_json=snakemake.output.evaluation, model=snakemake.params.model,
                         training=snakemake.params.training, threads=snakemake.threads, log=log)
