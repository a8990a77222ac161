"""LLM summaries of each sampled neuron's top ("highly") and bottom ("lowly") clip captions."""

from audioprobe.dissect.summaries import summaries_step
from audioprobe.workflow import setup

setup(snakemake)
summaries_step(neuron_paths=snakemake.input.neurons, captions_path=snakemake.input.captions,
               out_csv=snakemake.output.table, stats_json=snakemake.output.stats, settings=snakemake.params.llm)
