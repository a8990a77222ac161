"""Config checking beyond the schema: defaults in nested entries, and cross-references between sections."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import yaml

from audioprobe.nulls import NULLS as _NULLS, null_hint  # noqa: F401 (null_hint is read from here too)

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
    ("metamers", "yamnet"): (
        "metamers.pretrained", "the same settings, model and layers: the pretrained network need not be YAMNet"),
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


def _matching_then(node: dict, value: dict) -> list[dict]:
    """The ``then`` of every allOf branch of ``node`` whose if-condition (consts on properties) ``value`` meets."""
    return [branch.get("then", {}) for branch in node.get("allOf", [])
            if all(value.get(k) == c.get("const") for k, c in branch.get("if", {}).get("properties", {}).items())]


def _fill(value, node: dict, root: dict) -> None:
    node = _resolve(node, root)
    if not isinstance(value, dict):
        return
    for then in _matching_then(node, value):  # first, so that a kind's own defaults win over the general ones
        _fill(value, then, root)
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


def layers_for(value, model: str):
    """A layers setting for one model: "all", a list, or a {model: "all" or list} mapping (a model it does not
    name gets "all"), so that one config can hold models whose layers have different names."""
    if isinstance(value, dict):
        return value.get(model, "all")
    return value


def check_references(config: dict, layer_names) -> None:
    """Every run names a configured model and dataset, and every requested layer exists."""
    for name, entry in config["models"].items():
        if entry["kind"] != "keyword":
            continue
        if entry["dataset"] not in config["datasets"]:
            raise ConfigError(f"models.{name}.dataset: {entry['dataset']!r} is not under datasets "
                              f"(configured: {', '.join(config['datasets'])})")
        if entry["arch"] not in config["metamers"]["architectures"]:
            raise ConfigError(f"models.{name}.arch: {entry['arch']!r} is not in metamers.architectures "
                              f"({', '.join(config['metamers']['architectures'])}), so Study 2 does not train it: "
                              "add it there")
    for index, run in enumerate(config["activations"]["runs"]):
        for section in ("model", "dataset"):
            name = run[section]
            if name not in config[section + "s"]:
                known = ", ".join(config[section + "s"]) or "none"
                raise ConfigError(f"activations.runs[{index}].{section}: {name!r} is not under {section}s "
                                  f"(configured: {known})")
        layers = layers_for(config["activations"]["layers"], run["model"])
        if layers != "all":
            known = layer_names(config["models"][run["model"]])
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
    known = layer_names(config["models"][model])
    extracted = layers_for(config["activations"]["layers"], model)
    if extracted != "all":
        known = [name for name in known if name in extracted]
    if isinstance(layer, int):
        if not 1 <= layer <= len(known):
            raise ConfigError(f"latent.flow.layer: {layer} is out of range; model {model!r} has layers 1 to "
                              f"{len(known)} ({', '.join(known)})")
        return known[layer - 1]
    if layer not in known:
        raise ConfigError(f"latent.flow.layer: {layer!r} is not an extracted layer of {model!r}; "
                          f"choose one of {', '.join(known)} or 'best'")
    return layer



def check_compare(config: dict) -> None:
    """Each compare run names a dataset once, and every model it names is an activation run on it."""
    extracted = {(run["model"], run["dataset"]) for run in config["activations"]["runs"]}
    seen = set()
    for index, run in enumerate(config.get("compare", {}).get("runs", [])):
        if run["dataset"] in seen:
            raise ConfigError(f"compare.runs[{index}]: {run['dataset']!r} has an earlier run; list all the models "
                              "compared on a dataset in one run")
        seen.add(run["dataset"])
        for model in run["models"]:
            if (model, run["dataset"]) not in extracted:
                raise ConfigError(f"compare.runs[{index}].models: {model} on {run['dataset']} is not in "
                                  "activations.runs; add it there so its activations are extracted")
        for target in run.get("targets", []):
            entry = config["datasets"].get(target)
            if entry is None or entry["kind"] != "target":
                raise ConfigError(f"compare.runs[{index}].targets: {target!r} is not a dataset of kind target")
            if entry["stimuli"] != run["dataset"]:
                raise ConfigError(f"compare.runs[{index}].targets: {target!r} holds responses to "
                                  f"{entry['stimuli']!r}, not to {run['dataset']!r}; compare it in that dataset's run")


def check_targets(config: dict) -> None:
    """A target's stimuli are an audio dataset, and no audio step reads a target."""
    datasets = config["datasets"]
    for name, entry in datasets.items():
        if entry["kind"] == "target" and datasets.get(entry["stimuli"], {}).get("kind") in (None, "target"):
            raise ConfigError(f"datasets.{name}.stimuli: {entry['stimuli']!r} is not an audio dataset under datasets "
                              f"(configured: {', '.join(n for n, e in datasets.items() if e['kind'] != 'target')})")
    readers = [(f"activations.runs[{i}].dataset", run["dataset"]) for i, run in enumerate(config["activations"]["runs"])]
    readers.append(("metamers.dataset", config.get("metamers", {}).get("dataset")))
    for key, name in readers:
        if datasets.get(name, {}).get("kind") == "target":
            raise ConfigError(f"{key}: {name!r} is a target (responses, no audio); name its stimuli dataset "
                              f"{datasets[name]['stimuli']!r} instead")


