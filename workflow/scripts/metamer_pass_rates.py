"""Share of validated metamers per network and layer."""

from audioprobe.metamers.pass_rates import pass_rates_step
from audioprobe.workflow import setup

setup(snakemake)
pass_rates_step(validation_paths=snakemake.input, out_csv=snakemake.output[0])
