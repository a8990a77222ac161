"""Metamers of the target sounds at every layer of one network, optimised in one batch."""

from audioprobe.metamers.synthesis_step import synthesise_step
from audioprobe.workflow import setup

log = setup(snakemake)
synthesise_step(waveforms_path=snakemake.input.waveforms, split_path=snakemake.input.split,
                out_h5=snakemake.output[0], network=snakemake.params.network,
                synthesis_settings=snakemake.params.synthesis, targets=snakemake.params.targets,
                threads=snakemake.threads, weights_path=snakemake.input.weights,
                evaluation_path=snakemake.input.get("evaluation"), log=log)
