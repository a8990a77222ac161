"""Every keyword network's answer to every metamer of every condition and to the natural sounds."""

from audioprobe.metamers.confusions import network_answers_step
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.settings
evaluators = {arch: {"settings": {"kind": "keyword", "arch": arch, **settings}, "weights": weights,
                     "evaluation": evaluation}
              for arch, weights, evaluation in zip(snakemake.params.evaluators, snakemake.input.weights,
                                                   snakemake.input.evaluations)}
network_answers_step(dict(zip(snakemake.params.networks, snakemake.input.metamers)), evaluators,
                     snakemake.threads, snakemake.output[0])
