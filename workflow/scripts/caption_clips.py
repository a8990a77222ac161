"""Caption every probe clip with the configured backend (cached by audio content)."""

from audioprobe.dissect.steps import captions_step
from audioprobe.workflow import setup

setup(snakemake)
captions_step(snakemake.input.manifest, snakemake.params.root, snakemake.input.split, snakemake.output[0],
              snakemake.params.captions, snakemake.input)
