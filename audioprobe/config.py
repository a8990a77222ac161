"""Config checking beyond the schema: defaults in nested entries, and cross-references between sections."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


# Keys that were renamed: {old path: (new path, what else the user should know)}. The schema refuses unknown
# keys with a bare "Additional properties are not allowed"; check_renamed names the new key instead.
RENAMED = {
    ("dissect", "concepts", "scale"): (
        "dissect.similarity.scale",
        "its default changed from 100 to 1 (raw cosines, as CLIP-Dissect and AND's TAB pass them); "
        "write dissect: {similarity: {scale: 100}} to keep the old behaviour"),
}


def check_renamed(config: dict) -> None:
    """Refuse a key that was renamed, naming its new place (call before schema validation)."""
    for path, (new, note) in RENAMED.items():
        node = config
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            raise ConfigError(f"{'.'.join(path)} was renamed {new}: move the setting there ({note})")


def load_schema(path=SCHEMA) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def fill_defaults(config: dict, schema: dict) -> dict:
    """Fill schema defaults into ``config`` in place, through properties, additionalProperties, $ref and
    if/then branches (snakemake's own ``set_default`` only follows ``properties``)."""
    _fill(config, schema, schema)
    return config


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        target = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _fill(value, node: dict, root: dict) -> None:
    node = _resolve(node, root)
    if not isinstance(value, dict):
        return
    for branch in node.get("allOf", []):  # first, so that a kind's own defaults win over the general ones
        condition = branch.get("if", {}).get("properties", {})
        if all(value.get(k) == c.get("const") for k, c in condition.items()):
            _fill(value, branch.get("then", {}), root)
    for key, sub in node.get("properties", {}).items():
        if not isinstance(sub, dict):
            continue
        sub = _resolve(sub, root)
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            _fill(value[key], sub, root)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key in value:
            if key not in node.get("properties", {}):
                _fill(value[key], extra, root)


def check_references(config: dict, layer_names) -> None:
    """Every run names a configured model and dataset, and every requested layer exists."""
    for index, run in enumerate(config["activations"]["runs"]):
        for section in ("model", "dataset"):
            name = run[section]
            if name not in config[section + "s"]:
                known = ", ".join(config[section + "s"]) or "none"
                raise ConfigError(f"activations.runs[{index}].{section}: {name!r} is not under {section}s "
                                  f"(configured: {known})")
        layers = config["activations"]["layers"]
        if layers != "all":
            known = layer_names(config["models"][run["model"]]["kind"])
            unknown = [layer for layer in layers if layer not in known]
            if unknown:
                raise ConfigError(f"activations.layers: model {run['model']!r} has no layer {unknown[0]!r}; "
                                  f"its layers are {', '.join(known)}")


def check_latent(config: dict, layer_names) -> None:
    """Study 1 runs must be activation runs, and a fixed flow layer must be one of their layers."""
    latent = config.get("latent", {})
    extracted = {(run["model"], run["dataset"]) for run in config["activations"]["runs"]}
    for index, run in enumerate(latent.get("runs", [])):
        if (run["model"], run["dataset"]) not in extracted:
            raise ConfigError(f"latent.runs[{index}]: {run['model']} on {run['dataset']} is not in "
                              "activations.runs; add it there so its activations are extracted")
        flow_layer(config, run["model"], layer_names)


def flow_layer(config: dict, model: str, layer_names) -> str | None:
    """The configured flow layer as a layer name; None when it is chosen from decoding ('best')."""
    layer = config["latent"]["flow"]["layer"]
    if layer == "best":
        return None
    known = layer_names(config["models"][model]["kind"])
    if config["activations"]["layers"] != "all":
        known = [name for name in known if name in config["activations"]["layers"]]
    if isinstance(layer, int):
        if not 1 <= layer <= len(known):
            raise ConfigError(f"latent.flow.layer: {layer} is out of range; model {model!r} has layers 1 to "
                              f"{len(known)} ({', '.join(known)})")
        return known[layer - 1]
    if layer not in known:
        raise ConfigError(f"latent.flow.layer: {layer!r} is not an extracted layer of {model!r}; "
                          f"choose one of {', '.join(known)} or 'best'")
    return layer



def check_dissect(config: dict, layer_names) -> None:
    """Study 3 runs must be activation runs with every dissected layer cached, and models they name exist."""
    dissect = config.get("dissect", {})
    extracted = {(run["model"], run["dataset"]) for run in config["activations"]["runs"]}
    for index, run in enumerate(dissect.get("runs", [])):
        if (run["model"], run["dataset"]) not in extracted:
            raise ConfigError(f"dissect.runs[{index}]: {run['model']} on {run['dataset']} is not in "
                              "activations.runs; add it there so its activations are extracted")
        cached = layer_names(config["models"][run["model"]]["kind"])
        if config["activations"]["layers"] != "all":
            cached = [name for name in cached if name in config["activations"]["layers"]]
        wanted = dissect["layers"]
        missing = [layer for layer in (cached if wanted == "all" else wanted) if layer not in cached]
        if missing:
            raise ConfigError(f"dissect.layers: {missing[0]!r} has no cached activations for {run['model']!r}; "
                              f"cached layers are {', '.join(cached)}")
        if wanted != "all" and [layer for layer in cached if layer in wanted] != list(wanted):
            raise ConfigError("dissect.layers: list the layers in the network's order, input side first")
    captions = dissect.get("captions", {})
    if dissect.get("runs") and captions.get("backend") == "tags" and captions["tagger"] not in config["models"]:
        raise ConfigError(f"dissect.captions.tagger: {captions['tagger']!r} is not under models "
                          f"(configured: {', '.join(config['models'])})")
    if "tab" in dissect.get("methods", []) and not dissect["concepts"]["clap"]:
        raise ConfigError("dissect.methods lists tab, which needs a CLAP model: set dissect.concepts.clap to a "
                          "local CLAP folder, or remove tab")


def circular_captioner(config: dict, model: str) -> bool:
    """True when the tags captioner is the network under dissection (circular last-layer evaluation)."""
    captions = config["dissect"]["captions"]
    return captions["backend"] == "tags" and captions["tagger"] == model


def check_circular(config: dict) -> list[str]:
    """Refuse a circular captioner when the config says so; otherwise return the warnings to record."""
    warnings = []
    for model, dataset in ((run["model"], run["dataset"]) for run in config["dissect"]["runs"]):
        if not circular_captioner(config, model):
            continue
        message = (f"dissect: the captioner tags({model}) is the network under dissection on {dataset}: "
                   "its own predictions describe the clips, so the last-layer evaluation is partly circular")
        if config["dissect"]["captions"]["on_circular"] == "refuse":
            raise ConfigError(message + "; use another captions.tagger or backend, or set "
                              "captions.on_circular: warn")
        warnings.append(message)
    return warnings
