"""A balanced listening-test package (audio, trial lists, a static HTML page)."""

from audioprobe.metamers.listening_steps import listening_package_step
from audioprobe.workflow import setup

setup(snakemake)
listening_package_step(validation_paths=snakemake.input.validations, wav_dirs=snakemake.input.wavs,
                       waveforms_path=snakemake.input.waveforms, out_dir=snakemake.output[0],
                       settings=snakemake.params.listening)
