"""What every model adapter offers the analyses.

An adapter wraps one network. The analyses only use this interface, so adding a model never touches them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

#: how a matched ReLU passes gradients during metamer synthesis (see :meth:`ModelAdapter.differentiable`)
RELU_GRADIENTS = ("fake", "true")
#: how a generic family turns logits into scores
SCORES = ("sigmoid", "softmax")
#: the largest change of the logits (relative to their size) that two placeholder inputs may cause when a
#: network is continued from a layer: more means something after the layer reads the input another way
CUT_TOLERANCE = 1e-5


def scores_of(logits: np.ndarray, kind: str) -> np.ndarray:
    """A network's scores from its logits over the last axis (``kind``: one of SCORES), in float32."""
    logits = np.asarray(logits, dtype=np.float32)
    if kind == "sigmoid":
        return np.exp(-np.logaddexp(np.float32(0), -logits))  # 1 / (1 + e^-x), without overflow
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def fake_relu(x):
    """max(x, 0) forward; the gradient passes through unchanged, also where x < 0 (Feather et al. 2019,
    ``FakeReLU`` in model_metamers_pytorch), so a unit that is off in the metamer can still be pulled on.
    For TensorFlow adapters and front ends."""
    import tensorflow as tf

    @tf.custom_gradient
    def relu_with_identity_gradient(value):
        return tf.nn.relu(value), lambda upstream: upstream

    return relu_with_identity_gradient(x)


def check_layout(layout: str, ndim: int, key: str, defaults: dict[int, str]) -> str:
    """A layer's layout: one letter per axis after the batch, c (channel, required), t (time), f (freq)."""
    if len(layout) != ndim or set(layout) - set("ctf") or len(set(layout)) != len(layout) or "c" not in layout:
        raise ValueError(f"{key}: {layout!r} does not describe an output with {ndim} axes after the batch; give "
                         f"one letter per axis in the module's order, c (channel, required), t (time), f (freq), "
                         f"e.g. {defaults.get(ndim, 'ct')!r}")
    return layout


class ModelAdapter(ABC):
    #: short name used in paths and tables
    name: str
    #: "tensorflow" or "torch": the tensors ``differentiable`` takes and returns
    framework: str
    #: sample rate the network expects, in Hz
    sample_rate: int
    #: the shortest clip, in samples, that gives one full output frame (shorter clips are padded to it)
    min_samples: int = 1
    #: checksum of the weights file, recorded in every artifact made from this model
    weights_sha256: str = ""
    #: how the network's logits become its output scores: "sigmoid" (independent classes) or "softmax"
    scores: str = "sigmoid"
    #: the cached layer whose output is the logits, if the network caches it (None: no layer is)
    head_layer: str | None = None

    @abstractmethod
    def layers(self) -> list[str]:
        """Names of the layers whose activations can be cached, input side first."""

    def layer_axes(self, layer: str) -> tuple[str, ...]:
        """The names of ``layer``'s per-clip axes: every adapter presents patch, time, freq, channel (sizes of
        1 where the network has no such axis), so pooling and the analyses never depend on the model."""
        self.check_layers([layer])
        return ("patch", "time", "freq", "channel")

    @abstractmethod
    def layer_shape(self, layer: str, clip_samples: int) -> tuple[int, ...]:
        """Shape of one clip's activations at ``layer`` for clips of ``clip_samples`` samples."""

    @abstractmethod
    def activations(self, waveforms: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
        """One forward pass over a batch [clips, samples]; returns {layer: [clips, *layer_shape]}."""

    @abstractmethod
    def forward_from(self, layer: str, activations: np.ndarray,
                     channel_masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Continue the network from ``layer``'s activations [clips, *layer_shape] to its outputs
        (including ``embedding``, the input of the classifier head, unless ``layer`` is that head), with the
        channels (last axis) that
        ``channel_masks`` ({layer: 0/1 vector}) zero switched off in ``layer`` and later layers."""

    @abstractmethod
    def differentiable(self, layers: list[str], relu_gradient: str = "true"):
        """A function of a waveform batch (framework tensor) to {layer: tensor}, that gradients flow through.
        With ``relu_gradient="fake"`` a layer that ends in a ReLU is returned through a FakeReLU (same values,
        identity gradient), for metamer synthesis."""

    def permute_weights(self, seed: int) -> None:
        """The permuted-weights control (``audioprobe.models.permutation``): shuffle the values within each
        learned parameter tensor, in place. Families that cannot say so."""
        raise NotImplementedError(f"model {self.name!r} ({type(self).__name__}) cannot permute its weights; "
                                  "remove permute_weights from its entry")

    def check_layers(self, layers: list[str]) -> list[str]:
        known = self.layers()
        unknown = [layer for layer in layers if layer not in known]
        if unknown:
            raise ValueError(f"model {self.name!r} has no layer {unknown[0]!r}; its layers are {', '.join(known)}")
        return list(layers)
