"""Clip-concept similarities: caption text vs concepts (DB) and, with CLAP, audio vs concepts (TAB)."""

from audioprobe.dissect.concepts import concept_scores_step
from audioprobe.workflow import setup

setup(snakemake)
concept_scores_step(concept_paths=snakemake.input.concepts, captions_path=snakemake.input.captions,
                    manifest_path=snakemake.input.manifest, split_path=snakemake.input.split,
                    out_h5=snakemake.output[0], settings=snakemake.params.dissect, root=snakemake.params.root)
