"""RSA and encoding scores of a target against relative depth, the models of the comparison overlaid."""

from audioprobe.compare.target_steps import target_profiles
from audioprobe.workflow import setup

setup(snakemake)
models = snakemake.params.models
target_profiles(dict(zip(models, snakemake.input.rsa)), dict(zip(models, snakemake.input.encoding)),
                snakemake.wildcards.target, snakemake.output[0])
