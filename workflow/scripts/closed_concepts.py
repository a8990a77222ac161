"""Module A: every neuron's top concepts by each method and similarity function."""

from audioprobe.dissect.steps import closed_concepts_step
from audioprobe.workflow import setup

setup(snakemake)
closed_concepts_step(snakemake.input, snakemake.output, snakemake.params.dissect)
