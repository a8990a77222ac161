"""Read a target's responses, check them against the stimuli dataset's manifest, store them in its clip order."""

from audioprobe.compare.targets import ingest
from audioprobe.workflow import setup

setup(snakemake)
ingest(snakemake.input.responses, snakemake.input.manifest, snakemake.params.settings, snakemake.output[0])
