"""Model adapters. :func:`load` builds one from its config entry; everything the workflow needs before that
(layers, shapes, framework, weights files and their checks) is in :mod:`audioprobe.models.registry`."""

from __future__ import annotations

from audioprobe.models.registry import KINDS, layer_names, sample_rate, spec_of
from audioprobe.models.weights import (WEIGHT_FILE_SUFFIXES, WeightsSettingError, is_hub_handle, weights_form,
                                       weights_problem)

__all__ = ["KINDS", "WEIGHT_FILE_SUFFIXES", "WeightsSettingError", "check_weights_setting", "is_hub_handle",
           "layer_names", "load", "sample_rate", "weights_form", "weights_problem"]


def check_weights_setting(name: str, model_config) -> str:
    """Check ``models.<name>``'s weights setting before any job runs (rules/common.smk) and say its form
    (for YAMNet, :func:`weights_form`'s; a YAMNet entry may be given as its bare weights value)."""
    if not isinstance(model_config, dict):
        model_config = {"kind": "yamnet", "weights": model_config}
    if problem := spec_of(model_config["kind"]).weights_problem(name, model_config):
        raise WeightsSettingError(problem)
    if model_config["kind"] == "yamnet":
        return weights_form(model_config.get("weights"), f"models.{name}.weights")
    return "file"


def load(name: str, model_config: dict, weights, threads: int | None = None):
    """The adapter for ``model_config['kind']`` with weights from ``weights`` (the file the rule gives as
    input, or a hub handle). Each family checks the files it fetched or found inside a package against their
    recorded sha256 on every load (:class:`audioprobe.io.download.WeightsChanged`); weights a user names in
    the config are theirs and are not checked."""
    from audioprobe.models.registry import build

    return build(name, model_config, weights, threads)
