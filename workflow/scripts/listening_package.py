"""A balanced listening-test package (audio, trial lists, a static HTML page)."""

from audioprobe.metamers.steps import listening_package_step
from audioprobe.workflow import setup

setup(snakemake)
listening_package_step(snakemake.input.validations, snakemake.input.wavs, snakemake.input.waveforms,
                       snakemake.output[0], settings=snakemake.params.listening)
