"""Targets: brain or behavioural responses to the clips of a dataset, read and checked once at ingest.

A target file holds stimulus ids (the ``clip_id`` of the stimuli dataset's manifest) and a responses array
[stimuli, channels], or [stimuli, channels, repetitions] or [stimuli, channels, participants] (``axes``):

- HDF5 (.h5, .hdf5) or NPZ (.npz): arrays named ``stimulus_id`` (strings) and ``responses`` (numbers), or other
  names given by ``id_key`` and ``responses_key``. NPZ files are read without pickle.
- CSV (.csv): a ``stimulus_id`` column (``id_key``) and one numeric column per channel, so [stimuli, channels]
  only.

Ingest checks every stimulus id against the manifest (unknown or repeated ids, missing values and shapes are
errors naming the file) and writes the responses in the manifest's clip order with their clip ids.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from audioprobe.io.store import read_strings, write_arrays

log = logging.getLogger(__name__)

AXES = (["stimuli", "channels"], ["stimuli", "channels", "repetitions"], ["stimuli", "channels", "participants"])
MIN_STIMULI = 4


class Responses:
    """Checked responses: ``clip_ids`` [stimuli], ``values`` with ``axes`` (see the module docstring)."""

    def __init__(self, clip_ids: list[str], values: np.ndarray, axes: list[str]):
        self.clip_ids, self.values, self.axes = list(clip_ids), values, list(axes)

    @property
    def third_axis(self) -> str | None:
        return self.axes[2] if len(self.axes) == 3 else None


def read_raw(path, id_key: str = "stimulus_id", responses_key: str = "responses") -> tuple[list[str], np.ndarray]:
    """(stimulus ids, responses array) of an HDF5, NPZ or CSV file, or a ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such responses file (datasets.<target>.responses)")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        with h5py.File(path, "r") as handle:
            _require_keys(path, list(handle), id_key, responses_key)
            return read_strings(handle[id_key]), np.asarray(handle[responses_key][()])
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            _require_keys(path, list(arrays.files), id_key, responses_key)
            return [str(s) for s in arrays[id_key]], np.asarray(arrays[responses_key])
    if suffix == ".csv":
        table = pd.read_csv(path, dtype={id_key: str})
        _require_keys(path, list(table.columns), id_key)
        channels = table.drop(columns=id_key)
        text = [c for c in channels if not pd.api.types.is_numeric_dtype(channels[c])]
        if text:
            raise ValueError(f"{path}: column {text[0]!r} is not numeric; a responses CSV has {id_key!r} and one "
                             "numeric column per channel")
        return table[id_key].tolist(), channels.to_numpy(dtype=float)
    raise ValueError(f"{path}: responses must be an HDF5 (.h5, .hdf5), NPZ (.npz) or CSV (.csv) file")


def _require_keys(path, present: list[str], *keys: str) -> None:
    missing = [key for key in keys if key not in present]
    if missing:
        raise ValueError(f"{path} has no {missing[0]!r} (it has {', '.join(map(str, present)) or 'nothing'}); "
                         "name the arrays stimulus_id and responses, or set id_key / responses_key")


def check_responses(ids: list[str], values: np.ndarray, axes: list[str], clip_ids: list[str], path) -> Responses:
    """The responses reordered to the manifest's clip order, or a ValueError naming ``path`` and the problem."""
    if list(axes) not in [list(a) for a in AXES]:
        raise ValueError(f"axes must be one of {[list(a) for a in AXES]}, got {axes!r}")
    values = np.asarray(values)
    if values.ndim != len(axes):
        raise ValueError(f"{path}: responses have {values.ndim} dimensions {values.shape}, but axes says "
                         f"{len(axes)} ({', '.join(axes)})")
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.complexfloating):
        raise ValueError(f"{path}: responses must be real numbers, got dtype {values.dtype}")
    if len(ids) != values.shape[0]:
        raise ValueError(f"{path}: {len(ids)} stimulus ids but {values.shape[0]} rows of responses")
    repeated = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
    if repeated:
        raise ValueError(f"{path}: stimulus ids {repeated[:5]} appear more than once; give one row per stimulus "
                         "(average repetitions, or put them on a third axis)")
    unknown = [i for i in ids if i not in set(clip_ids)]
    if unknown:
        raise ValueError(f"{path}: stimulus ids {unknown[:5]} ({len(unknown)} in all) are not clip ids of the "
                         "stimuli dataset's manifest; ids must equal its clip_id column")
    bad = ~np.isfinite(values.astype(float))
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))
        raise ValueError(f"{path}: responses of stimuli {[ids[r] for r in rows[:5]]} hold NaN or infinite values "
                         f"({int(bad.sum())} values); drop those stimuli or channels first")
    if values.shape[0] < MIN_STIMULI or values.shape[1] < 1 or (values.ndim == 3 and values.shape[2] < 2):
        raise ValueError(f"{path}: responses of shape {values.shape} are too small: at least {MIN_STIMULI} stimuli, "
                         "one channel, and 2 repetitions or participants on a third axis")
    order = [i for i in clip_ids if i in set(ids)]
    position = {stimulus: row for row, stimulus in enumerate(ids)}
    return Responses(order, values[[position[i] for i in order]].astype(np.float64), axes)


def ingest(path, manifest_path, settings: dict, out_path) -> Responses:
    """Read, check and write a target's responses in the manifest's clip order (HDF5 with clip_id)."""
    from audioprobe.datasets.manifest import read_manifest

    clip_ids = read_manifest(manifest_path)["clip_id"].tolist()
    ids, values = read_raw(path, settings["id_key"], settings["responses_key"])
    responses = check_responses(ids, values, settings["axes"], clip_ids, path)
    log.info("%s: %d stimuli x %s", path, len(responses.clip_ids),
             " x ".join(f"{n} {a}" for n, a in zip(responses.values.shape[1:], responses.axes[1:])))
    write_arrays(out_path, {"responses": responses.values}, clip_ids=responses.clip_ids,
                 attrs={"axes": ",".join(responses.axes), "source": str(path), "config": settings})
    return responses


def read_target(path) -> Responses:
    """The responses an ingest wrote."""
    from audioprobe.io.store import LayerFile

    with LayerFile(path) as handle:
        return Responses(handle.clip_ids, handle.file["responses"][()], handle.attrs["axes"].split(","))
