"""Module A, in-context: the LLM picks a concept for each summarised neuron."""

from audioprobe.dissect.summaries import icl_step
from audioprobe.workflow import setup

setup(snakemake)
icl_step(summaries_path=snakemake.input.summaries, scores_path=snakemake.input.scores, out_csv=snakemake.output[0],
         settings=snakemake.params.dissect, llm_settings=snakemake.params.llm)
