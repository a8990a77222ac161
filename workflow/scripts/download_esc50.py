"""Fetch the ESC-50 archive once (checksum-verified when pinned) and unpack its audio and labels."""

from audioprobe.datasets.esc50 import fetch_archive, unpack
from audioprobe.workflow import setup

setup(snakemake)
settings = snakemake.params.settings
fetch_archive(settings["url"], snakemake.params.archive, settings["sha256"], config_key=snakemake.params.config_key)
unpack(snakemake.params.archive, snakemake.output[0])
