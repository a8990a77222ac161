"""Label schemes: how the files under a dataset root get their labels and recording groups.

- ``csv``: a table with a path column and label columns (``labels.csv``, ``labels.path_column``,
  ``labels.columns``, optional ``labels.group_column``).
- ``latentaudio``: LatentAudio's ``{Material}{Action}.wav`` recordings, one letter each, with an optional
  ``_take`` suffix (``WT.wav``, ``MR_02.wav``); letters map to names through ``labels.materials`` and
  ``labels.actions``.
- ``speech-commands``: ``<word>/<speaker>_nohash_<n>.wav``; label ``word``, group ``speaker``.
- ``folder``: label ``class`` from the parent folder, one group per file.
"""

from __future__ import annotations

import os
from pathlib import Path

from audioprobe.datasets.manifest import ManifestError, Source, safe_join
from audioprobe.io.audio import is_audio_file

LATENTAUDIO_MATERIALS = {"W": "wood", "M": "metal", "G": "glass", "S": "stone", "C": "cardboard", "P": "plastic"}
LATENTAUDIO_ACTIONS = {"T": "tapping", "R": "rubbing", "D": "destructing", "W": "whirling"}


def audio_files(root) -> list[str]:
    """Relative paths of every audio file under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"dataset root {root} is not a folder")
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            if is_audio_file(name):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def sources(root, labels: dict) -> list[Source]:
    scheme = labels.get("scheme", "folder")
    if scheme not in SCHEMES:
        raise ManifestError(f"labels.scheme {scheme!r} is unknown; use one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme](root, labels)


def from_csv(root, labels: dict) -> list[Source]:
    import pandas as pd

    table_path = safe_join(root, labels["csv"]) if not os.path.isabs(labels["csv"]) else Path(labels["csv"])
    if not table_path.is_file():
        raise ManifestError(f"labels.csv: {table_path} does not exist")
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    path_column = labels.get("path_column", "path")
    columns = labels.get("columns") or [c for c in table.columns if c != path_column]
    missing = [c for c in [path_column, *columns, labels.get("group_column")] if c and c not in table.columns]
    if missing:
        raise ManifestError(f"labels.csv {table_path} has no column {missing[0]!r}; it has {list(table.columns)}")
    out = []
    for _, row in table.iterrows():
        group = row[labels["group_column"]] if labels.get("group_column") else row[path_column]
        out.append(Source(row[path_column], {c: row[c] for c in columns}, str(group)))
    return out


def from_latentaudio(root, labels: dict) -> list[Source]:
    materials = labels.get("materials") or LATENTAUDIO_MATERIALS
    actions = labels.get("actions") or LATENTAUDIO_ACTIONS
    out = []
    for path in audio_files(root):
        stem = Path(path).stem
        code = stem.split("_", 1)[0]
        if len(code) != 2 or code[0] not in materials or code[1] not in actions:
            raise ManifestError(
                f"{path}: a LatentAudio file name starts with a material letter ({''.join(materials)}) and an "
                f"action letter ({''.join(actions)}), e.g. WT.wav or WT_01.wav")
        out.append(Source(path, {"material": materials[code[0]], "action": actions[code[1]]}, stem))
    return out


def from_speech_commands(root, labels: dict) -> list[Source]:
    out = []
    for path in audio_files(root):
        parts = Path(path).parts
        if len(parts) != 2:
            raise ManifestError(f"{path}: Speech Commands files sit one folder deep: <word>/<speaker>_nohash_<n>.wav")
        word, name = parts
        if word.startswith("_"):  # _background_noise_ and similar are not keywords
            continue
        speaker = name.split("_nohash_", 1)[0]
        out.append(Source(path, {"word": word}, speaker))
    return out


def from_folder(root, labels: dict) -> list[Source]:
    out = []
    for path in audio_files(root):
        parent = Path(path).parent.name
        out.append(Source(path, {"class": parent or "unlabelled"}, path))
    return out


SCHEMES = {"csv": from_csv, "latentaudio": from_latentaudio, "speech-commands": from_speech_commands,
           "folder": from_folder}
