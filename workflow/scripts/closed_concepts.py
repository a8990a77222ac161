"""Module A: every neuron's top concepts by each method and similarity function."""

from audioprobe.dissect.concepts import closed_concepts_step
from audioprobe.workflow import setup

setup(snakemake)
closed_concepts_step(neuron_paths=snakemake.input.neurons, scores_path=snakemake.input.scores,
                     summaries_path=snakemake.input.summaries, out_csv=snakemake.output.table,
                     top_h5=snakemake.output.top, settings=snakemake.params.dissect)
