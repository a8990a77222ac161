"""Hold out whole recording groups from probing; the rest are the probe clips."""

from audioprobe.dissect.probing import make_split
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.dissect
make_split(snakemake.input[0], snakemake.output[0], label=settings["label"], split=settings["split"])
