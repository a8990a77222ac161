"""Simulation scoring: the LLM predicts each held-out clip's activation from an explanation and the clip's
caption (every distinct explanation once, cached by content)."""

from audioprobe.dissect.scoring import simulate_step
from audioprobe.workflow import setup

setup(snakemake)
simulate_step(closed_path=snakemake.input.closed, icl_path=snakemake.input.icl, open_path=snakemake.input.open,
              captions_path=snakemake.input.captions, out_h5=snakemake.output.simulation,
              stats_json=snakemake.output.stats, settings=snakemake.params.scoring,
              llm_settings=snakemake.params.llm)
