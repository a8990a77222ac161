"""Per-layer summary table: shape, clips, mean, spread and sparsity of the activations."""

from audioprobe import activations
from audioprobe.io.atomic import write_csv
from audioprobe.workflow import setup

setup(snakemake)
table = activations.summarise(dict(zip(snakemake.params.layers, snakemake.input)))
write_csv(snakemake.output[0], table, config={"layers": snakemake.params.layers, **dict(snakemake.wildcards)})
