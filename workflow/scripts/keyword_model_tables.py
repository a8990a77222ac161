"""Parameter counts and test accuracy of every keyword architecture."""

from audioprobe.metamers.steps import keyword_model_tables_step
from audioprobe.workflow import setup

setup(snakemake)
keyword_model_tables_step(snakemake.input.weights, snakemake.input.evaluations, snakemake.input.waveforms,
                          snakemake.output, architectures_used=snakemake.params.architectures,
                          model=snakemake.params.model)
