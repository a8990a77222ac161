"""Download a model file once, verifying its sha256."""

from audioprobe.io.download import download
from audioprobe.workflow import setup

log = setup(snakemake)
download(snakemake.params.url, snakemake.output[0], snakemake.params.sha256, config_key=snakemake.params.config_key)
