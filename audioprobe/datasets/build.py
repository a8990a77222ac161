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


def build_manifest(root, settings: dict, manifest_path, rejected_path, log: logging.Logger = log,
                   name: str | None = None):
    """Ingest the dataset ``name`` (named in errors as ``datasets.<name>...``) and write both tables."""
    sources = naming.sources(root, label_settings(settings))
    refused = sum(source.rejection is not None for source in sources)
    log.info("%d audio files under %s (%d refused before reading)", len(sources), root, refused)
    clip_level = settings.get("clip_level", "warn")
    result = manifest.ingest(root, sources, clip_seconds=settings["clip_seconds"],
                             hop_seconds=settings.get("hop_seconds"), min_seconds=settings["min_seconds"],
                             on_bad_input=settings["on_bad_input"], clip_level=clip_level, dataset=name)
    for _, row in result.rejected.iterrows():
        log.warning("rejected %s: %s (%s)", row["path"], row["reason"], row["detail"])
    log_levels(result.clips, clip_level, log)
    log.info("%d clips from %d files; %d files rejected", len(result.clips),
             result.clips["path"].nunique(), len(result.rejected))
    record = {"root": str(root), **settings}
    write_csv(rejected_path, result.rejected, config=record)
    write_csv(manifest_path, result.clips, config=record)
    return result


def log_levels(clips, clip_level: str, log: logging.Logger) -> None:
    """One warning per file peaking above full scale (1.0), saying what was done about it."""
    files = clips.drop_duplicates("path")
    for _, row in files[files["peak"] > manifest.FULL_SCALE].iterrows():
        action = (f"scaled by {row['gain']:.6g} when read (clip_level: normalise)" if clip_level == "normalise"
                  else "kept as it is (clip_level: warn; set normalise to scale it, error to refuse it)")
        log.warning("%s peaks at %.6g, above full scale 1.0: %s", row["path"], row["peak"], action)
