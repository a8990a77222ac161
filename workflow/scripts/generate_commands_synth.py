"""Write the commands-synth keyword clips (<word>/<speaker>_nohash_<n>.wav) into the rule's output folder."""

from audioprobe.datasets.generate import generate_commands_synth
from audioprobe.workflow import setup

log = setup(snakemake)
generate_commands_synth(snakemake.output[0], snakemake.params.settings, log=log)
