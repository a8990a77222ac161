"""Label-RSA score against relative depth, the models of a comparison run overlaid."""

from audioprobe.compare.steps import layer_profiles
from audioprobe.workflow import setup

setup(snakemake)
layer_profiles(dict(zip(snakemake.params.models, snakemake.input)), snakemake.output[0])
