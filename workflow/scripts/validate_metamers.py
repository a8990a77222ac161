"""Validate each metamer (prediction match, similarity beyond the null), write WAVs and a figure."""

from audioprobe.metamers.validation_step import validate_step
from audioprobe.workflow import setup

log = setup(snakemake)
validate_step(metamers_path=snakemake.input.metamers, waveforms_path=snakemake.input.waveforms,
              validation_csv=snakemake.output.validation, null_csv=snakemake.output.null,
              wav_dir=snakemake.output.wavs, figure_png=snakemake.output.figure, network=snakemake.params.network,
              null=snakemake.params.null, net_name=snakemake.wildcards.net, threads=snakemake.threads,
              weights_path=snakemake.input.weights, evaluation_path=snakemake.input.get("evaluation"), log=log)