def check_dissect(config: dict, layer_names) -> None:
    """Study 3 runs must be activation runs with every dissected layer cached, and models they name exist."""
    dissect = config.get("dissect", {})
    extracted = {(run["model"], run["dataset"]) for run in config["activations"]["runs"]}
    for index, run in enumerate(dissect.get("runs", [])):
        if (run["model"], run["dataset"]) not in extracted:
            raise ConfigError(f"dissect.runs[{index}]: {run['model']} on {run['dataset']} is not in "
                              "activations.runs; add it there so its activations are extracted")
        cached = layer_names(config["models"][run["model"]])
        extracted_layers = layers_for(config["activations"]["layers"], run["model"])
        if extracted_layers != "all":
            cached = [name for name in cached if name in extracted_layers]
        wanted = layers_for(dissect["layers"], run["model"])
        missing = [layer for layer in (cached if wanted == "all" else wanted) if layer not in cached]
        if missing:
            raise ConfigError(f"dissect.layers: {missing[0]!r} has no cached activations for {run['model']!r}; "
                              f"cached layers are {', '.join(cached)}")
        from audioprobe.models.registry import continuable

        cuts = continuable(config["models"][run["model"]])
        blocked = [layer for layer in (cached if wanted == "all" else wanted) if cuts is not None and layer not in cuts]
        if blocked:
            raise ConfigError(f"dissect.layers: {run['model']!r} cannot be continued from {blocked[0]!r} (a skip "
                              "connection reads around it), and pruning continues the network from each dissected "
                              f"layer: choose among {', '.join(cuts)}")
        if "head" in (cached if wanted == "all" else wanted):
            raise ConfigError(f"dissect.layers: {run['model']!r} has a layer named 'head', the name of the trained "
                              "head's files: list the layers to dissect without it (or name the layer otherwise "
                              "in the model's entry)")
        if wanted != "all" and [layer for layer in cached if layer in wanted] != list(wanted):
            raise ConfigError("dissect.layers: list the layers in the network's order, input side first")
    captions = dissect.get("captions", {})
    if dissect.get("runs") and captions.get("backend") == "tags":
        for run in dissect["runs"]:
            tagger_for(config, run["model"])  # "auto" finds one, or says what to add
    if dissect.get("runs") and captions.get("backend") == "tags" and captions["tagger"] != "auto" \
            and captions["tagger"] not in config["models"]:
        raise ConfigError(f"dissect.captions.tagger: {captions['tagger']!r} is not under models "
                          f"(configured: {', '.join(config['models'])})")
    if "tab" in dissect.get("methods", []) and not dissect["concepts"]["clap"]:
        raise ConfigError("dissect.methods lists tab, which needs a CLAP model: set dissect.concepts.clap to a "
                          "local CLAP folder, or remove tab")
    check_simulation_prompts(dissect.get("llm", {}).get("prompts", {}))


def check_simulation_prompts(prompts: dict) -> None:
    line = prompts.get("simulation_line")
    if line is None:
        return
    for field in ("{caption}", "{explanation}"):
        if field not in line:
            raise ConfigError(f"dissect.llm.prompts.simulation_line has no {field}: each clip's question must show "
                              "the clip's caption and the explanation scored")


