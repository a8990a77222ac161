"""Recognition accuracy per network x layer, architecture comparisons and confusion matrices."""

from audioprobe.metamers.steps import listening_analysis_step
from audioprobe.workflow import setup

setup(snakemake)
listening_analysis_step(snakemake.input.package, snakemake.input.responses, snakemake.output,
                        architectures_used=snakemake.params.architectures)
