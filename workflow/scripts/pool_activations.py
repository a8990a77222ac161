"""Pool one layer's activations to one vector per clip (a layer stored pooled is reduced over the axes it still has;
a layer stored projected has none left, and its components are copied unchanged)."""

from audioprobe import activations
from audioprobe.workflow import setup

setup(snakemake)
pool = snakemake.params.pool
stored = snakemake.params.stored_pooling or {}  # {} for a layer stored full; with "project" for one stored projected
layer_shape = activations.model_layer_shape(snakemake.params.model, snakemake.wildcards.layer,
                                            snakemake.params.clip_seconds, pooled=stored.get("axes", ()),
                                            components=stored.get("project", {}).get("components"))
activations.pool(snakemake.input[0], snakemake.output[0], axes=pool["axes"], stat=pool["stat"],
                 attrs={"pool_config": pool}, layer_shape=layer_shape)
