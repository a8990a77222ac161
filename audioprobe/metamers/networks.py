"""The networks metamers are made of: a trained keyword network (front end + classifier, TensorFlow) or chosen
layers of a pretrained model (its own framework), both as one differentiable pass to every metamer layer."""

from __future__ import annotations

import json

import numpy as np

from audioprobe.models.base import RELU_GRADIENTS


class KeywordNetwork:
    """Front end + trained classifier: waveforms -> every metamer layer in one differentiable pass, its
    matched ReLUs read with their true gradient or through a FakeReLU (``relu_gradient``)."""

    framework = "tensorflow"

    def __init__(self, settings: dict, weights_path, evaluation: dict, samples: int):
        from audioprobe.metamers import architectures, frontends
        from audioprobe.metamers import training as fit

        self.class_names = list(evaluation["class_names"])
        self.frontend = frontends.build_frontend(settings["frontend"])
        shape = self.frontend.output_shape(samples)
        self.classifier = fit.load_classifier(weights_path, settings["arch"], shape, len(self.class_names),
                                              groups=settings["groups"], sizes=settings["sizes"])
        self.layers = architectures.metamer_layers(self.classifier)
        self._outputs = {mode: architectures.layer_model(self.classifier, self.layers, relu_gradient=mode)
                         for mode in RELU_GRADIENTS}

    def forward(self, waveforms, relu_gradient: str = "true"):
        return self._outputs[relu_gradient](self.frontend(waveforms), training=False)

    def predict(self, waveforms: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return np.concatenate([np.argmax(self.forward(tf.constant(waveforms[i:i + 64]))["logits"], axis=-1)
                               for i in range(0, len(waveforms), 64)])


class PretrainedNetwork:
    """A model adapter's chosen layers (float numerics, differentiable); prediction = top clip-level score."""

    def __init__(self, settings: dict, threads: int):
        from audioprobe import models

        model_config = dict(settings["model_config"])
        if model_config["kind"] == "yamnet":
            model_config["numerics"] = "float"  # differentiable
        self.model = models.load(settings["model"], model_config, settings["weights"], threads=threads)
        self.framework = self.model.framework
        self.layers = self.model.check_layers(settings["layers"])
        self._forward = {mode: self.model.differentiable(self.layers, relu_gradient=mode) for mode in RELU_GRADIENTS}

    def forward(self, waveforms, relu_gradient: str = "true"):
        return self._forward[relu_gradient](waveforms)

    def predict(self, waveforms: np.ndarray) -> np.ndarray:
        last = self.model.layers()[-1]
        scores = self.model.forward_from(last, self.model.activations(waveforms, [last])[last])["scores"]
        return np.argmax(scores.mean(axis=1), axis=-1)


def load_network(settings: dict, samples: int, threads: int, *, weights_path=None, evaluation_path=None):
    """The network a metamer rule works on, from its settings: a keyword network reads its trained weights
    (``weights_path``) and its evaluation (``evaluation_path``, for the class count); a pretrained one loads
    ``settings["weights"]``."""
    if settings["kind"] == "keyword":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
        evaluation = json.loads(open(evaluation_path).read())
        return KeywordNetwork(settings, weights_path, evaluation, samples)
    return PretrainedNetwork(settings, threads)


def as_tensor(waves: np.ndarray, framework: str):
    """A float32 waveform batch as a tensor of ``framework``."""
    if framework == "torch":
        import torch

        return torch.as_tensor(np.ascontiguousarray(waves, dtype=np.float32))
    import tensorflow as tf

    return tf.constant(np.asarray(waves, dtype=np.float32))


def as_array(value) -> np.ndarray:
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def layer_activations(net, waves: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """{layer: activations of ``waves``} at every layer of ``net``, in batches; NaN waveforms pass as zeros."""
    parts: dict[str, list] = {layer: [] for layer in net.layers}
    for start in range(0, len(waves), batch):
        chunk = np.nan_to_num(waves[start:start + batch])  # diverged metamers are flagged, not propagated
        for layer, value in net.forward(as_tensor(chunk, net.framework)).items():
            parts[layer].append(as_array(value))
    return {layer: np.concatenate(values) for layer, values in parts.items()}
