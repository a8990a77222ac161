"""From a dataset's settings to its manifest and rejected-clips table."""

from __future__ import annotations

import logging

from audioprobe.datasets import esc50, manifest, naming
from audioprobe.io.atomic import write_csv

log = logging.getLogger(__name__)

GENERATED_SCHEMES = {"maas-synth": {"scheme": "latentaudio"}, "commands-synth": {"scheme": "speech-commands"},
                     "esc50": esc50.LABEL_SCHEME}


def label_settings(settings: dict) -> dict:
    return GENERATED_SCHEMES.get(settings["kind"]) or settings.get("labels") or {}


def build_manifest(root, settings: dict, manifest_path, rejected_path, log: logging.Logger = log):
    sources = naming.sources(root, label_settings(settings))
    log.info("%d audio files under %s", len(sources), root)
    result = manifest.ingest(root, sources, clip_seconds=settings["clip_seconds"],
                             hop_seconds=settings.get("hop_seconds"), min_seconds=settings["min_seconds"],
                             on_bad_input=settings["on_bad_input"])
    for _, row in result.rejected.iterrows():
        log.warning("rejected %s: %s (%s)", row["path"], row["reason"], row["detail"])
    log.info("%d clips from %d files; %d files rejected", len(result.clips),
             result.clips["path"].nunique(), len(result.rejected))
    record = {"root": str(root), **settings}
    write_csv(rejected_path, result.rejected, config=record)
    write_csv(manifest_path, result.clips, config=record)
    return result
