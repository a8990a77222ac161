"""The activation store: one HDF5 file per model, dataset and layer.

Layout of a layer file::

    /activations   float32 or float16, [clips, *layer_shape], chunked by clip
    /clip_id       utf-8 strings, [clips]
    /labels/<name> utf-8 strings, [clips], one per label column of the manifest
    attrs: model, dataset, layer, axes, layer_shape, weights_sha256, config (canonical JSON), complete;
           a layer stored pooled (``activations.store``) also extraction_pool ({"axes": [...], "stat": ...}),
           and its axes and layer_shape are the kept ones; a layer stored projected also
           extraction_projection (kind, components, seed, density, matrix_sha256, source_shape, source_axes:
           what was projected, after any pooling), its /activations is [clips, components] and its axes
           "component"

Readers get float16 activations as float32 (:attr:`LayerFile.activations`).

Files are built under a temporary name and renamed when the last clip is written, so a file with the
final name is always whole. No object header stores a time, so the same contents give the same bytes.

Every HDF5 file is read through :func:`open_h5`, which refuses a file that would make a read leave it
(external storage, virtual datasets, external links): results folders are shared, and reading one must
not read anything outside it.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

from audioprobe.io.atomic import canonical_json, replace_checked, temporary_beside
from audioprobe.io.h5safe import UnsafeHDF5Error, open_h5, outside_references  # noqa: F401 (read from here too)

STRING = h5py.string_dtype("utf-8")
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504
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
    """Streams clip batches of one layer into a temporary HDF5 file.

    ``dtype`` float16 halves the file: each batch is converted here, and a value beyond float16's range
    (|x| > 65504, which would become infinite) is an error naming the layer and the file."""

    def __init__(self, path, clips: int, layer_shape, *, dtype="float32", compression="gzip",
                 attrs: dict | None = None):
        self.path = Path(path)
        self.layer = (attrs or {}).get("layer", self.path.stem)
        self.dtype = np.dtype(dtype)
        self.tmp = temporary_beside(self.path)
        self.clips = clips
        self.written = 0
        self.file = create_file(self.tmp)
        chunk = (1, *layer_shape)  # also uncompressed: a contiguous layout measured no cheaper in an extraction
        self.data = self.file.create_dataset(
            "activations", shape=(clips, *layer_shape), dtype=self.dtype, chunks=chunk if clips else None,
            track_times=False, **_compression(compression))
        for key, value in (attrs or {}).items():
            self.file.attrs[key] = value if isinstance(value, (str, int, float)) else canonical_json(value)
        self.file.attrs["layer_shape"] = np.asarray(layer_shape, dtype=np.int64)
        self.file.attrs["complete"] = False

    def write(self, batch: np.ndarray) -> None:
        end = self.written + batch.shape[0]
        if end > self.clips:
            raise ValueError(f"{self.path}: got {end} clips, expected {self.clips}")
        if self.dtype == np.float16 and batch.dtype != np.float16:
            batch = self._as_float16(batch)
        self.data[self.written:end] = batch.astype(self.dtype, copy=False)
        self.written = end

    def _as_float16(self, batch: np.ndarray) -> np.ndarray:
        if batch.size and max(-float(np.min(batch)), float(np.max(batch))) > FLOAT16_MAX:
            clip, value = _first_beyond(batch, FLOAT16_MAX)
            raise ValueError(f"{self.path}: layer {self.layer} has the value {value:g} at clip {self.written + clip}, "
                             f"beyond float16's range (|x| <= {FLOAT16_MAX:g}); it would be stored as infinite: "
                             "set activations.dtype to float32")
        return batch.astype(np.float16)

    def finish(self, clip_ids, labels: dict[str, list]) -> None:
        if self.written != self.clips:
            raise ValueError(f"{self.path}: wrote {self.written} of {self.clips} clips")
        write_index(self.file, clip_ids, labels)
        self.file.attrs["complete"] = True
        self.file.close()
        replace_checked(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _first_beyond(batch: np.ndarray, limit: float) -> tuple[int, float]:
    """(row, value) of the first value of ``batch`` whose magnitude exceeds ``limit``."""
    flat = batch.reshape(len(batch), -1)
    row = int(np.argmax((np.abs(flat) > limit).any(axis=1)))
    return row, float(flat[row][np.argmax(np.abs(flat[row]) > limit)])


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


def _declared_shape(value) -> tuple[int, ...] | None:
    """The ``layer_shape`` attribute as a tuple (a list of integers or its JSON text), or None."""
    if isinstance(value, (bytes, str)):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    try:
        return tuple(int(v) for v in np.asarray(value).ravel())
    except (TypeError, ValueError):
        return None


def read_strings(dataset: h5py.Dataset) -> list[str]:
    """A string dataset as Python strings (h5py returns UTF-8 strings as bytes)."""
    return [value.decode() if isinstance(value, bytes) else value for value in dataset[()]]


def _extraction_projection(attrs: dict) -> dict | None:
    """A layer file's ``extraction_projection`` attribute (what it was projected from, to how many
    components), or None for a layer not stored projected."""
    record = attrs.get("extraction_projection")
    if record is None:
        return None
    if not (isinstance(record, dict) and isinstance(record.get("components"), int)
            and isinstance(record.get("source_shape"), list)):
        raise ValueError(f"its extraction_projection attribute is not {{'components': K, 'source_shape': [...], "
                         f"...}} ({record!r})")
    return record


def _projected_shape(record: dict | None, source_shape: tuple, description: str) -> tuple[tuple, str]:
    """(per-clip shape, its description) of a layer stored projected from ``source_shape`` as ``record``
    says; the source shape it records must be that one."""
    if record is None:
        return source_shape, description
    if tuple(record["source_shape"]) != tuple(source_shape):
        raise ValueError(f"its extraction_projection records a source of {record['source_shape']} values, but "
                         f"{description} is {list(source_shape)}")
    return (record["components"],), f"{description} projected to {record['components']} components at extraction"


def _extraction_pooled_axes(attrs: dict) -> list[str]:
    """The axes a layer file was pooled over at extraction (its ``extraction_pool`` attribute), or []."""
    record = attrs.get("extraction_pool")
    if record is None:
        return []
    if not (isinstance(record, dict) and isinstance(record.get("axes"), list) and record.get("stat")):
        raise ValueError(f"its extraction_pool attribute is not {{'axes': [...], 'stat': ...}} ({record!r})")
    return [str(name) for name in record["axes"]]


class NotExtractedError(ValueError):
    """A file with ``/activations`` that lacks the records of the extraction which writes every layer file."""


class LayerFile:
    """Read access to an HDF5 output (through :func:`open_h5`), checking that it is complete and consistent.

    Layer files (``/activations``, from the extraction or pooled from it) and the other outputs with a
    ``/clip_id`` index (projections, latents, neuron and concept-score files) are all read through it. On
    every open: every ``/activations``, ``/clip_id`` and ``/labels/<name>`` has one row per clip. A file with
    ``/activations`` must also record the model, layer and clip length it was made with (``config.model.kind``,
    ``config.clip_seconds`` and ``layer``, as the extraction writes them and pooling copies them), and its
    per-clip shape must be what that model gives at that layer (pooled over the recorded axes, for a pooled
    file; the recorded number of components, projected from that shape, for a layer stored projected) and its
    ``layer_shape`` attribute, where it has one: a file without those records was not made by
    audioprobe and is refused (:class:`NotExtractedError`). A caller that knows the run can also give
    ``layer_shape`` (per clip) and ``clips``.
    """

    def __init__(self, path, *, layer_shape=None, clips: int | None = None):
        self.path = Path(path)
        self.file = open_h5(self.path)
        try:
            if not bool(self.file.attrs.get("complete", False)):
                raise ValueError(f"{self.path} is incomplete (attribute complete is false): delete it and rerun")
            self._check_shapes(layer_shape, clips)
        except BaseException:
            self.file.close()
            raise

    def _check_shapes(self, expected_shape, expected_clips) -> None:
        rows = {}
        for name in ("activations", "clip_id"):
            if name in self.file:
                rows[f"/{name}"] = self._rows(name)
        if isinstance(self.file.get("labels"), h5py.Group):
            for name in self.file["labels"]:
                rows[f"/labels/{name}"] = self._rows(f"labels/{name}")
        if expected_clips is not None:
            rows = {"the run's clip count": int(expected_clips), **rows}
        if len(set(rows.values())) > 1:
            first, n = next(iter(rows.items()))
            other, m = next((name, count) for name, count in rows.items() if count != n)
            raise ValueError(f"{self.path}: {first} has {n} rows but {other} has {m}; a layer file has one row per "
                             "clip everywhere: delete it and rerun the rule that makes it")
        if "activations" not in self.file:
            return
        shape = tuple(self.file["activations"].shape[1:])

        def expected():  # one at a time, so that the first disagreement is the one named
            if "layer_shape" in self.file.attrs:
                yield "its layer_shape attribute", _declared_shape(self.file.attrs["layer_shape"])
            yield self._model_shape()
            if expected_shape is not None:
                yield "the run's layer shape", tuple(int(v) for v in expected_shape)

        for source, want in expected():
            if want is None:  # a family whose shapes only the loaded network knows: nothing to check against
                continue
            if want != shape:
                raise ValueError(f"{self.path}: /activations has {'x'.join(map(str, shape)) or 'no'} values per clip, "
                                 f"but {source} is {'x'.join(map(str, want)) if want else want}: delete it and "
                                 "rerun the rule that makes it")

    def _rows(self, name: str) -> int:
        item = self.file[name]
        if not isinstance(item, h5py.Dataset) or not item.shape:
            raise ValueError(f"{self.path}: /{name} is not an array with one row per clip")
        return int(item.shape[0])

    def _model_shape(self):
        """(description, per-clip shape) of the model, layer and clip length the file records.

        A layer stored pooled at extraction (attribute ``extraction_pool``) holds the model's shape without the
        axes it was pooled over; one stored projected (attribute ``extraction_projection``) holds its
        components, projected from that shape; a pooled file (attribute ``pooled_axes``) holds the product of
        that shape over its kept axes.
        A file that records none of them, or only some, is a :class:`NotExtractedError`: without them its
        shape cannot be checked, and audioprobe's extraction always writes them."""
        attrs = self.attrs
        config, layer = attrs.get("config"), attrs.get("layer")
        missing = [name for name, present in (
            ("config", isinstance(config, dict)),
            ("config.model.kind", isinstance(config, dict) and isinstance(config.get("model"), dict)
             and isinstance(config["model"].get("kind"), str)),
            ("config.clip_seconds", isinstance(config, dict) and "clip_seconds" in config),
            ("layer", isinstance(layer, str))) if not present]
        if missing:
            raise NotExtractedError(
                f"{self.path}: it has /activations but no record of the model, layer and clip length they were "
                f"made with (missing or malformed attributes: {', '.join(missing)}), so it was not made by "
                "audioprobe's extraction and its shape cannot be checked: delete it and rerun the rule that makes "
                "it (extract_activations_<model>, and pool_activations for a pooled file)")
        from audioprobe.shapes import model_layer_shape

        kind = config["model"]["kind"]
        try:
            stored_pooled = _extraction_pooled_axes(attrs)
            want = model_layer_shape(config["model"], layer, float(config["clip_seconds"]), pooled=stored_pooled)
            if want is None:
                return f"what {kind} gives at {layer}", None
            source = f"what {kind} gives at {layer} for {config['clip_seconds']} s clips"
            if stored_pooled:
                source += f" stored pooled over {','.join(stored_pooled)} at extraction"
            want, source = _projected_shape(_extraction_projection(attrs), want, source)
            if "pooled_axes" in attrs:
                names = str(attrs["axes"]).split(",")
                kept = [names.index(name) for name in str(attrs.get("kept_axes", "")).split(",") if name]
                want = (int(np.prod([want[i] for i in kept])),)
                source += f" pooled over {attrs['pooled_axes']}"
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
            raise ValueError(f"{self.path}: its recorded model ({kind!r}), layer ({layer!r}), clip length "
                             f"({config['clip_seconds']!r}) or axes are not ones audioprobe knows: {error}") from error
        return source, want

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    @property
    def activations(self):
        """``/activations``: the h5py dataset, or for a float16 file a view that reads it as float32 (the
        analyses compute in float32; the conversion happens block by block as they read)."""
        data = self.file["activations"]
        return Float32Reads(data) if data.dtype == np.float16 else data

    def strings(self, name: str) -> list[str]:
        """A string dataset as Python strings (see :func:`read_strings`)."""
        return read_strings(self.file[name])

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


class Float32Reads:
    """A float16 dataset whose reads (any h5py index: slices, sorted index lists, ``()``; ``read_direct``)
    return float32."""

    dtype = np.dtype(np.float32)

    def __init__(self, dataset: h5py.Dataset):
        self.dataset = dataset

    @property
    def shape(self) -> tuple[int, ...]:
        return self.dataset.shape

    @property
    def ndim(self) -> int:
        return self.dataset.ndim

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> np.ndarray:
        return np.asarray(self.dataset[key], dtype=np.float32)

    def read_direct(self, dest: np.ndarray, source_sel=None, dest_sel=None) -> None:
        """h5py's ``read_direct`` into a float32 buffer (numpy converts: HDF5's own float16 conversion is slow)."""
        dest[() if dest_sel is None else dest_sel] = self.dataset[() if source_sel is None else source_sel]


def _compression(name: str) -> dict:
    if name in (None, "none"):
        return {}
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ValueError(f"unknown compression {name!r}: use gzip, lzf or none")
