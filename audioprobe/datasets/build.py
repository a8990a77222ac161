"""From a dataset's settings to its manifest and rejected-clips table."""

from __future__ import annotations

import logging

from audioprobe.datasets import esc50, manifest, naming
from audioprobe.io.atomic import write_csv

log = logging.getLogger(__name__)

INGEST_SETTINGS = ("clip_seconds", "hop_seconds", "min_seconds", "on_bad_input", "clip_level")
GENERATED_SCHEMES = {"maas-synth": {"scheme": "latentaudio"}, "commands-synth": {"scheme": "speech-commands"},
                     "esc50": esc50.LABEL_SCHEME}


def label_settings(settings: dict) -> dict:
    return GENERATED_SCHEMES.get(settings["kind"]) or settings.get("labels") or {}


def build_manifest(root, settings: dict, manifest_path, rejected_path, log: logging.Logger = log,
                   name: str | None = None):
    """Ingest the dataset ``name`` (named in errors as ``datasets.<name>...``) and write both tables.

    ``settings`` are the dataset's entry as the workflow passes it, checked and with the schema's defaults
    filled in before any job; they go to :func:`manifest.ingest` as they are (a caller that leaves one out
    gets ingest's own default).
    """
    sources = naming.sources(root, label_settings(settings))
    refused = sum(source.rejection is not None for source in sources)
    log.info("%d audio files under %s (%d refused before reading)", len(sources), root, refused)
    options = {key: settings[key] for key in INGEST_SETTINGS if key in settings}
    result = manifest.ingest(root, sources, **options, dataset=name)
    for _, row in result.rejected.iterrows():
        log.warning("rejected %s: %s (%s)", row["path"], row["reason"], row["detail"])
    log_levels(result.clips, log)
    log.info("%d clips from %d files; %d files rejected", len(result.clips),
             result.clips["path"].nunique(), len(result.rejected))
    record = {"root": str(root), **settings}
    write_csv(rejected_path, result.rejected, config=record)
    write_csv(manifest_path, result.clips, config=record)
    return result


def log_levels(clips, log: logging.Logger) -> None:
    """One warning per file peaking above full scale (1.0), saying what was done about it (a ``gain``
    column means ``clip_level: normalise``; ``error`` has stopped the ingest before)."""
    files = clips.drop_duplicates("path")
    for _, row in files[files["peak"] > manifest.FULL_SCALE].iterrows():
        action = (f"scaled by {row['gain']:.6g} when read (clip_level: normalise)" if "gain" in files.columns
                  else "kept as it is (clip_level: warn; set normalise to scale it, error to refuse it)")
        log.warning("%s peaks at %.6g, above full scale 1.0: %s", row["path"], row["peak"], action)
