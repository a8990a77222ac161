"""Module C: adjectives, verbs, nouns and prepositions of each calibrated summary."""

from audioprobe.dissect.summaries import open_concepts_step
from audioprobe.workflow import setup

setup(snakemake)
open_concepts_step(calibrated_path=snakemake.input[0], out_csv=snakemake.output[0],
                   settings=snakemake.params.dissect["open_concepts"], llm_settings=snakemake.params.llm)
