"""Per-clip shapes of a model's layers, from the model registry alone (no weights, no framework): as extracted,
stored pooled over some axes, or stored projected."""

from __future__ import annotations

import math

import numpy as np

import audioprobe.models.registry as registry


def clip_samples(clip_seconds: float, sample_rate: int) -> int:
    return int(round(clip_seconds * sample_rate))


def model_layer_axes(model_config: dict, layer: str) -> tuple[str, ...]:
    """The names of ``layer``'s per-clip axes (what ``model.layer_axes`` returns), without weights: every
    model's layers have the registry's four axes."""
    if layer not in registry.layer_names(model_config):
        raise ValueError(f"model kind {model_config['kind']!r} has no layer {layer!r}")
    return registry.AXES


def model_layer_shape(model_config: dict, layer: str, clip_seconds: float, pooled=(),
                      components: int | None = None) -> tuple[int, ...] | None:
    """The per-clip shape of ``layer`` for clips of ``clip_seconds``, computed without weights or a framework
    (what ``model.layer_shape`` returns for the loaded model), or None for a family whose shapes only the
    loaded network knows (a user's own module); with ``pooled`` (axis names), the shape of the layer stored
    pooled over those axes at extraction (``activations.store``); with ``components``, the shape of the
    (pooled) layer stored projected to that many components: ``(components,)``."""
    axes = model_layer_axes(model_config, layer)
    shape = registry.layer_shape(model_config, layer,
                                 clip_samples(clip_seconds, registry.sample_rate(model_config)))
    if shape is None:
        return None
    kept = kept_shape(shape, axes, pooled)
    if components is None:
        return kept
    check_components(components, math.prod(kept), f"activations.store.{layer}.project")
    return (int(components),)


def check_axes(names, axes) -> None:
    """Every name in ``names`` is one of ``axes``."""
    unknown = [name for name in names if name not in axes]
    if unknown:
        raise ValueError(f"cannot pool over {unknown[0]!r}: the layer's axes are {', '.join(axes)}")


def kept_shape(shape, axes, pooled) -> tuple[int, ...]:
    """``shape`` (one size per name in ``axes``) without the axes named in ``pooled``."""
    check_axes(pooled, axes)
    return tuple(int(size) for size, name in zip(shape, axes) if name not in pooled)


def check_components(components, features: int, key: str) -> None:
    """``components`` is a whole number from 1 to ``features`` (the values per clip it projects)."""
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ValueError(f"{key}: {components!r} is not a number of components; give a whole number >= 1")
    if components > features:
        raise ValueError(f"{key}: {components} components are more than the {features} values per clip they "
                         f"would project; a projection cannot add information: use at most {features}, or store "
                         "the layer full")
