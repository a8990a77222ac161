"""One value per probe clip and neuron of a layer, its top and bottom clips, and the sampled neurons."""

from audioprobe.dissect.probing import neurons_step
from audioprobe.workflow import setup

setup(snakemake)
neurons_step(layer_path=snakemake.input.layer, split_path=snakemake.input.split, out_h5=snakemake.output[0],
             settings=snakemake.params.dissect)