def check_storage(config: dict, layer_names) -> None:
    """activations.store names extracted layers, pools only axes the pooled vectors pool, projects a layer to
    no more components than it has values and to no fewer than Study 1 fits, and stores pooled or projected
    no layer that Study 3 dissects or that Study 1's flow may use: both continue the network from a layer's
    full activations."""
    activations = config["activations"]
    extracted = {}
    for run in activations["runs"]:
        known = layer_names(config["models"][run["model"]])
        extracted[run["model"]] = [name for name in known
                                   if layers_for(activations["layers"], run["model"]) == "all"
                                   or name in layers_for(activations["layers"], run["model"])]
    for layer, how in activations.get("store", {}).items():
        if how == "full":
            continue
        key = f"activations.store.{layer}"
        if not any(layer in layers for layers in extracted.values()):
            raise ConfigError(f"{key}: {layer!r} is not an extracted layer of any run's model "
                              f"(extracted: {', '.join(dict.fromkeys(sum(extracted.values(), [])))})")
        projected = isinstance(how, dict) and "project" in how
        # a projected layer's pooled vectors are its components, whatever activations.pool.axes says
        outside = [name for name in how.get("pool", []) if name not in activations["pool"]["axes"]] \
            if isinstance(how, dict) and not projected else []
        if outside:
            raise ConfigError(f"{key}.pool: {outside[0]!r} is not in activations.pool.axes "
                              f"({', '.join(activations['pool']['axes']) or 'none'}), so the pooled vectors keep "
                              "that axis and the stored layer must too: remove it here or add it there")
        problems = _needs_full(config, layer, extracted)
        if problems:
            reason, alternative = problems[0]
            raise ConfigError(f"{key}: {layer} is stored {_stored_as(how)}, but {reason} and needs its full "
                              f"activations: remove {layer} from activations.store to store it full, or "
                              f"{alternative}")
        if projected:
            _check_projection(config, layer, how, extracted)


def _stored_as(how) -> str:
    """How an activations.store entry other than full stores its layer, in words."""
    if not isinstance(how, dict) or "project" not in how:
        return "pooled"
    return "pooled and projected" if how.get("pool") else "projected"


def _check_projection(config: dict, layer: str, how: dict, extracted: dict) -> None:
    """A projected layer has at least as many values per clip as components in every run that extracts it,
    and at least as many components as Study 1's PCA fits in every Study 1 run."""
    from audioprobe.shapes import model_layer_shape

    key, components = f"activations.store.{layer}.project", how["project"]
    pooled = how.get("pool", [])
    for run in config["activations"]["runs"]:
        if layer not in extracted.get(run["model"], []):
            continue
        seconds = config["datasets"][run["dataset"]]["clip_seconds"]
        shape = model_layer_shape(config["models"][run["model"]], layer, seconds, pooled=pooled)
        if shape is None:  # only the loaded network knows it: extraction checks the components
            continue
        size = math.prod(shape)
        if components > size:
            where = f"{layer}{' pooled over ' + ', '.join(pooled) if pooled else ''}"
            raise ConfigError(f"{key}: {components} components are more than the {size} values per clip of "
                              f"{where} for {run['model']} on {run['dataset']} ({seconds} s clips), and a "
                              f"projection cannot add information: set it to at most {size}, or remove {layer} "
                              "from activations.store to store it full")
    latent = config.get("latent", {})
    for index, run in enumerate(latent.get("runs", [])):
        fitted = latent["pca_components"]
        if layer in extracted.get(run["model"], []) and components < fitted:
            raise ConfigError(f"{key}: {components} components, but Study 1 fits latent.pca_components "
                              f"({fitted}) principal components per fold on them (latent.runs[{index}]: "
                              f"{run['model']} on {run['dataset']}): set {key} to at least {fitted}, or lower "
                              f"latent.pca_components to at most {components}")


def _needs_full(config: dict, layer: str, extracted: dict) -> list[tuple[str, str]]:
    """(why, what else to do) for each study that needs ``layer`` full: Study 3 continues the network from
    every dissected layer, and Study 1's transfer from its flow layer."""
    problems = []
    dissect = config.get("dissect", {})
    for index, run in enumerate(dissect.get("runs", [])):
        wanted = layers_for(dissect["layers"], run["model"])
        layers = extracted.get(run["model"], []) if wanted == "all" else wanted
        if layer in layers:
            listed = "all" if wanted == "all" else "lists it"
            problems.append((f"Study 3 continues the network from it (dissect.layers: {listed}, for "
                             f"dissect.runs[{index}])", "list dissect.layers without it"))
    latent = config.get("latent", {})
    for run in latent.get("runs", []):
        flow, extracted_here = latent["flow"]["layer"], extracted.get(run["model"], [])
        chosen = flow if flow == "best" else flow_layer(config, run["model"], lambda kind, known=extracted_here: known)
        if layer in extracted_here and chosen in ("best", layer):
            how = "may continue" if flow == "best" else "continues"
            problems.append((f"Study 1's transfer {how} the network from it (latent.flow.layer: {flow!r})",
                             "set latent.flow.layer to a layer stored full"))
    return problems


