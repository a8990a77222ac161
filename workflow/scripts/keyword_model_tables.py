"""Parameter counts and test accuracy of every keyword architecture."""

from audioprobe.metamers.keyword_models import keyword_model_tables_step
from audioprobe.workflow import setup

setup(snakemake)
keyword_model_tables_step(weight_paths=snakemake.input.weights, evaluation_paths=snakemake.input.evaluations,
                          parameters_csv=snakemake.output.parameters, accuracy_csv=snakemake.output.accuracy,
                          architectures_used=snakemake.params.architectures, model=snakemake.params.model)
