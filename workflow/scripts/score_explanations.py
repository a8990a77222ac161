"""Every explanation's scores on the held-out clips, per neuron and summarised per layer and method."""

from audioprobe.dissect.scoring import score_step
from audioprobe.workflow import setup

setup(snakemake)
score_step(closed_path=snakemake.input.closed, icl_path=snakemake.input.icl, open_path=snakemake.input.open,
           heldout_paths=snakemake.input.heldout, captions_path=snakemake.input.captions,
           simulation_path=snakemake.input.simulation, out_csv=snakemake.output.table,
           summary_csv=snakemake.output.summary, out_png=snakemake.output.figure, settings=snakemake.params.scoring)