def tagger_for(config: dict, model: str) -> str:
    """The model whose tags caption the clips when ``model`` is dissected: dissect.captions.tagger, or for
    "auto" the first configured model with class names of its own (a class-map CSV or tags that ship with the
    family) other than ``model``, so the captions do not come from the network under dissection; the model
    itself only when no other has class names (then the run warns that the evaluation is circular)."""
    from audioprobe.models.registry import can_tag

    chosen = config["dissect"]["captions"]["tagger"]
    if chosen != "auto":
        return chosen

    candidates = [name for name in config["models"] if can_tag(name, config["models"][name])]
    others = [name for name in candidates if name != model]
    if not candidates:
        raise ConfigError(f"dissect.captions.tagger: auto found no model with class names to tag the clips of "
                          f"{model!r} (configured: {', '.join(config['models'])}): add one (yamnet or musicnn), "
                          "name one in dissect.captions.tagger, or use another dissect.captions.backend")
    return (others or candidates)[0]


def circular_captioner(config: dict, model: str) -> bool:
    """True when the tags captioner is the network under dissection (circular last-layer evaluation)."""
    captions = config["dissect"]["captions"]
    return captions["backend"] == "tags" and tagger_for(config, model) == model


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


# --- strings from --config --------------------------------------------------------------------------------
# Snakemake reads a nested --config value with YAML's BaseLoader, so activations='{"batch_size": 16}' arrives
# as {"batch_size": "16"}. coerce_strings turns such strings back into what the schema asks for.

