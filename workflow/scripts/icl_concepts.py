"""Module A, in-context: the LLM picks a concept for each summarised neuron."""

from audioprobe.dissect.steps import icl_step
from audioprobe.workflow import setup

setup(snakemake)
icl_step(snakemake.input.summaries, snakemake.input.scores, snakemake.output[0], snakemake.params.dissect,
         snakemake.params.llm)
