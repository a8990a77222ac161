"""KNN decoding of each factor from each layer's per-fold projections, permutation null, layer tests, plot."""

from audioprobe.latent.steps import decode_all_layers
from audioprobe.workflow import setup

setup(snakemake)
decode_all_layers(dict(zip(snakemake.params.layers, snakemake.input.projections)), snakemake.input.folds,
                  snakemake.params.factors, snakemake.params.decode, snakemake.output)
