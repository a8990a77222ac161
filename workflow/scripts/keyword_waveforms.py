"""Every clip of the keyword dataset as fixed-length 16-kHz waveforms in one HDF5 file."""

from audioprobe.metamers.waveforms import keyword_waveforms
from audioprobe.workflow import setup

log = setup(snakemake)
keyword_waveforms(snakemake.input.manifest, snakemake.params.root, snakemake.output[0],
                  clip_seconds=snakemake.params.clip_seconds, label=snakemake.params.label, log=log)
