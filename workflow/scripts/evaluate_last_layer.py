"""Last-layer dissection: do the output neurons' concepts name their classes?"""

from audioprobe.dissect.steps import last_layer_step
from audioprobe.workflow import setup

setup(snakemake)
last_layer_step(snakemake.input, snakemake.output, snakemake.params.dissect)
