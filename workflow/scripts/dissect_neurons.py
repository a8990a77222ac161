"""One value per probe clip and neuron of a layer, its top and bottom clips, and the sampled neurons."""

from audioprobe.dissect.steps import neurons_step
from audioprobe.workflow import setup

setup(snakemake)
neurons_step(snakemake.input.layer, snakemake.input.split, snakemake.output[0], snakemake.params.dissect)
