"""A persistent train / validation / test split of a keyword dataset, whole speakers per split."""

from audioprobe.latent.steps import make_split
from audioprobe.workflow import setup

setup(snakemake)
make_split(snakemake.input[0], snakemake.output[0], [snakemake.params.label], snakemake.params.split,
           section="metamers", labels_key="metamers.label", use="the keyword networks")
