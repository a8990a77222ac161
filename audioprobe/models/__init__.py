"""Model adapters. :func:`load` builds one from its config; :func:`layer_names` needs no framework."""

from __future__ import annotations

KINDS = ("yamnet",)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"model kind {kind!r} is unknown; audioprobe knows {', '.join(KINDS)}")


def layer_names(kind: str) -> list[str]:
    """The layers a model kind exposes, without loading weights or importing its framework."""
    _check_kind(kind)
    from audioprobe.models.yamnet_weights import LAYER_DEFS

    return [f"layer{i}" for i in range(1, len(LAYER_DEFS) + 1)]


def sample_rate(kind: str) -> int:
    _check_kind(kind)
    return 16000


def load(name: str, model_config: dict, weights: str, threads: int | None = None):
    """The adapter for ``model_config['kind']`` with weights from ``weights`` (a path or a hub handle)."""
    kind = model_config["kind"]
    _check_kind(kind)
    from audioprobe.models.yamnet import Yamnet
    from audioprobe.models.yamnet_weights import load_weights

    numerics = model_config.get("numerics", "float")
    return Yamnet(load_weights(weights), name=name, threads=threads, numerics=numerics)
