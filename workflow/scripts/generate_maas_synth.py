"""Write the maas-synth recordings ({M}{A}_{take}.wav) into the rule's output folder."""

from audioprobe.datasets.generate import generate_maas_synth
from audioprobe.workflow import setup

log = setup(snakemake)
generate_maas_synth(snakemake.output[0], snakemake.params.settings, log=log)
