"""Pool one layer's activations to one vector per clip (a layer stored pooled is reduced over the axes it still has)."""

from audioprobe import activations
from audioprobe.workflow import setup

setup(snakemake)
pool = snakemake.params.pool
stored = snakemake.params.stored_pooling  # None for a layer stored full
layer_shape = activations.model_layer_shape(snakemake.params.model, snakemake.wildcards.layer,
                                            snakemake.params.clip_seconds, pooled=stored["axes"] if stored else ())
activations.pool(snakemake.input[0], snakemake.output[0], axes=pool["axes"], stat=pool["stat"],
                 attrs={"pool_config": pool}, layer_shape=layer_shape)
