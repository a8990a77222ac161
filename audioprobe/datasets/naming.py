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

from audioprobe.datasets.manifest import ManifestError, Source, inside, safe_join
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
    """Walk ``root`` without opening anything, following symbolic links that stay inside it.

    Files under a linked folder are listed under the link's path (``dog/x.wav`` for ``dog -> _pool/v2``),
    so labels taken from folder names use the link's name. A file reached by two paths is listed under
    both; ingest keeps the first in sorted order and rejects the others as ``duplicate``
    (:func:`manifest.reject_duplicates`). A link back to a folder being walked (a loop) is not followed:
    its files are listed under that folder already. FIFOs, sockets and devices named like audio, broken
    links, links to files or folders outside the root and folders that cannot be listed are refused, and
    recorded.
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

    walking = {os.path.normpath(root): root_real}  # every folder on the current path -> its real path
    for folder, folders, names in os.walk(root, onerror=unlistable, followlinks=True):
        above = _real_path_chain(walking, folder, root)
        followed = []
        for name in sorted(folders):
            full = os.path.join(folder, name)
            real = os.path.realpath(full)
            if os.path.islink(full) and not inside(root_real, full):
                rejected.append(Source.rejected(relative(full), "outside_root",
                                                f"symbolic link to the folder {real}, outside the root; its "
                                                f"files were not read"))
            elif real not in above:  # a link back to a folder on the way here is a loop
                walking[os.path.normpath(full)] = real
                followed.append(name)
        folders[:] = followed
        for name in filter(is_audio_file, names):
            full = os.path.join(folder, name)
            problem = _file_problem(root_real, full)
            if problem:
                rejected.append(Source.rejected(relative(full), *problem))
            else:
                files.append(relative(full))
    return Found(sorted(files), sorted(rejected, key=lambda s: s.path))


def _real_path_chain(walking: dict[str, str], folder: str, root: Path) -> set[str]:
    """The real paths of ``folder`` and of every folder above it up to ``root``."""
    chain, path, top = set(), os.path.normpath(folder), os.path.normpath(root)
    while True:
        chain.add(walking[path])
        if path == top:
            return chain
        path = os.path.dirname(path)


def _file_problem(root_real: str, full: str) -> tuple[str, str] | None:
    """(reason, detail) for a name that must not be opened as audio, else None."""
    if os.path.islink(full) and not inside(root_real, full):
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
    """One source per row of the label table; rows with an empty cell are rejected per row (a row listing a
    file again is found by ingest, :func:`manifest.reject_duplicates`, which names both lines)."""
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
    out = []
    for index, row in enumerate(table.to_dict("records")):
        origin = (labels["csv"], index + 2)  # the header is line 1
        path = row[path_column]
        group = row[group_column] if group_column else path
        source = Source(path, {c: row[c] for c in columns}, str(group), origin=origin)
        empty = [c for c in [*columns, group_column] if c and not row[c].strip()]
        if not path.strip():
            source = Source.rejected(path, "missing_path", f"{origin[0]} line {origin[1]}: the path cell "
                                                           f"(column {path_column!r}) is empty")
        elif empty:
            source = Source.rejected(path, "missing_label", f"{origin[0]} line {origin[1]}: column "
                                                            f"{empty[0]!r} is empty")
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
        if parts[0].startswith("_"):  # _background_noise_ and similar are not keywords
            continue
        if len(parts) != 2:
            raise ManifestError(f"{path}: Speech Commands files sit one folder deep: <word>/<speaker>_nohash_<n>.wav")
        word, name = parts
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
