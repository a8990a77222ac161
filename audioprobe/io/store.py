"""The activation store: one HDF5 file per model, dataset and layer.

Layout of a layer file::

    /activations   float, [clips, *layer_shape], chunked by clip
    /clip_id       utf-8 strings, [clips]
    /labels/<name> utf-8 strings, [clips], one per label column of the manifest
    attrs: model, dataset, layer, layer_shape, weights_sha256, config (canonical JSON), complete

Files are built under a temporary name and renamed when the last clip is written, so a file with the
final name is always whole. No object header stores a time, so the same contents give the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from audioprobe.io.atomic import canonical_json, temporary_beside

STRING = h5py.string_dtype("utf-8")
CREATION_ORDER = h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED


def _timeless(plist):
    """A file or group creation property list that tracks creation order and stores no timestamps."""
    plist.set_link_creation_order(CREATION_ORDER)
    plist.set_attr_creation_order(CREATION_ORDER)
    plist.set_obj_track_times(False)
    return plist


def create_file(path) -> h5py.File:
    """A new HDF5 file (an existing one is truncated) whose bytes depend only on what is written to it.

    ``h5py.File(path, "w", track_order=True)`` gives the root group a header with its creation time, and
    ``create_group`` does the same for every group, so two writes of the same data differed in a few bytes.
    Datasets need ``track_times=False`` when they are created.
    """
    fcpl = _timeless(h5py.h5p.create(h5py.h5p.FILE_CREATE))
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    return h5py.File(h5py.h5f.create(os.fsencode(str(path)), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl))


def create_group(parent: h5py.Group, name: str) -> h5py.Group:
    """A subgroup that tracks creation order and stores no timestamps (see :func:`create_file`)."""
    gcpl = _timeless(h5py.h5p.create(h5py.h5p.GROUP_CREATE))
    return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))


class LayerWriter:
    """Streams clip batches of one layer into a temporary HDF5 file."""

    def __init__(self, path, clips: int, layer_shape, *, dtype="float32", compression="gzip",
                 attrs: dict | None = None):
        self.path = Path(path)
        self.tmp = temporary_beside(self.path)
        self.clips = clips
        self.written = 0
        self.file = create_file(self.tmp)
        chunk = (1, *layer_shape)
        self.data = self.file.create_dataset(
            "activations", shape=(clips, *layer_shape), dtype=dtype, chunks=chunk if clips else None,
            track_times=False, **_compression(compression))
        for key, value in (attrs or {}).items():
            self.file.attrs[key] = value if isinstance(value, (str, int, float)) else canonical_json(value)
        self.file.attrs["layer_shape"] = np.asarray(layer_shape, dtype=np.int64)
        self.file.attrs["complete"] = False

    def write(self, batch: np.ndarray) -> None:
        end = self.written + batch.shape[0]
        if end > self.clips:
            raise ValueError(f"{self.path}: got {end} clips, expected {self.clips}")
        self.data[self.written:end] = batch
        self.written = end

    def finish(self, clip_ids, labels: dict[str, list]) -> None:
        if self.written != self.clips:
            raise ValueError(f"{self.path}: wrote {self.written} of {self.clips} clips")
        write_index(self.file, clip_ids, labels)
        self.file.attrs["complete"] = True
        self.file.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def write_index(file: h5py.File, clip_ids, labels: dict[str, list]) -> None:
    file.create_dataset("clip_id", data=np.asarray(clip_ids, dtype=object), dtype=STRING, track_times=False)
    group = create_group(file, "labels")
    for name, values in labels.items():
        group.create_dataset(name, data=np.asarray(values, dtype=object), dtype=STRING, track_times=False)


def write_arrays(path, arrays: dict[str, np.ndarray], *, clip_ids=None, labels=None, attrs=None,
                 compression="gzip") -> None:
    """Write a small set of named arrays (plus optional clip index) atomically."""
    from audioprobe.io.atomic import atomic_path

    with atomic_path(path) as tmp, create_file(tmp) as file:
        for name, value in arrays.items():
            value = np.asarray(value)
            if value.dtype.kind in "OU":  # strings
                file.create_dataset(name, data=value.astype(object), dtype=STRING, track_times=False)
                continue
            options = _compression(compression) if value.ndim and value.size > 1024 else {}
            file.create_dataset(name, data=value, track_times=False, **options)
        if clip_ids is not None:
            write_index(file, clip_ids, labels or {})
        for key, value in (attrs or {}).items():
            file.attrs[key] = value if isinstance(value, (str, int, float)) else canonical_json(value)
        file.attrs["complete"] = True


class LayerFile:
    """Read access to a layer file, checking that it is complete."""

    def __init__(self, path):
        self.path = Path(path)
        self.file = h5py.File(self.path, "r")
        if not bool(self.file.attrs.get("complete", False)):
            self.file.close()
            raise ValueError(f"{self.path} is incomplete (attribute complete is false): delete it and rerun")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    @property
    def activations(self) -> h5py.Dataset:
        return self.file["activations"]

    def strings(self, name: str) -> list[str]:
        """A string dataset as Python strings (h5py returns bytes)."""
        return [v.decode() if isinstance(v, bytes) else v for v in self.file[name][()]]

    @property
    def clip_ids(self) -> list[str]:
        return self.strings("clip_id")

    @property
    def labels(self) -> dict[str, list[str]]:
        return {name: self.strings(f"labels/{name}") for name in self.file["labels"]}

    @property
    def attrs(self) -> dict:
        out = {}
        for key, value in self.file.attrs.items():
            if isinstance(value, str) and value[:1] in "{[":
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(value)
            out[key] = value
        return out


def _compression(name: str) -> dict:
    if name in (None, "none"):
        return {}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {name!r}: use gzip, lzf or none")
