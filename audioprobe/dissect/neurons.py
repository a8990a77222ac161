"""Neurons of a layer: one value per clip and channel, their top and bottom clips, and a seeded sample."""

from __future__ import annotations

import numpy as np

HEAD = "head"  # the linear head's neurons are stored and named as one more layer
POOLS = ("mean", "max", "first")


def channel_masks(selected, units: dict[str, int]) -> dict[str, np.ndarray]:
    """{layer: 0/1 vector} switching off the (layer, neuron) pairs in ``selected``."""
    masks = {}
    for layer, neuron in selected:
        masks.setdefault(layer, np.ones(units[layer], dtype=np.float32))[int(neuron)] = 0.0
    return masks


def pool_neurons(activations: np.ndarray, pool: str) -> np.ndarray:
    """[clips, *spatial, channels] -> [clips, channels].

    ``first`` keeps the first patch and first time frame and averages over frequency: what the original code
    effectively did by taking the first token or time patch of each clip.
    """
    if pool not in POOLS:
        raise ValueError(f"dissect.pool: {pool!r} is not one of {', '.join(POOLS)}")
    values = np.asarray(activations, dtype=np.float64)
    if values.ndim == 2:
        return values
    flat = values.reshape(values.shape[0], -1, values.shape[-1])
    if pool == "mean":
        return flat.mean(axis=1)
    if pool == "max":
        return flat.max(axis=1)
    first = values
    while first.ndim > 3:  # patch, then time: keep index 0
        first = first[:, 0]
    return first.mean(axis=1)


def top_and_bottom(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron, the ``k`` clips with the highest values (best first) and the ``k`` lowest (lowest first).

    Ties go to the earlier clip, so the choice is deterministic."""
    clips = values.shape[0]
    if k > clips // 2:
        raise ValueError(f"dissect.top_k: {k} top and {k} bottom clips need at least {2 * k} probe clips, "
                         f"there are {clips}")
    descending = np.argsort(-values, axis=0, kind="stable")
    ascending = np.argsort(values, axis=0, kind="stable")
    return descending[:k].T, ascending[:k].T


def sample_neurons(units: int, per_layer, seed: int, layer: str) -> np.ndarray:
    """Sorted indices of the neurons to summarise: all, or ``per_layer`` drawn with a seed per layer."""
    if per_layer == "all" or per_layer >= units:
        return np.arange(units)
    rng = np.random.default_rng([seed, *layer.encode()])
    return np.sort(rng.choice(units, size=per_layer, replace=False))


def constant(values: np.ndarray) -> np.ndarray:
    return np.ptp(values, axis=0) == 0
