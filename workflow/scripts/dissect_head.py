"""A linear head on the frozen network's embedding, trained on the probe clips' classes."""

from audioprobe.dissect.steps import head_step
from audioprobe.models import load
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.dissect
model = load(snakemake.wildcards.model, snakemake.params.model_config, snakemake.params.weights,
             threads=snakemake.threads)
head_step(snakemake.input.layer, snakemake.input.split, snakemake.output, label=settings["label"],
          settings=settings, model=model)
