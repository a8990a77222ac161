"""Extracting, pooling and summarising per-layer activations.

A layer can be stored full, pooled over some axes, or projected: each clip's (pooled, if asked) flattened
activation multiplied by a very sparse random projection (Li, Hastie and Church 2006) that depends only on
the layer's size, the number of components and a seed, so no clip informs it (nothing leaks into Study 1's
cross-validated decoding) and two runs store the same bytes.

Extraction runs the model once per batch for every requested layer and streams each layer into its own
HDF5 file. Its three stages overlap: a reader thread decodes the next batch's audio, the calling thread
runs the model, and a writer thread writes the previous batch, each stage handing batches to the next
through a bounded queue, so peak memory depends on the batch size and the queue depths, not on the number
of clips. The stages can run at once because TensorFlow releases the GIL while it computes and h5py
releases it while HDF5 moves data; h5py's own lock, which serialises HDF5 calls, is never contended, since
while the stages run only the writer calls h5py (the files are created before and finished after). On a
machine whose cores are already busy the overlap gains little: then every stage's CPU time counts (see
bench/extraction.py). A failure in any stage stops the others and is raised in the caller with its own
traceback; every layer file is then aborted (nothing under its final name, no temporary file).
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
import time

import numpy as np
import pandas as pd
import scipy.sparse

from audioprobe.datasets.manifest import labels_of, load_clip
from audioprobe.shapes import (check_axes, check_components, clip_samples, kept_shape,  # noqa: F401 (read from here too)
                               model_layer_axes, model_layer_shape)
from audioprobe.io.store import LayerFile, LayerWriter, write_arrays

log = logging.getLogger(__name__)

POOL_STATS = {"mean": np.mean, "max": np.max}
DTYPES = ("float32", "float16")
LOADED_DEPTH = 2     # decoded audio batches waiting for the model (small: [batch, samples] float32)
COMPUTED_DEPTH = 1   # batches of every layer's activations waiting for the writer (about 1.5 MB per clip for
                     # YAMNet's 14 layers): with one computing and one being written, at most three in memory
POLL_SECONDS = 0.05  # how often a stage waiting on a queue looks whether another stage has failed


def reduce_axes(block: np.ndarray, over: tuple[int, ...], stat: str) -> np.ndarray:
    """``stat`` of ``block`` over the axes ``over``: the one reduction pooling and pooled storage share."""
    return POOL_STATS[stat](block, axis=over) if over else block


# --- projected storage ---------------------------------------------------------------------------------------

PROJECTION_KIND = "very sparse random projection (Li, Hastie and Church 2006)"


def sparse_projection(features: int, components: int, seed: int) -> scipy.sparse.csr_matrix:
    """The [components, features] very sparse random projection of ``seed`` (float32, CSR).

    Each row has Binomial(features, 1/s) nonzeros, s = sqrt(features), at distinct random columns, each
    +-sqrt(s / components) with equal odds: E||R x||^2 = ||x||^2, so distances are kept in expectation.
    It depends on (features, components, seed) only, never on data. A dense matrix would take
    features x components x 4 bytes (1.6 GB for 400,000 x 1,024); this one about components x sqrt(features)
    nonzeros."""
    check_components(components, features, "sparse_projection")
    rng = np.random.default_rng(seed)
    density = 1.0 / math.sqrt(features)
    counts = rng.binomial(features, density, size=components)
    columns = np.concatenate([np.sort(rng.choice(features, size=n, replace=False)) for n in counts])
    signs = rng.integers(0, 2, size=len(columns)) * 2 - 1
    entries = (signs * math.sqrt(1.0 / (density * components))).astype(np.float32)
    pointers = np.concatenate([[0], np.cumsum(counts)])
    return scipy.sparse.csr_matrix((entries, columns, pointers), shape=(components, features))


def project_rows(block: np.ndarray, projection: scipy.sparse.csr_matrix) -> np.ndarray:
    """[clips, components]: each clip of ``block`` flattened and multiplied by ``projection``. Each value
    sums its row's nonzeros in one fixed order, so it does not depend on the batch."""
    flat = block.reshape(len(block), -1).astype(np.float32, copy=False)
    return np.ascontiguousarray((projection @ flat.T).T)


