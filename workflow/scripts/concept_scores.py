"""Clip-concept similarities: caption text vs concepts (DB) and, with CLAP, audio vs concepts (TAB)."""

from audioprobe.dissect.steps import concept_scores_step
from audioprobe.workflow import setup

setup(snakemake)
concept_scores_step(snakemake.input, snakemake.output[0], snakemake.params.dissect, snakemake.params.root)
