"""A linear head on the frozen network's embedding, trained on the probe clips' classes."""

from audioprobe.dissect.probing import head_step
from audioprobe.models import load
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.dissect
model = load(snakemake.wildcards.model, snakemake.params.model_config, snakemake.params.weights,
             threads=snakemake.threads)
head_step(layer_path=snakemake.input.layer, split_path=snakemake.input.split, head_h5=snakemake.output.head,
          neurons_h5=snakemake.output.neurons,
          heldout_h5=snakemake.output.heldout, evaluation_json=snakemake.output.evaluation, label=settings["label"],
          settings=settings, model=model)
