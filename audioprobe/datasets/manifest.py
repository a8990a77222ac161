"""Manifests: the one table per dataset that every later step reads.

One row a clip::

    clip_id, path, offset, duration, sample_rate, channels, group, peak, [gain,] label_<factor> ...

``path`` is relative to the dataset's root and may not leave it; ``offset`` and ``duration`` (seconds)
locate the clip inside the source file; ``group`` names the recording the clip came from, so splits can
keep clips of one recording together. ``peak`` is the source file's largest absolute sample (above 1.0
only in float files); with ``clip_level: normalise`` a ``gain`` column scales such files to peak 1.0
when :func:`load_clip` reads them.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from audioprobe.io import audio
from audioprobe.io.atomic import is_within

BASE_COLUMNS = ["clip_id", "path", "offset", "duration", "sample_rate", "channels", "group"]
LABEL_PREFIX = "label_"
REJECTED_COLUMNS = ["path", "reason", "detail"]
FULL_SCALE = 1.0
ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class ManifestError(ValueError):
    pass


@dataclass
class Source:
    """One audio file found under a dataset root, with its labels and recording group.

    ``rejection`` is ``(reason, detail)`` for a file already known to be unusable before it is read (a
    missing label, a FIFO, a link leaving the root): ingest records it like a bad file. ``origin`` is
    ``(label table, line)`` for a source read from a label table, so that rejections can name the line.
    """

    path: str
    labels: dict[str, str]
    group: str
    rejection: tuple[str, str] | None = None
    origin: tuple[str, int] | None = None

    @classmethod
    def rejected(cls, path: str, reason: str, detail: str) -> "Source":
        return cls(path, {}, path, (reason, detail))


@dataclass
class IngestResult:
    clips: pd.DataFrame
    rejected: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REJECTED_COLUMNS))


def inside(root_real, path) -> bool:
    """Whether ``path``, with every symbolic link resolved, is the folder ``root_real`` (a real path) or
    lies under it."""
    return is_within(os.path.realpath(path), os.fspath(root_real))


def safe_join(root, relative: str) -> Path:
    """``root / relative``, refusing absolute paths and paths that resolve outside ``root``."""
    root_real = os.path.realpath(root)
    if os.path.isabs(relative):
        raise ManifestError(f"manifest path {relative!r} is absolute; paths must be relative to {root}")
    full = os.path.join(root_real, relative)
    if not inside(root_real, full):
        raise ManifestError(f"manifest path {relative!r} leaves the data root {root}")
    return Path(os.path.realpath(full))


def ingest(root, sources: list[Source], *, clip_seconds: float, hop_seconds: float | None = None,
           min_seconds: float, on_bad_input: str, clip_level: str = "warn",
           dataset: str | None = None) -> IngestResult:
    """Check every source file and cut it into clips.

    With ``hop_seconds`` set, a file is cut into windows of ``clip_seconds`` every ``hop_seconds`` (a file
    shorter than one window gives one clip). Without it each file is one clip. Files that cannot be used
    raise (``on_bad_input='fail'``) or are listed in ``rejected`` (``'skip'``). Files peaking above 1.0
    are kept (``clip_level='warn'``), stop the ingest (``'error'``, whatever ``on_bad_input`` says), or
    are kept with a ``gain`` that scales them to peak 1.0 (``'normalise'``). ``dataset`` names the
    config key in errors. The config schema checks ``on_bad_input`` and ``clip_level`` (and gives their
    defaults) before any job; they are not checked again here.
    """
    if not sources:
        raise ManifestError(f"no audio files found under {root}")
    sources = reject_duplicates(root, sources)
    stems = clip_stems([s.path for s in sources])
    level_key = f"datasets.{dataset}.clip_level" if dataset else "clip_level"
    rows, rejected = [], []
    for source in sorted(sources, key=lambda s: (s.rejection is None, s.path)):  # known-bad first: fail early
        try:
            data, info = _read_source(root, source, min_seconds)
        except audio.BadAudio as bad:
            if on_bad_input == "fail":
                _raise_bad(source, bad)
            rejected.append({"path": source.path, "reason": bad.reason, "detail": bad.detail})
            continue
        level = _level(source.path, audio.peak(data), clip_level, level_key)
        rows.extend(_clip_rows(source, stems[source.path], data.shape[0] / info.sample_rate, info, level,
                               clip_seconds, hop_seconds))
    clips = pd.DataFrame(rows)
    if clips.empty:
        raise ManifestError(f"every file under {root} was rejected; see the rejected-clips table")
    check_unique_ids(clips)
    rejected = sorted(rejected, key=lambda r: r["path"])
    return IngestResult(clips, pd.DataFrame(rejected, columns=REJECTED_COLUMNS))


def _read_source(root, source: Source, min_seconds: float) -> tuple[np.ndarray, audio.AudioInfo]:
    """Decode and check one source; every problem is a :class:`audio.BadAudio` with a reason."""
    if source.rejection:
        raise audio.BadAudio(source.path, *source.rejection)
    try:
        full = safe_join(root, source.path)
    except ManifestError as err:
        raise audio.BadAudio(source.path, "outside_root", str(err)) from None
    data, info = audio.decode(full)
    audio.check_signal(full, data, info.sample_rate, min_seconds)
    return data, info


def _raise_bad(source: Source, bad: audio.BadAudio):
    """Under ``on_bad_input: fail``: audio problems raise as they are, listing problems as ManifestError."""
    if source.rejection is None and bad.reason != "outside_root":
        raise bad
    raise ManifestError(f"{bad}; fix the file or the label table, or set on_bad_input: skip to "
                        f"list it in rejected.csv and go on") from None


def reject_duplicates(root, sources: list[Source]) -> list[Source]:
    """Every file once: the first source that reaches a file is kept, later ones are rejected ``duplicate``.

    Files are told apart by their real path under ``root``, so a row of the label table given again, and
    a file reached a second time through a symbolic link (to it, or to a folder above it), are the same
    case. Sources already rejected are passed on as they are, and do not count as the first.
    """
    first: dict[str, Source] = {}
    out = []
    for source in sources:
        if source.rejection is None:
            key = os.path.realpath(os.path.join(root, source.path))
            kept = first.setdefault(key, source)
            if kept is not source:
                source = Source.rejected(source.path, "duplicate", _duplicate_detail(source, kept))
        out.append(source)
    return out


def _duplicate_detail(source: Source, kept: Source) -> str:
    linked = os.path.normpath(source.path) != os.path.normpath(kept.path)
    if source.origin and kept.origin:
        table, line = source.origin
        same = f"the same file as {kept.path!r} (via a symbolic link) on" if linked else "it again (first on"
        close = "" if linked else ")"
        return f"{table} line {line} lists {same} line {kept.origin[1]}{close}; delete one row"
    if linked:
        return f"the same file as {kept.path} (via a symbolic link), which is read instead"
    return f"the same file as {kept.path}, listed again"


@dataclass(frozen=True)
class Level:
    peak: float
    gain: float | None  # set under clip_level: normalise


def _level(path: str, peak: float, clip_level: str, key: str) -> Level:
    if peak > FULL_SCALE and clip_level == "error":
        raise ManifestError(f"{path} peaks at {peak:.6g}, above full scale 1.0 ({key}: error); scale the "
                            f"file to [-1, 1], or set {key} to warn (keep it) or normalise (scale it to 1.0)")
    if clip_level != "normalise":
        return Level(peak, None)
    return Level(peak, FULL_SCALE / peak if peak > FULL_SCALE else 1.0)


def _clip_rows(source: Source, stem: str, seconds: float, info: audio.AudioInfo, level: Level,
               clip_seconds: float, hop_seconds: float | None) -> list[dict]:
    extra = {"peak": float(f"{level.peak:.6g}")}
    if level.gain is not None:
        extra["gain"] = level.gain
    return [{"clip_id": clip_id(stem, offset if hop_seconds else None), "path": source.path,
             "offset": round(offset, 6), "duration": round(min(clip_seconds, seconds - offset), 6),
             "sample_rate": info.sample_rate, "channels": info.channels, "group": source.group, **extra,
             **{LABEL_PREFIX + k: v for k, v in source.labels.items()}}
            for offset in _offsets(seconds, clip_seconds, hop_seconds)]


def _offsets(seconds: float, clip_seconds: float, hop_seconds: float | None) -> list[float]:
    if not hop_seconds or seconds <= clip_seconds:
        return [0.0]
    count = int(np.floor((seconds - clip_seconds) / hop_seconds + 1e-9)) + 1
    return [i * hop_seconds for i in range(count)]


def clip_id(stem: str, offset: float | None) -> str:
    """A file's id stem (see :func:`clip_stems`), with the window's offset when files are cut."""
    return stem if offset is None else f"{stem}@{int(round(offset * 1000)):07d}ms"


def clip_stems(paths: list[str]) -> dict[str, str]:
    """A unique clip-id stem for every relative path: a pure function of the set of paths.

    The stem is the path without its extension, folders joined by ``_``, accents dropped (NFKD) and any
    other character outside ``A-Za-z0-9_.-`` replaced by ``_``: ``dog/a b.wav`` -> ``dog_a_b``. A name
    with characters that have no ASCII form gets ``-`` and a short hash of its path (``猫.wav`` ->
    ``_-<hash>``). Paths whose stems still clash keep their extension when that tells them apart
    (``x.mp3``, ``x.ogg``); otherwise every clashing path whose stem had to be changed gets the hash
    (``ä.wav`` -> ``a-<hash>`` beside ``a.wav``, which keeps ``a``). The hash is of the path in Unicode
    NFC form, so a name spelled decomposed (NFD, as macOS writes file names) gets the same id.
    """
    paths = sorted(set(paths))
    keep_extension, hashed = set(), set()

    def stems() -> dict[str, str]:
        return {p: _stem(p, p in keep_extension, p in hashed) for p in paths}

    for group in _clashes(stems()):
        exact = [p for p in group if _is_exact(p)]
        if len({_extension(p) for p in group}) == len(group):
            keep_extension.update(group)
            continue
        keep_extension.update(exact if len(exact) > 1 else [])
        hashed.update(p for p in group if p not in exact)
    for group in _clashes(stems()):  # what the extension made clash anew, e.g. x.mp3 beside x.mp3.wav
        hashed.update(group)
    return stems()


def _stem(path: str, keep_extension: bool, hashed: bool) -> str:
    text = unicodedata.normalize("NFKD", path if keep_extension else os.path.splitext(path)[0])
    ascii_text = "".join(c for c in text if not unicodedata.combining(c))
    stem = ID_UNSAFE.sub("_", ascii_text)
    if hashed or not ascii_text.isascii():
        stem += "-" + hashlib.sha1(unicodedata.normalize("NFC", path).encode()).hexdigest()[:8]
    return stem


def _is_exact(path: str) -> bool:
    """Whether the stem is the file name without its extension, unchanged (no folder, nothing replaced)."""
    stem = os.path.splitext(path)[0]
    return ID_UNSAFE.sub("_", stem) == stem


def _extension(path: str) -> str:
    return os.path.splitext(path)[1]


def _clashes(stems: dict[str, str]) -> list[list[str]]:
    by_stem: dict[str, list[str]] = {}
    for path, stem in stems.items():
        by_stem.setdefault(stem, []).append(path)
    return [group for group in by_stem.values() if len(group) > 1]


def check_unique_ids(clips: pd.DataFrame) -> None:
    """Raise naming both paths when two clips share an id (the id rule should make that impossible)."""
    first = clips.drop_duplicates("clip_id").set_index("clip_id")["path"]
    for _, row in clips[clips["clip_id"].duplicated()].iterrows():
        raise ManifestError(f"clip id {row['clip_id']!r} is given to both {first[row['clip_id']]!r} and "
                            f"{row['path']!r}; this is a bug in the id rule (manifest.clip_stems), please "
                            f"report it with both file names")


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
    for column in ["group", *label_columns(clips)]:
        _require_filled(clips, column, path)
        clips[column] = clips[column].astype(str)
    return clips


def _require_filled(clips: pd.DataFrame, column: str, path) -> None:
    """An empty cell would become the label 'nan'; refuse it, naming the column and the clip."""
    empty = clips[column].isna()
    if empty.any():
        first = clips.loc[empty, "clip_id"].iloc[0]
        raise ManifestError(f"{path}: column {column!r} is empty for clip {first!r} ({int(empty.sum())} clips); "
                            f"rebuild the manifest (ingest rejects files with empty labels as missing_label)")


def load_clip(root, row, sample_rate: int, samples: int) -> np.ndarray:
    """A manifest row as mono float32 at ``sample_rate``, cropped or zero-padded to ``samples``.

    A ``gain`` column (``clip_level: normalise``) scales the signal, so a float file peaking above 1.0
    arrives with peak 1.0.
    """
    full = safe_join(root, row["path"])
    signal = audio.load_checked(full, sample_rate, start=float(row["offset"]), duration=float(row["duration"]))
    gain = row.get("gain")
    if gain is not None and pd.notna(gain) and float(gain) != 1.0:
        signal = (signal * np.float32(gain)).astype(np.float32)
    return audio.fit_length(signal, samples)
