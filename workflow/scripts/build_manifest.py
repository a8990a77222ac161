"""Check every audio file of a dataset and write its manifest and rejected-clips table."""

from audioprobe.datasets.build import build_manifest
from audioprobe.workflow import setup

log = setup(snakemake)
build_manifest(snakemake.params.root, snakemake.params.settings, snakemake.output.manifest,
               snakemake.output.rejected, log=log, name=snakemake.wildcards.dataset)
