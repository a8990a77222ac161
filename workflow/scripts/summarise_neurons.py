"""LLM summaries of each sampled neuron's top ("highly") and bottom ("lowly") clip captions."""

from audioprobe.dissect.steps import summaries_step
from audioprobe.workflow import setup

setup(snakemake)
summaries_step(snakemake.input.neurons, snakemake.input.captions, snakemake.output.table,
               snakemake.output.stats, snakemake.params.llm)
