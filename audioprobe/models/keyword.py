"""The keyword networks that Study 2 trains, as a model kind (``kind: keyword``), so that Studies 1 and 3 can run
on them: the Keras adapter over the trained classifier, with Study 2's front end (cochleagram or STFT
magnitude) before it.

An entry names the architecture and the dataset Study 2 trained it on: ``{kind: keyword, arch: conv2d,
dataset: commands-synth}``. Its weights are the file rule train_keyword_model writes, and the front end and
the classifier's settings are Study 2's own (``metamers.frontend``, ``metamers.groups``,
``metamers.sizes``), which the workflow adds to the entry (the registry's ``inherits``). The layers are
Study 2's metamer layers: the input representation, the two conv stages, the dense layer and the logits.
"""

from __future__ import annotations

import json
from pathlib import Path

LAYERS = ("input_representation", "conv_0", "conv_1", "dense", "logits")
#: the entry's keys that come from elsewhere in the config (a "{key}" part names one of the entry's own keys)
INHERITS = {"frontend": ("metamers", "frontend"), "groups": ("metamers", "groups"), "sizes": ("metamers", "sizes"),
            "clip_seconds": ("datasets", "{dataset}", "clip_seconds")}
SAMPLE_RATE = 16000


def weights_file(name: str, model_config: dict) -> str:
    return f"results/metamers/{model_config['dataset']}/models/{model_config['arch']}/weights.weights.h5"


def layouts(arch: str, frontend_kind: str) -> dict[str, str]:
    """The axes of each layer: a cochleagram is [freq, time] (its bands are the input's channels), an STFT
    magnitude [time, freq]; the conv stages keep that order (conv2d, local_frequency) or convolve over time
    with frequency folded into the channels (the temporal architectures)."""
    planar = "ftc" if frontend_kind == "cochleagram" else "tfc"
    temporal = arch in ("grouped_temporal", "fc_frequency")
    return {"input_representation": "ct" if frontend_kind == "cochleagram" else "tc",
            "conv_0": "tc" if temporal else planar, "conv_1": "tc" if temporal else planar,
            "dense": "c", "logits": "c"}


def class_names(name: str, model_config: dict) -> str:
    """The evaluation record beside the weights holds the words (``class_names``)."""
    return str(Path(weights_file(name, model_config)).with_name("evaluation.json"))


def build(name: str, model_config: dict, weights, threads: int | None = None):
    from audioprobe.io.download import sha256_of
    from audioprobe.metamers import frontends
    from audioprobe.metamers import training as fit
    from audioprobe.models.keras_model import KerasAdapter, set_threads

    set_threads(threads)
    weights = weights or weights_file(name, model_config)
    evaluation = json.loads(Path(weights).with_name("evaluation.json").read_text())
    frontend = frontends.build_frontend(model_config["frontend"])
    classifier = fit.load_classifier(weights, model_config["arch"], tuple(evaluation["input_shape"]),
                                     len(evaluation["class_names"]), groups=model_config["groups"],
                                     sizes=model_config["sizes"])
    return KerasAdapter(classifier, name=name, sample_rate=SAMPLE_RATE, layers=list(LAYERS),
                        layouts=layouts(model_config["arch"], model_config["frontend"]["kind"]), head="logits",
                        scores="softmax", frontend=frontend, input_samples=trained_samples(model_config),
                        weights_sha256=sha256_of(weights), threads=threads)


def trained_samples(model_config: dict) -> int:
    """The clip length the classifier was trained on: its input shape is fixed, so every clip is zero-padded
    or cut to it (the adapter logs it)."""
    return int(round(float(model_config["clip_seconds"]) * SAMPLE_RATE))
