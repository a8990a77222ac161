"""Module B: drop summary sentences that the bottom clips' summary shares, and chat boilerplate."""

from audioprobe.dissect.summaries import calibrate_step
from audioprobe.workflow import setup

setup(snakemake)
calibrate_step(summaries_path=snakemake.input[0], out_csv=snakemake.output[0], settings=snakemake.params.dissect,
               pos_model=snakemake.params.pos_model)
