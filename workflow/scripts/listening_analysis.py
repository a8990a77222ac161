"""Recognition accuracy per network x layer, architecture comparisons and confusion matrices."""

from audioprobe.metamers.listening_steps import listening_analysis_step
from audioprobe.workflow import setup

setup(snakemake)
listening_analysis_step(package_dir=snakemake.input.package, response_paths=snakemake.input.responses,
                        accuracy_csv=snakemake.output.accuracy, comparison_csv=snakemake.output.comparison,
                        confusion_png=snakemake.output.confusion, architectures_used=snakemake.params.architectures)
