"""Linear CKA of every cached layer of one model with every cached layer of another, on the same clips."""

from audioprobe.compare.steps import cka_pair
from audioprobe.workflow import setup

setup(snakemake)
layers = snakemake.params.layers
cka_pair(dict(zip(layers["a"], snakemake.input.a)), dict(zip(layers["b"], snakemake.input.b)),
         (snakemake.wildcards.model_a, snakemake.wildcards.model_b), snakemake.params.cka,
         snakemake.output.table, snakemake.output.figure)
