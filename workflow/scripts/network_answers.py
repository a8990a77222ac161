"""Every keyword network's answer to every metamer of every condition and to the natural sounds."""

from audioprobe.metamers.confusions import keyword_evaluators, network_answers_step
from audioprobe.workflow import setup

setup(snakemake)
evaluators = keyword_evaluators(snakemake.params.evaluators, snakemake.input.weights, snakemake.input.evaluations,
                                snakemake.params.settings)
network_answers_step(dict(zip(snakemake.params.networks, snakemake.input.metamers)), evaluators,
                     snakemake.threads, snakemake.output[0])
