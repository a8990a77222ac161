"""Module C: adjectives, verbs, nouns and prepositions of each calibrated summary."""

from audioprobe.dissect.steps import open_concepts_step
from audioprobe.workflow import setup

setup(snakemake)
open_concepts_step(snakemake.input[0], snakemake.output[0], snakemake.params.dissect["open_concepts"],
                   snakemake.params.llm)