def projection_record(projection: scipy.sparse.csr_matrix, seed: int, source_shape, source_axes) -> dict:
    """What a projected layer file records of its projection (attribute ``extraction_projection``): enough
    to rebuild the matrix (:func:`sparse_projection`) and check it is the same one (``matrix_sha256``)."""
    components, features = projection.shape
    digest = hashlib.sha256()
    for part in (projection.indptr.astype(np.int64), projection.indices.astype(np.int64), projection.data):
        digest.update(np.ascontiguousarray(part).tobytes())
    return {"kind": PROJECTION_KIND, "components": int(components), "seed": int(seed),
            "density": 1.0 / math.sqrt(features), "nonzeros": int(projection.nnz),
            "matrix": "audioprobe.activations.sparse_projection(features, components, seed)",
            "matrix_sha256": digest.hexdigest(), "data_independent": True,
            "source_shape": [int(size) for size in source_shape], "source_axes": list(source_axes)}


def extract(model, clips: pd.DataFrame, root, outputs: dict[str, str], *, clip_seconds: float,
            batch_size: int = 32, dtype: str = "float32", compression: str = "gzip", attrs: dict | None = None,
            pooled: dict[str, dict] | None = None, projected: dict[str, dict] | None = None, overlap: bool = True):
    """Write one HDF5 file per layer (``outputs``: layer -> path) for every clip of the manifest.

    ``attrs["config"]`` must record the model's config (with its ``kind``) and ``clip_seconds``: every reader
    of a layer file (:class:`LayerFile`) checks its shape against them and refuses a file without them.
    ``dtype`` is float32 or float16 (a value beyond float16's range is an error naming the layer and file).
    ``pooled`` maps a layer to ``{"axes": [...], "stat": "mean" or "max"}``: that layer is stored reduced
    over those axes (``activations.store``); its ``axes`` attribute names the kept axes and its
    ``extraction_pool`` attribute what was pooled. ``projected`` maps a layer to ``{"components": K,
    "seed": s}``: that layer (pooled first, if it is also in ``pooled``) is stored as [clips, K], each clip's
    flattened values times :func:`sparse_projection`; its ``axes`` attribute is ``component`` and its
    ``extraction_projection`` attribute records the projection. ``overlap=False`` runs reading, computing and
    writing one after the other in the calling thread: the same files, byte for byte, only slower."""
    _check_record(attrs, clip_seconds)
    if dtype not in DTYPES:
        raise ValueError(f"activations.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    layers = model.check_layers(list(outputs))
    samples = clip_samples(clip_seconds, model.sample_rate)
    forms = {layer: _StoredForm(model, layer, samples, how)
             for layer, how in _checked_storage(model, pooled or {}, projected or {}, layers).items()}
    writers = {}
    try:
        for layer, path in outputs.items():
            writers[layer] = _open_writer(model, layer, path, len(clips), samples, forms.get(layer), dtype=dtype,
                                          compression=compression, attrs=attrs)
        write = _BatchWriter(writers, forms, len(clips))
        run = _run_overlapped if overlap else _run_in_turn
        run(range(0, len(clips), batch_size),
            lambda first: _load_batch(clips, root, first, batch_size, model.sample_rate, samples),
            lambda batch: model.activations(batch, layers), write)
        for writer in writers.values():
            writer.finish(clips["clip_id"].tolist(), labels_of(clips))
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def _check_record(attrs: dict | None, clip_seconds: float) -> None:
    record = (attrs or {}).get("config")
    if not (isinstance(record, dict) and isinstance(record.get("model"), dict)
            and isinstance(record["model"].get("kind"), str) and record.get("clip_seconds") == clip_seconds):
        raise ValueError(f"extract: attrs['config'] must record the model's config with its kind and clip_seconds "
                         f"({clip_seconds}); readers refuse a layer file without them (got {record!r})")


def _checked_storage(model, pooled: dict, projected: dict, layers: list[str]) -> dict[str, dict]:
    """layer -> {"pool": checked pooling or None, "project": {"components", "seed"} or None} for every layer
    stored other than full."""
    pooling = _checked_pooling(model, pooled, layers)
    for layer, how in projected.items():
        if layer not in layers:
            raise ValueError(f"activations.store: {layer!r} is stored projected but not extracted "
                             f"(the extracted layers are {', '.join(layers)})")
        seed = how.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"activations.store.{layer}.seed: {seed!r} is not a seed; give a whole number >= 0")
    return {layer: {"pool": pooling.get(layer), "project": projected.get(layer)}
            for layer in layers if layer in pooling or layer in projected}


