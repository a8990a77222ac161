"""Extracting, pooling and summarising per-layer activations.

Extraction reads clips batch by batch, runs the model once per batch for every requested layer and
streams each layer into its own HDF5 file, so peak memory depends on the batch size, not the number of
clips.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd

from audioprobe.datasets.manifest import labels_of, load_clip
from audioprobe.io.store import LayerFile, LayerWriter, write_arrays

log = logging.getLogger(__name__)

POOL_STATS = {"mean": np.mean, "max": np.max}


def clip_samples(clip_seconds: float, sample_rate: int) -> int:
    return int(round(clip_seconds * sample_rate))


def model_layer_shape(model_config: dict, layer: str, clip_seconds: float) -> tuple[int, ...]:
    """The per-clip shape of ``layer`` for clips of ``clip_seconds``, computed without weights or TensorFlow
    (what ``model.layer_shape`` returns for the loaded model)."""
    from audioprobe import models

    kind = model_config["kind"]
    if layer not in models.layer_names(kind):
        raise ValueError(f"model kind {kind!r} has no layer {layer!r}")
    from audioprobe.models import yamnet

    return yamnet.layer_shape(layer, clip_samples(clip_seconds, models.sample_rate(kind)))


def extract(model, clips: pd.DataFrame, root, outputs: dict[str, str], *, clip_seconds: float,
            batch_size: int = 32, dtype: str = "float32", compression: str = "gzip", attrs: dict | None = None):
    """Write one HDF5 file per layer (``outputs``: layer -> path) for every clip of the manifest.

    ``attrs["config"]`` must record the model's config (with its ``kind``) and ``clip_seconds``: every reader
    of a layer file (:class:`LayerFile`) checks its shape against them and refuses a file without them."""
    record = (attrs or {}).get("config")
    if not (isinstance(record, dict) and isinstance(record.get("model"), dict)
            and isinstance(record["model"].get("kind"), str) and record.get("clip_seconds") == clip_seconds):
        raise ValueError(f"extract: attrs['config'] must record the model's config with its kind and clip_seconds "
                         f"({clip_seconds}); readers refuse a layer file without them (got {record!r})")
    layers = model.check_layers(list(outputs))
    samples = clip_samples(clip_seconds, model.sample_rate)
    writers = {layer: LayerWriter(path, len(clips), model.layer_shape(layer, samples), dtype=dtype,
                                  compression=compression,
                                  attrs={**(attrs or {}), "layer": layer, "axes": ",".join(model.layer_axes(layer)),
                                         "model": model.name, "weights_sha256": model.weights_sha256})
               for layer, path in outputs.items()}
    started = time.monotonic()
    try:
        for first in range(0, len(clips), batch_size):
            rows = clips.iloc[first:first + batch_size]
            batch = np.stack([load_clip(root, row, model.sample_rate, samples) for _, row in rows.iterrows()])
            for layer, values in model.activations(batch, layers).items():
                writers[layer].write(values.astype(dtype, copy=False))
            done = first + len(rows)
            rate = done / max(time.monotonic() - started, 1e-9)
            log.info("%d/%d clips (%.1f clips/s)", done, len(clips), rate)
        for writer in writers.values():
            writer.finish(clips["clip_id"].tolist(), labels_of(clips))
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise


def pool(layer_path, out_path, *, axes: list[str], stat: str = "mean", attrs: dict | None = None,
         layer_shape=None) -> None:
    """Reduce a layer file over named axes (e.g. patch, time, freq) to one flat vector per clip.

    The layer file is opened through :class:`LayerFile` (nothing stored outside it, consistent shapes, the
    shape of the model it records); given ``layer_shape`` (the run's, from :func:`model_layer_shape`), its
    per-clip shape must also be that."""
    if stat not in POOL_STATS:
        raise ValueError(f"pooling stat {stat!r} is unknown; use one of {', '.join(POOL_STATS)}")
    with LayerFile(layer_path, layer_shape=layer_shape) as layer:
        names = str(layer.attrs["axes"]).split(",")
        unknown = [a for a in axes if a not in names]
        if unknown:
            raise ValueError(f"{layer_path}: cannot pool over {unknown[0]!r}; its axes are {', '.join(names)}")
        reduce_over = tuple(1 + names.index(a) for a in axes)
        data = layer.activations
        pooled = np.concatenate([
            POOL_STATS[stat](data[i:i + 256], axis=reduce_over).reshape(min(256, data.shape[0] - i), -1)
            for i in range(0, data.shape[0], 256)]) if data.shape[0] else np.zeros((0, 0), np.float32)
        kept = [n for n in names if n not in axes]
        write_arrays(out_path, {"activations": pooled.astype(np.float32)}, clip_ids=layer.clip_ids,
                     labels=layer.labels,
                     attrs={**{k: v for k, v in layer.attrs.items() if k not in ("complete", "layer_shape")},
                            **(attrs or {}), "pooled_axes": ",".join(axes), "pool_stat": stat,
                            "kept_axes": ",".join(kept)})


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
