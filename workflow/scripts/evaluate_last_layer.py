"""Last-layer dissection: do the output neurons' concepts name their classes?"""

from audioprobe.dissect.last_layer import last_layer_step
from audioprobe.workflow import setup

setup(snakemake)
last_layer_step(closed_path=snakemake.input.closed, top_path=snakemake.input.top, icl_path=snakemake.input.icl,
                head_path=snakemake.input.head, captions_path=snakemake.input.captions,
                out_csv=snakemake.output.table, out_png=snakemake.output.figure, settings=snakemake.params.dissect)