def _checked_pooling(model, pooled: dict, layers: list[str]) -> dict[str, dict]:
    """``pooled`` with every layer extracted, every axis one of the layer's and every stat known."""
    out = {}
    for layer, how in pooled.items():
        if layer not in layers:
            raise ValueError(f"activations.store: {layer!r} is stored pooled but not extracted "
                             f"(the extracted layers are {', '.join(layers)})")
        if how.get("stat") not in POOL_STATS:
            raise ValueError(f"activations.store.{layer}: pooling stat {how.get('stat')!r} is unknown; use one of "
                             f"{', '.join(POOL_STATS)}")
        axes = model.layer_axes(layer)
        check_axes(how["axes"], axes)
        out[layer] = {"axes": [name for name in axes if name in how["axes"]], "stat": how["stat"]}
    return out


class _StoredForm:
    """What a layer stored other than full keeps of a batch [clips, *layer_shape]: the ``stat`` over the
    pooled axes, then, for a projected layer, the flattened result times the projection."""

    def __init__(self, model, layer: str, samples: int, how: dict):
        axes = model.layer_axes(layer)
        self.pooling = how["pool"]
        pooled_axes = self.pooling["axes"] if self.pooling else []
        self.over = tuple(1 + axes.index(name) for name in pooled_axes)
        self.stat = self.pooling["stat"] if self.pooling else "mean"
        self.source_axes = [name for name in axes if name not in pooled_axes]
        self.source_shape = kept_shape(model.layer_shape(layer, samples), axes, pooled_axes)
        self.projection, self.record = None, None
        if how["project"]:
            components, seed = how["project"]["components"], how["project"].get("seed", 0)
            check_components(components, math.prod(self.source_shape), f"activations.store.{layer}.project")
            self.projection = sparse_projection(math.prod(self.source_shape), components, seed)
            self.record = projection_record(self.projection, seed, self.source_shape, self.source_axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.projection.shape[0],) if self.projection is not None else self.source_shape

    @property
    def axes(self) -> list[str]:
        return ["component"] if self.projection is not None else self.source_axes

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        reduced = reduce_axes(batch, self.over, self.stat)
        return reduced if self.projection is None else project_rows(reduced, self.projection)


def _open_writer(model, layer: str, path, clips: int, samples: int, form: _StoredForm | None, *, dtype: str,
                 compression: str, attrs: dict | None) -> LayerWriter:
    shape = form.shape if form else model.layer_shape(layer, samples)
    axes = form.axes if form else model.layer_axes(layer)
    record = {**(attrs or {}), "layer": layer, "axes": ",".join(axes), "model": model.name,
              "weights_sha256": model.weights_sha256}
    if form and form.pooling:
        record["extraction_pool"] = form.pooling
    if form and form.record:
        record["extraction_projection"] = form.record
    return LayerWriter(path, clips, shape, dtype=dtype, compression=compression, attrs=record)


def _load_batch(clips: pd.DataFrame, root, first: int, size: int, sample_rate: int, samples: int) -> np.ndarray:
    rows = clips.iloc[first:first + size]
    return np.stack([load_clip(root, row, sample_rate, samples) for _, row in rows.iterrows()])


class _BatchWriter:
    """Writes one batch of every layer (in its stored form, where it is not stored full) and logs the pace."""

    def __init__(self, writers: dict[str, LayerWriter], forms: dict[str, _StoredForm], total: int):
        self.writers, self.forms, self.total = writers, forms, total
        self.done, self.started = 0, time.monotonic()

    def __call__(self, values: dict[str, np.ndarray]) -> None:
        for layer, writer in self.writers.items():
            form = self.forms.get(layer)
            writer.write(form(values[layer]) if form else values[layer])
        self.done += len(values[next(iter(self.writers))])
        rate = self.done / max(time.monotonic() - self.started, 1e-9)
        log.info("%d/%d clips (%.1f clips/s)", self.done, self.total, rate)