_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INTEGER = re.compile(r"^[-+]?[0-9]+$")
_NUMBER = re.compile(r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$")


def coerce_strings(config: dict, schema: dict) -> dict:
    """Convert, in place, strings where the schema asks for an integer, number, boolean or null and the
    string parses cleanly as one ("16" -> 16, "0.5" -> 0.5, "true" -> True, "null" -> None). A string is
    never converted where the schema accepts it as it is (a string type, or one of an enum's or a const's
    values), so a layer named "15" or relu_gradient: "true" stay strings. Call before validation."""
    return _coerce(config, schema, schema)


def _alternatives(node: dict, root: dict) -> list[dict]:
    """The node and, recursively, its anyOf / oneOf alternatives, resolved."""
    node = _resolve(node, root)
    found = [node]
    for keyword in ("anyOf", "oneOf"):
        for alternative in node.get(keyword, []):
            found += _alternatives(alternative, root)
    return found


def _branches(value: dict, node: dict, root: dict) -> list[dict]:
    """The node's alternatives and the allOf branches whose if-condition (on consts) the value meets."""
    found = []
    for alternative in _alternatives(node, root):
        found.append(alternative)
        for then in _matching_then(alternative, value):
            found += _alternatives(then, root)
    return found


def _types(node: dict) -> set[str]:
    kind = node.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _coerce(value, node: dict, root: dict):
    if isinstance(value, str):
        return _coerce_scalar(value, _alternatives(node, root))
    if isinstance(value, dict):
        for sub in _branches(value, node, root):
            properties = sub.get("properties", {})
            extra = sub.get("additionalProperties")
            for key in value:
                child = properties[key] if key in properties else extra
                if isinstance(child, dict):
                    value[key] = _coerce(value[key], child, root)
    elif isinstance(value, list):
        for sub in _alternatives(node, root):
            prefix, items = sub.get("prefixItems", []), sub.get("items")
            for index, item in enumerate(value):
                child = prefix[index] if index < len(prefix) else items
                if isinstance(child, dict):
                    value[index] = _coerce(item, child, root)
    return value


def _coerce_scalar(text: str, alternatives: list[dict]):
    accepted = set()
    for node in alternatives:
        if "string" in _types(node) or text in node.get("enum", []) or node.get("const", object()) == text:
            return text
        accepted |= _types(node)
        accepted |= {_type_of(v) for v in node.get("enum", [])}
        if "const" in node:
            accepted.add(_type_of(node["const"]))
    if "null" in accepted and text in _NULLS:
        return None
    if "boolean" in accepted and text in _BOOLEANS:
        return _BOOLEANS[text]
    if accepted & {"integer", "number"} and _INTEGER.match(text):
        return int(text)
    if "number" in accepted and _NUMBER.match(text):
        return float(text)
    return text


def _type_of(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string" if isinstance(value, str) else "object" if isinstance(value, dict) else "array"


# --- schema errors that name the key ----------------------------------------------------------------------


def key_path(parts) -> str:
    """['activations', 'runs', 0, 'dataset'] -> 'activations.runs[0].dataset'."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "the config"


def check_schema(config: dict, schema: dict) -> None:
    """Validate against the schema and raise the most relevant error as '<key path>: <what is wrong>'
    (Snakemake's own validation, which runs after, prints a schema dump with instance['a']['b'] paths)."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return
    message = error.message
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        if allowed:
            message += f"; allowed: {', '.join(allowed)}"
    raise ConfigError(f"{key_path(error.absolute_path)}: {message} (every key, with its type and default, is "
                      "in workflow/schemas/config.schema.yaml)")


# --- Study 2 references -----------------------------------------------------------------------------------


def check_metamers(config: dict, layer_names) -> None:
    """Study 2 names a configured dataset, and its pretrained model and layers exist."""
    metamers = config.get("metamers", {})
    dataset = metamers.get("dataset")
    if dataset is None:
        return
    if dataset not in config["datasets"]:
        raise ConfigError(f"metamers.dataset: {dataset!r} is not under datasets (configured: "
                          f"{', '.join(config['datasets']) or 'none'}); name one of them, or null to turn Study 2 "
                          f"off{null_hint(dataset)}")
    pretrained = metamers.get("pretrained", {})
    model = pretrained.get("model")
    if model is not None and pretrained.get("layers") and model not in config["models"]:
        raise ConfigError(f"metamers.pretrained.model: {model!r} is not under models (configured: "
                          f"{', '.join(config['models']) or 'none'}); name one of them, or null to make no "
                          f"pretrained-model metamers{null_hint(model)}")
    for name in pretrained.get("models", {}):
        if name not in config["models"]:
            raise ConfigError(f"metamers.pretrained.models: {name!r} is not under models (configured: "
                              f"{', '.join(config['models']) or 'none'})")
    for name, layers in pretrained_metamers(config).items():
        key = "metamers.pretrained.layers" if name == model else f"metamers.pretrained.models.{name}"
        known = layer_names(config["models"][name])
        unknown = [layer for layer in layers if layer not in known]
        if unknown:
            raise ConfigError(f"{key}: model {name!r} has no layer {unknown[0]!r}; its layers are {', '.join(known)}")


def pretrained_metamers(config: dict) -> dict[str, list[str]]:
    """{model: layers} of the pretrained models whose layers get metamers: metamers.pretrained.model with its
    layers (unless null or empty), then each of metamers.pretrained.models."""
    pretrained = config["metamers"].get("pretrained", {})
    chosen = {}
    if pretrained.get("model") and pretrained.get("layers"):
        chosen[pretrained["model"]] = list(pretrained["layers"])
    for name, layers in pretrained.get("models", {}).items():
        if layers:
            chosen[name] = list(layers)
    return chosen


# --- labels, once the manifest exists ---------------------------------------------------------------------


def check_labels(clips, labels, key: str, manifest_path, *, use: str = "decoding") -> None:
    """Each of ``labels`` is a label column of the manifest ``clips`` (a DataFrame with label_<name> columns)
    with at least two values; the error names the config ``key`` that chose the label. Call it in the first
    job of a branch (its split)."""
    known = [column[len("label_"):] for column in clips.columns if column.startswith("label_")]
    for label in labels:
        if label not in known:
            raise ConfigError(f"{key}: the manifest {manifest_path} has no label {label!r}; its labels are "
                              f"{', '.join(known) or 'none'}: name one of them in {key}")
        values = sorted(clips[f"label_{label}"].astype(str).unique())
        if len(values) < 2:
            found = f"one value ({values[0]!r})" if values else "no values"
            raise ConfigError(f"{key}: {label!r} has {found} in {manifest_path}: {use} needs at least two; "
                              f"add clips with another {label}, or choose another label in {key}")
