"""People's confusions in each listening-test condition against each keyword network's on the same metamers."""

from audioprobe.compare.behaviour import behaviour_step
from audioprobe.workflow import setup

setup(snakemake)
behaviour_step(snakemake.input.package, list(snakemake.input.responses), snakemake.input.answers,
               snakemake.params.behaviour, snakemake.output[0])