# --- running the stages ------------------------------------------------------------------------------------

def _run_in_turn(starts, load, compute, write) -> None:
    for first in starts:
        write(compute(load(first)))


_END = object()  # what a stage puts after its last batch


def _run_overlapped(starts, load, compute, write) -> None:
    """``load`` in a reader thread, ``compute`` here, ``write`` in a writer thread, joined by bounded queues.

    The first failure sets ``stop``: every stage then ends at its next queue operation (waits poll it, so
    none blocks on a full or empty queue) and the failure is raised here once both threads have ended."""
    stop, errors = threading.Event(), []
    loaded, computed = queue.Queue(LOADED_DEPTH), queue.Queue(COMPUTED_DEPTH)
    reader = _stage("reader", lambda: _produce(map(load, starts), loaded, stop), stop, errors)
    writer = _stage("writer", lambda: _consume(computed, write, stop), stop, errors)
    reader.start()
    writer.start()
    try:
        _produce(map(compute, _drain(loaded, stop)), computed, stop)
        writer.join()
    finally:
        stop.set()  # after success the reader has ended already; after a failure here it ends both threads
        reader.join()
        writer.join()
    if errors:
        raise errors[0]


def _stage(name: str, work, stop: threading.Event, errors: list) -> threading.Thread:
    def run():
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - raised again in the calling thread
            errors.append(error)
            stop.set()

    return threading.Thread(target=run, name=f"extract-{name}", daemon=True)


def _produce(items, target: queue.Queue, stop: threading.Event) -> None:
    for item in items:
        if not _put(target, item, stop):
            return
    _put(target, _END, stop)


def _consume(source: queue.Queue, handle, stop: threading.Event) -> None:
    for item in _drain(source, stop):
        handle(item)


def _drain(source: queue.Queue, stop: threading.Event):
    """The items of ``source`` up to its end marker, or until ``stop`` is set."""
    while (item := _get(source, stop)) is not _END:
        yield item


