"""Module B: drop summary sentences that the bottom clips' summary shares, and chat boilerplate."""

from audioprobe.dissect.steps import calibrate_step
from audioprobe.workflow import setup

setup(snakemake)
calibrate_step(snakemake.input[0], snakemake.output[0], snakemake.params.dissect, snakemake.params.pos_model)
