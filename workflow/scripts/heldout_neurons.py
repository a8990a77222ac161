"""One value per held-out clip and neuron of a layer, pooled as the probe clips' are: explanations are scored
on these."""

from audioprobe.dissect.probing import heldout_step
from audioprobe.workflow import setup

setup(snakemake)
heldout_step(layer_path=snakemake.input.layer, split_path=snakemake.input.split, out_h5=snakemake.output[0],
             settings=snakemake.params.dissect)