def _put(target: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            target.put(item, timeout=POLL_SECONDS)
            return True
        except queue.Full:
            pass
    return False


def _get(source: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return source.get(timeout=POLL_SECONDS)
        except queue.Empty:
            pass
    return _END


# --- pooling and the summary -------------------------------------------------------------------------------

def pool(layer_path, out_path, *, axes: list[str], stat: str = "mean", attrs: dict | None = None,
         layer_shape=None) -> None:
    """Reduce a layer file over named axes (e.g. patch, time, freq) to one flat vector per clip.

    The layer file is opened through :class:`LayerFile` (nothing stored outside it, consistent shapes, the
    shape of the model it records); given ``layer_shape`` (the run's, from :func:`model_layer_shape`), its
    per-clip shape must also be that. A layer stored pooled at extraction is reduced over the rest of
    ``axes`` only, which gives the same vector (a mean of means over equal parts, or a max of maxima). A layer
    stored projected has no axis left to pool (its components mix every value of the clip): its components
    are copied unchanged, and the output records that (``pool_passed_through``, ``pooled_axes`` empty)."""
    if stat not in POOL_STATS:
        raise ValueError(f"pooling stat {stat!r} is unknown; use one of {', '.join(POOL_STATS)}")
    with LayerFile(layer_path, layer_shape=layer_shape) as layer:
        names = str(layer.attrs["axes"]).split(",")
        projection = layer.attrs.get("extraction_projection")
        remaining = [] if projection else _still_to_pool(layer_path, layer.attrs.get("extraction_pool"), axes, stat)
        unknown = [a for a in remaining if a not in names]
        if unknown:
            raise ValueError(f"{layer_path}: cannot pool over {unknown[0]!r}; its axes are {', '.join(names)}")
        record = {"pooled_axes": ",".join(axes), "pool_stat": stat,
                  "kept_axes": ",".join(n for n in names if n not in remaining)}
        if projection:
            record.update(_passed_through(layer_path, projection, axes))
        write_arrays(out_path, {"activations": _reduced_rows(layer.activations, remaining, names, stat)},
                     clip_ids=layer.clip_ids, labels=layer.labels,
                     attrs={**{k: v for k, v in layer.attrs.items() if k not in ("complete", "layer_shape")},
                            **(attrs or {}), **record})


def _reduced_rows(data, remaining: list[str], names: list[str], stat: str) -> np.ndarray:
    """[clips, values]: ``data`` reduced by ``stat`` over the axes ``remaining``, read 256 clips at a time."""
    if not data.shape[0]:
        return np.zeros((0, 0), np.float32)
    over = tuple(1 + names.index(a) for a in remaining)
    return np.concatenate([reduce_axes(data[i:i + 256], over, stat).reshape(min(256, data.shape[0] - i), -1)
                           for i in range(0, data.shape[0], 256)]).astype(np.float32)


def _passed_through(path, projection: dict, axes: list[str]) -> dict:
    """The pooled file's record of a layer stored projected: nothing pooled, and why."""
    reason = (f"stored projected to {projection['components']} components at extraction "
              "(extraction_projection): each component mixes every value of the clip, so no axis is left to "
              f"pool over ({', '.join(axes) or 'none'} asked); the components are copied unchanged")
    log.info("%s: %s", path, reason)
    return {"pooled_axes": "", "pool_requested_axes": ",".join(axes), "pool_passed_through": reason}


def _still_to_pool(path, done: dict | None, axes: list[str], stat: str) -> list[str]:
    """The axes of ``axes`` that a layer file stored pooled over ``done["axes"]`` still has."""
    if not done:
        return list(axes)
    extra = [name for name in done["axes"] if name not in axes]
    if extra:
        raise ValueError(f"{path} was stored pooled over {', '.join(done['axes'])} at extraction "
                         f"(activations.store), but pooling asks for {', '.join(axes) or 'no axes'}, without "
                         f"{extra[0]!r}: add it to activations.pool.axes or store the layer full")
    if done["stat"] != stat:
        raise ValueError(f"{path} was stored as the {done['stat']} over {', '.join(done['axes'])} at extraction "
                         f"(activations.store), so pooling it by {stat} would not give the {stat} over "
                         f"{', '.join(axes)}: extract it again with activations.pool.stat {stat}")
    return [name for name in axes if name not in done["axes"]]


def summarise(layer_paths: dict[str, str]) -> pd.DataFrame:
    """Per layer: shape, clips, mean, standard deviation and fraction of zeros of the activations.

    The layer files of one run must list the same clips (each is checked on its own by :class:`LayerFile`)."""
    rows, first = [], None
    for layer, path in layer_paths.items():
        with LayerFile(path) as file:
            data = file.activations
            if first is None:
                first = (path, file.clip_ids)
            elif file.clip_ids != first[1]:
                where = _first_difference(file.clip_ids, first[1])
                raise ValueError(f"{path} and {first[0]} list different clips ({where}); the layers of one "
                                 "extraction list the same clips in the same order: rerun it")
            total, squares, zeros, count = 0.0, 0.0, 0, 0
            for i in range(0, data.shape[0], 64):
                block = data[i:i + 64].astype(np.float64)
                total += block.sum()
                squares += np.square(block).sum()
                zeros += int((block == 0).sum())
                count += block.size
            mean = total / count if count else float("nan")
            rows.append({"layer": layer, "shape": "x".join(map(str, data.shape[1:])), "clips": data.shape[0],
                         "values_per_clip": int(np.prod(data.shape[1:])), "mean": mean,
                         "std": float(np.sqrt(max(squares / count - mean ** 2, 0.0))) if count else float("nan"),
                         "fraction_zero": zeros / count if count else float("nan")})
    return pd.DataFrame(rows)


def _first_difference(ids: list[str], reference: list[str]) -> str:
    """Where two lists of clip ids first differ: the index and both ids, or where the shorter one ends."""
    for index, (one, other) in enumerate(zip(ids, reference)):
        if one != other:
            return f"clip {index} is {one!r} in the first and {other!r} in the second"
    n = min(len(ids), len(reference))
    longer = ids if len(ids) > n else reference
    same = f", the same up to clip {n - 1}" if n else ""
    return f"{len(ids)} and {len(reference)} clips{same}; clip {n} of the longer one is {longer[n]!r}"
