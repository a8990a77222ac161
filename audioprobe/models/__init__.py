"""Model adapters. :func:`load` builds one from its config; :func:`layer_names` and the weights checks
need no framework."""

from __future__ import annotations

import os
from pathlib import Path

KINDS = ("yamnet",)
WEIGHT_FILE_SUFFIXES = (".tflite", ".h5", ".hdf5")
ACCEPTED_WEIGHTS = ("an existing .tflite file (the TF Hub / Kaggle TFLite export), a Keras .h5 or .hdf5 weights "
                    "file, a SavedModel folder (one holding saved_model.pb), an http(s) TF Hub handle, or null "
                    "to let rule download_yamnet fetch the TFLite export")


class WeightsSettingError(ValueError):
    """``models.<name>.weights`` is neither an existing weights file or SavedModel folder nor a hub handle."""


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


def is_hub_handle(value) -> bool:
    """A TF Hub handle: an http(s) URL, loaded at run time (anything else must be a local path)."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def weights_problem(value, config_key: str) -> str | None:
    """What is wrong with a weights setting, naming ``config_key``, the path and the accepted forms; or None."""
    if value is None or is_hub_handle(value):
        return None
    if not isinstance(value, str) or not value.strip():
        return f"{config_key}: {value!r} is not a path. {config_key} takes {ACCEPTED_WEIGHTS}."
    path = Path(value)
    if path.is_file():
        if path.suffix in WEIGHT_FILE_SUFFIXES:
            return None
        problem = f"is a file, but not a {', '.join(WEIGHT_FILE_SUFFIXES)} file"
    elif path.is_dir():
        if (path / "saved_model.pb").is_file():
            return None
        problem = "is a folder without saved_model.pb, so not a SavedModel"
    else:
        from audioprobe.config import null_hint

        problem = "does not exist" + ("" if path.is_absolute() else f" (relative to {os.getcwd()})")
        problem += null_hint(value, "to let rule download_yamnet fetch the weights, set it to null in a "
                                    "--configfile, or leave it out")
    return f"{config_key}: {value} {problem}. {config_key} takes {ACCEPTED_WEIGHTS}."


def weights_form(value, config_key: str = "models.yamnet.weights") -> str:
    """``download`` (null), ``hub`` (an http(s) handle), ``file`` or ``saved_model``; otherwise a
    :class:`WeightsSettingError` naming ``config_key``, the path and the accepted forms."""
    if problem := weights_problem(value, config_key):
        raise WeightsSettingError(problem)
    if value is None:
        return "download"
    if is_hub_handle(value):
        return "hub"
    return "saved_model" if Path(value).is_dir() else "file"


def check_weights_setting(name: str, value) -> str:
    """Check ``models.<name>.weights`` before any job runs (rules/common.smk): see :func:`weights_form`."""
    return weights_form(value, f"models.{name}.weights")


def load(name: str, model_config: dict, weights: str, threads: int | None = None):
    """The adapter for ``model_config['kind']`` with weights from ``weights`` (a path or a hub handle).

    ``model_config`` is the model's config entry. When its ``weights`` is null, ``weights`` is the file
    rule download_yamnet wrote, checked here against ``model_config['sha256']`` on every load: a changed file
    stops the job (:class:`audioprobe.io.download.WeightsChanged`). Weights the config names are not checked.
    """
    kind = model_config["kind"]
    _check_kind(kind)
    from audioprobe.models.yamnet import Yamnet
    from audioprobe.models.yamnet_weights import load_weights

    sha256 = None
    if _downloaded(model_config) and Path(weights).is_file():
        from audioprobe.io.download import verify_weights

        sha256 = verify_weights(weights, model_config["sha256"], f"models.{name}")  # the file is hashed once
    numerics = model_config.get("numerics", "float")
    return Yamnet(load_weights(weights, f"models.{name}.weights", sha256=sha256), name=name, threads=threads,
                  numerics=numerics)


def _downloaded(model_config: dict) -> bool:
    """Weights fetched by the workflow (``weights`` null) with a recorded sha256 to check them against."""
    return "weights" in model_config and not model_config["weights"] and bool(model_config.get("sha256"))
