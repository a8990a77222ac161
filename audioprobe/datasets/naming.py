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
from dataclasses import dataclass
from pathlib import Path

from audioprobe.datasets.manifest import ManifestError, Source, safe_join
from audioprobe.io.audio import BadAudio, is_audio_file, require_regular_file

LATENTAUDIO_MATERIALS = {"W": "wood", "M": "metal", "G": "glass", "S": "stone", "C": "cardboard", "P": "plastic"}
LATENTAUDIO_ACTIONS = {"T": "tapping", "R": "rubbing", "D": "destructing", "W": "whirling"}


@dataclass
class Found:
    """The audio files under a root, and the ones found but refused (as rejected sources)."""

    files: list[str]
    rejected: list[Source]


def audio_files(root) -> list[str]:
    """Relative paths of the regular audio files under ``root``, sorted (see :func:`find_audio`)."""
    return find_audio(root).files


def find_audio(root) -> Found:
    """Walk ``root`` without opening anything.

    FIFOs, sockets and devices named like audio, broken links, links to files outside the root, symbolic
    links to folders outside the root and folders that cannot be listed are refused, and recorded.
    Symbolic links to folders inside the root are not walked again: their files are found, once, under
    their real paths.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"dataset root {root} is not a folder")
    root_real = os.path.realpath(root)
    files, rejected = [], []

    def relative(full) -> str:
        return os.path.relpath(full, root)

    def unlistable(err: OSError) -> None:
        rejected.append(Source.rejected(relative(err.filename), "unreadable",
                                        f"folder cannot be listed: {err.strerror}"))

    for folder, folders, names in os.walk(root, onerror=unlistable):
        for name in folders:
            full = os.path.join(folder, name)
            if os.path.islink(full) and not _inside(root_real, full):
                rejected.append(Source.rejected(relative(full), "outside_root",
                                                f"symbolic link to the folder {os.path.realpath(full)}, outside "
                                                f"the root; its files were not read"))
        for name in filter(is_audio_file, names):
            full = os.path.join(folder, name)
            problem = _file_problem(root_real, full)
            if problem:
                rejected.append(Source.rejected(relative(full), *problem))
            else:
                files.append(relative(full))
    return Found(sorted(files), sorted(rejected, key=lambda s: s.path))


def _inside(root_real: str, full: str) -> bool:
    real = os.path.realpath(full)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _file_problem(root_real: str, full: str) -> tuple[str, str] | None:
    """(reason, detail) for a name that must not be opened as audio, else None."""
    if os.path.islink(full) and not _inside(root_real, full):
        return "outside_root", f"symbolic link to {os.path.realpath(full)}, outside the root"
    try:
        require_regular_file(full)
    except BadAudio as bad:
        return bad.reason, bad.detail
    return None


def sources(root, labels: dict) -> list[Source]:
    """Every audio file of the dataset with its labels; files refused on the way carry a ``rejection``."""
    scheme = labels.get("scheme", "folder")
    if scheme not in SCHEMES:
        raise ManifestError(f"labels.scheme {scheme!r} is unknown; use one of {', '.join(SCHEMES)}")
    return SCHEMES[scheme](root, labels)


def from_csv(root, labels: dict) -> list[Source]:
    """One source per row of the label table; empty label cells and repeated paths are rejected per row."""
    import pandas as pd

    table_path = safe_join(root, labels["csv"]) if not os.path.isabs(labels["csv"]) else Path(labels["csv"])
    if not table_path.is_file():
        raise ManifestError(f"labels.csv: {table_path} does not exist")
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    path_column = labels.get("path_column", "path")
    columns = labels.get("columns") or [c for c in table.columns if c != path_column]
    group_column = labels.get("group_column")
    missing = [c for c in [path_column, *columns, group_column] if c and c not in table.columns]
    if missing:
        raise ManifestError(f"labels.csv {table_path} has no column {missing[0]!r}; it has {list(table.columns)}")
    out, first_line = [], {}
    for index, row in enumerate(table.to_dict("records")):
        line = index + 2  # the header is line 1
        path = row[path_column]
        group = row[group_column] if group_column else path
        source = Source(path, {c: row[c] for c in columns}, str(group))
        key = os.path.normpath(path)
        empty = [c for c in [path_column, *columns, group_column] if c and not row[c].strip()]
        if key in first_line:
            source = Source.rejected(path, "duplicate", f"{labels['csv']} line {line} lists it again "
                                                        f"(first on line {first_line[key]}); delete one row")
        elif empty:
            source = Source.rejected(path, "missing_label", f"{labels['csv']} line {line}: column "
                                                            f"{empty[0]!r} is empty")
        first_line.setdefault(key, line)
        out.append(source)
    return out


def from_latentaudio(root, labels: dict) -> list[Source]:
    materials = labels.get("materials") or LATENTAUDIO_MATERIALS
    actions = labels.get("actions") or LATENTAUDIO_ACTIONS
    found = find_audio(root)
    out = list(found.rejected)
    for path in found.files:
        stem = Path(path).stem
        code = stem.split("_", 1)[0]
        if len(code) != 2 or code[0] not in materials or code[1] not in actions:
            raise ManifestError(
                f"{path}: a LatentAudio file name starts with a material letter ({''.join(materials)}) and an "
                f"action letter ({''.join(actions)}), e.g. WT.wav or WT_01.wav")
        out.append(Source(path, {"material": materials[code[0]], "action": actions[code[1]]}, stem))
    return out


def from_speech_commands(root, labels: dict) -> list[Source]:
    found = find_audio(root)
    out = list(found.rejected)
    for path in found.files:
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
    found = find_audio(root)
    out = list(found.rejected)
    for path in found.files:
        parent = Path(path).parent.name
        out.append(Source(path, {"class": parent or "unlabelled"}, path))
    return out


SCHEMES = {"csv": from_csv, "latentaudio": from_latentaudio, "speech-commands": from_speech_commands,
           "folder": from_folder}
