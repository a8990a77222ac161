"""One pass of a model over a dataset's clips, every requested layer streamed into its own HDF5 file (reduced or
projected at extraction for a layer that activations.store stores pooled or projected)."""

from pathlib import Path

from audioprobe import activations, models
from audioprobe.datasets.manifest import read_manifest
from audioprobe.workflow import setup

log = setup(snakemake)
settings = snakemake.params.settings
model = models.load(snakemake.params.model, settings["model"], snakemake.params.weights, threads=snakemake.threads)
outputs = {Path(path).stem: path for path in snakemake.output}
clips = read_manifest(snakemake.input.manifest)
log.info("%d clips, layers %s, weights sha256 %s", len(clips), ", ".join(outputs), model.weights_sha256)
activations.extract(model, clips, snakemake.params.root, outputs, clip_seconds=settings["clip_seconds"],
                    batch_size=settings["batch_size"], dtype=settings["dtype"], compression=settings["compression"],
                    attrs={"dataset": snakemake.wildcards.dataset, "config": settings},
                    pooled=settings.get("stored_pooled"), projected=settings.get("stored_projected"))
