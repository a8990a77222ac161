"""Caption every probe (or held-out) clip with the configured backend (cached by audio content)."""

from audioprobe.dissect.caption_step import captions_step
from audioprobe.workflow import setup

setup(snakemake)
captions_step(manifest_path=snakemake.input.manifest, root=snakemake.params.root, split_path=snakemake.input.split,
              out_csv=snakemake.output[0], settings=snakemake.params.captions,
              class_map_path=snakemake.input.get("class_map"), which=snakemake.params.get("which", "probe"))
