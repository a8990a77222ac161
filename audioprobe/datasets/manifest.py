"""Manifests: the one table per dataset that every later step reads.

One row a clip::

    clip_id, path, offset, duration, sample_rate, channels, group, label_<factor> ...

``path`` is relative to the dataset's root and may not leave it; ``offset`` and ``duration`` (seconds)
locate the clip inside the source file; ``group`` names the recording the clip came from, so splits can
keep clips of one recording together.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audioprobe.io import audio

BASE_COLUMNS = ["clip_id", "path", "offset", "duration", "sample_rate", "channels", "group"]
LABEL_PREFIX = "label_"
REJECTED_COLUMNS = ["path", "reason", "detail"]


class ManifestError(ValueError):
    pass


@dataclass
class Source:
    """One audio file found under a dataset root, with its labels and recording group."""

    path: str
    labels: dict[str, str]
    group: str


@dataclass
class IngestResult:
    clips: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECTED_COLUMNS))


def safe_join(root, relative: str) -> Path:
    """``root / relative``, refusing absolute paths and paths that resolve outside ``root``."""
    root_real = Path(os.path.realpath(root))
    if os.path.isabs(relative):
        raise ManifestError(f"manifest path {relative!r} is absolute; paths must be relative to {root}")
    full = Path(os.path.realpath(root_real / relative))
    if full != root_real and root_real not in full.parents:
        raise ManifestError(f"manifest path {relative!r} leaves the data root {root}")
    return full


def ingest(root, sources: list[Source], *, clip_seconds: float, hop_seconds: float | None,
           min_seconds: float, on_bad_input: str) -> IngestResult:
    """Check every source file and cut it into clips.

    With ``hop_seconds`` set, a file is cut into windows of ``clip_seconds`` every ``hop_seconds`` (a file
    shorter than one window gives one clip). Without it each file is one clip. Files that cannot be used
    raise (``on_bad_input='fail'``) or are listed in ``rejected`` (``'skip'``).
    """
    if on_bad_input not in ("fail", "skip"):
        raise ManifestError(f"on_bad_input must be 'fail' or 'skip', not {on_bad_input!r}")
    if not sources:
        raise ManifestError(f"no audio files found under {root}")
    rows, rejected = [], []
    for source in sorted(sources, key=lambda s: s.path):
        try:
            full = safe_join(root, source.path)
            info = audio.probe(full)
            data, rate = audio.read(full)
            audio.check_signal(full, data, rate, min_seconds)
        except audio.BadAudio as bad:
            if on_bad_input == "fail":
                raise
            rejected.append({"path": source.path, "reason": bad.reason, "detail": bad.detail})
            continue
        seconds = data.shape[0] / rate
        for offset in _offsets(seconds, clip_seconds, hop_seconds):
            rows.append({"clip_id": clip_id(source.path, offset if hop_seconds else None),
                         "path": source.path, "offset": round(offset, 6),
                         "duration": round(min(clip_seconds, seconds - offset), 6),
                         "sample_rate": info.sample_rate, "channels": info.channels, "group": source.group,
                         **{LABEL_PREFIX + k: v for k, v in source.labels.items()}})
    clips = pd.DataFrame(rows)
    if clips.empty:
        raise ManifestError(f"every file under {root} was rejected; see the rejected-clips table")
    _check_unique(clips)
    return IngestResult(clips, pd.DataFrame(rejected, columns=REJECTED_COLUMNS))


def _offsets(seconds: float, clip_seconds: float, hop_seconds: float | None) -> list[float]:
    if not hop_seconds or seconds <= clip_seconds:
        return [0.0]
    count = int(np.floor((seconds - clip_seconds) / hop_seconds + 1e-9)) + 1
    return [i * hop_seconds for i in range(count)]


def clip_id(path: str, offset: float | None) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(path)[0])
    return stem if offset is None else f"{stem}@{int(round(offset * 1000)):07d}ms"


def _check_unique(clips: pd.DataFrame) -> None:
    duplicated = clips["clip_id"][clips["clip_id"].duplicated()]
    if len(duplicated):
        raise ManifestError(f"clip id {duplicated.iloc[0]!r} occurs twice; rename the source files")


def label_columns(clips: pd.DataFrame) -> list[str]:
    return [c for c in clips.columns if c.startswith(LABEL_PREFIX)]


def labels_of(clips: pd.DataFrame) -> dict[str, list[str]]:
    return {c[len(LABEL_PREFIX):]: clips[c].astype(str).tolist() for c in label_columns(clips)}


def read_manifest(path) -> pd.DataFrame:
    from audioprobe.io.atomic import read_csv

    clips = read_csv(path)
    missing = [c for c in BASE_COLUMNS if c not in clips.columns]
    if missing:
        raise ManifestError(f"{path} is not a manifest: missing columns {missing}")
    clips["group"] = clips["group"].astype(str)
    for column in label_columns(clips):
        clips[column] = clips[column].astype(str)
    return clips


def load_clip(root, row, sample_rate: int, samples: int) -> np.ndarray:
    """A manifest row as mono float32 at ``sample_rate``, cropped or zero-padded to ``samples``."""
    full = safe_join(root, row["path"])
    signal = audio.load_checked(full, sample_rate, start=float(row["offset"]), duration=float(row["duration"]))
    return audio.fit_length(signal, samples)
