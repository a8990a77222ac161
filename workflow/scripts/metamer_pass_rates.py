"""Share of validated metamers per network and layer."""

from audioprobe.metamers.steps import pass_rates_step
from audioprobe.workflow import setup

setup(snakemake)
pass_rates_step(snakemake.input, snakemake.output[0])
