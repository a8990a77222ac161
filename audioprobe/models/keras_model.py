"""A Keras model as an audioprobe model (``kind: keras_model``), and the adapter the keyword networks reuse.

The model is a functional ``.keras`` file, loaded with ``safe_mode=True`` (no deserialised Python code runs).
Its input is a waveform batch ``[items, samples]`` unless a family puts a front end before it (the keyword
networks' cochleagram). The contract through the functional graph:

- ``activations``: one sub-model from the input to every requested layer's output;
- ``forward_from(layer, acts)``: the graph run on a placeholder input with the layer's output replaced by
  ``acts`` (Keras runs each operation through a function we supply, so nothing is rebuilt); exact when every
  path from the input passes through the layer, which is checked once per layer;
- channel masks: the masked layers' outputs multiplied by a 0/1 vector on their channel (last) axis;
- ``differentiable``: a sub-model on tensors, with a FakeReLU on a requested ReLU layer when asked.

Keras layers are channels-last: by default an output with one axis after the batch is ``c``, two ``tc``,
three ``ftc``; ``layouts`` overrides it per layer.
"""

from __future__ import annotations

import numpy as np

from audioprobe.models.base import RELU_GRADIENTS, check_layout
from audioprobe.models.generic import GenericAdapter

WEIGHT_SUFFIXES = (".keras",)
DEFAULT_LAYOUTS = {1: "c", 2: "tc", 3: "ftc"}


def layer_names(model_config: dict) -> list[str]:
    return list(model_config["layers"])


def min_samples(model_config: dict) -> int:
    return int(model_config.get("min_samples") or 1)


def canonical_permutation(layout: str) -> tuple[list[int], list[str]]:
    """The transpose that puts an output's axes in time, freq, channel order, and which of them it has."""
    present = [axis for axis in "tfc" if axis in layout]
    return [0, *[1 + layout.index(axis) for axis in present]], present


class KerasAdapter(GenericAdapter):
    """Any functional Keras model (see the module's docstring)."""

    framework = "tensorflow"

    def __init__(self, model, *, name: str, sample_rate: int, layers: list[str], layouts: dict[str, str] | None = None,
                 head: str | None = None, scores: str = "softmax", frontend=None, min_samples: int = 1,
                 input_samples: int | None = None, weights_sha256: str = "", threads: int | None = None,
                 config_key: str | None = None):
        import tensorflow as tf

        set_threads(threads)
        self.tf, self.model, self.name = tf, model, name
        self.sample_rate, self.min_samples = int(sample_rate), int(input_samples or min_samples)
        #: a model whose input has a fixed length gets every clip zero-padded or cut to it
        self.input_samples = int(input_samples) if input_samples else None
        self.weights_sha256 = weights_sha256
        self._start(config_key or f"models.{name}", scores)
        self.graph_errors = (ValueError, tf.errors.InvalidArgumentError)
        known = [layer.name for layer in model.layers]
        for layer in [*layers, *([head] if head else [])]:
            if layer not in known:
                raise ValueError(f"{self._key}: the model has no layer {layer!r}; its layers are {', '.join(known)}")
        self._layers, self._layouts = list(layers), dict(layouts or {})
        self._head = head or layers[-1]
        self.head_layer = self._head if self._head in self._layers else None
        self._frontend = frontend
        self._compiled: dict = {}

    # --- interface -------------------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return list(self._layers)

    def permute_weights(self, seed: int) -> None:
        """Every weight of the model but batch-norm moving statistics, in model.weights order."""
        from audioprobe.models.permutation import is_fixed_statistic, permuted_all, permuted_checksum

        learned = [w for w in self.model.weights if not is_fixed_statistic(getattr(w, "path", w.name))]
        for variable, value in zip(learned, permuted_all([np.asarray(w.numpy()) for w in learned], seed)):
            variable.assign(value)
        self.weights_sha256 = permuted_checksum(self.weights_sha256, seed)

    def activations(self, waveforms: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
        layers = self.check_layers(layers)
        key = ("act", tuple(layers))
        if key not in self._compiled:
            outputs = {layer: self.model.get_layer(layer).output for layer in layers}
            self._compiled[key] = _submodel(self.model, outputs)
        out = self._compiled[key](self._inputs(self.tf.constant(self._padded(waveforms))), training=False)
        return {layer: self._canonical(layer, np.asarray(out[layer]), len(waveforms)) for layer in layers}

    def differentiable(self, layers: list[str], relu_gradient: str = "true"):
        from audioprobe.metamers.architectures import layer_model

        layers = self.check_layers(layers)
        if relu_gradient not in RELU_GRADIENTS:
            raise ValueError(f"relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, not {relu_gradient!r}")
        submodel = layer_model(self.model, layers, relu_gradient=relu_gradient)

        def forward(waveforms):
            out = submodel(self._inputs(self._padded_tensor(waveforms)), training=False)
            return {layer: self._canonical_tensor(layer, out[layer], waveforms.shape[0]) for layer in layers}

        return forward

    # --- the graph -------------------------------------------------------------------------------------------
    def _continue_numpy(self, layer: str, acts: np.ndarray, masks: dict, seed: int | None) -> dict:
        tf = self.tf
        masks = {name: tf.constant(mask) for name, mask in masks.items()}
        placeholder = self._placeholder(acts.shape[0] * acts.shape[1], seed)
        clips, patches = acts.shape[:2]
        substitute = tf.constant(self._from_canonical(layer, acts))
        captured = {}

        def operation_fn(operation):
            def call(*args, **kwargs):
                if "training" in _call_arguments(operation):
                    kwargs["training"] = False
                if operation.name == self._head:
                    captured["embedding"] = args[0]
                out = substitute if operation.name == layer else operation(*args, **kwargs)
                if operation.name in masks:
                    out = out * masks[operation.name]
                if operation.name == self._head:
                    captured["logits"] = out
                return out
            return call

        # The graph's own Input is no operation the graph runs, so operation_fn cannot replace it: continuing
        # from it is running the graph on the activations.
        graph_input = substitute if self._is_input(layer) else placeholder
        self.model._run_through_graph(graph_input, operation_fn=operation_fn)
        logits = tf.reshape(captured["logits"], (clips, patches, -1))
        scores = tf.sigmoid(logits) if self._scores == "sigmoid" else tf.nn.softmax(logits, axis=-1)
        outputs = {"logits": logits.numpy(), "scores": scores.numpy()}
        if layer != self._head:  # continued from the head itself, its input (the embedding) is not known
            outputs["embedding"] = tf.reshape(captured["embedding"], (clips, patches, -1)).numpy()
        return outputs

    def _is_input(self, layer: str) -> bool:
        return layer in {tensor._keras_history.operation.name for tensor in self.model.inputs}

    # --- inputs and layouts ----------------------------------------------------------------------------------
    def _padded(self, waveforms: np.ndarray) -> np.ndarray:
        waveforms = np.asarray(waveforms, dtype=np.float32)
        if self.input_samples and waveforms.shape[1] > self.input_samples:
            return waveforms[:, :self.input_samples]
        short = self.min_samples - waveforms.shape[1]
        return np.pad(waveforms, ((0, 0), (0, short))) if short > 0 else waveforms

    def _padded_tensor(self, waveforms):
        """:meth:`_padded` on a tensor, keeping its graph."""
        samples = int(waveforms.shape[1])
        if self.input_samples and samples > self.input_samples:
            return waveforms[:, :self.input_samples]
        if samples < self.min_samples:
            return self.tf.pad(waveforms, [[0, 0], [0, self.min_samples - samples]])
        return waveforms

    def _inputs(self, waveforms):
        return self._frontend(waveforms) if self._frontend is not None else waveforms

    def _placeholder(self, items: int, seed: int | None = None):
        declared = tuple(self.model.inputs[0].shape[1:])
        if None in declared:  # a variable-length input: the front end's output for the shortest clip
            declared = tuple(self._inputs(self.tf.zeros((1, self.min_samples))).shape[1:])
        shape = (items, *[int(size) for size in declared])
        if seed is None:
            return self.tf.zeros(shape)
        return self.tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

    def _layout(self, layer: str, ndim: int) -> str:
        layout = self._layouts.get(layer) or DEFAULT_LAYOUTS.get(ndim)
        if layout is None:
            raise ValueError(f"{self._key}.layouts: give the layout of {layer}, an output with {ndim} axes after "
                             "the batch")
        return check_layout(layout, ndim, f"{self._key}.layouts.{layer}", DEFAULT_LAYOUTS)

    def _canonical(self, layer: str, value: np.ndarray, clips: int) -> np.ndarray:
        """[clips * patches, *layout axes] -> [clips, patches, time, freq, channel]."""
        layout = self._layout(layer, value.ndim - 1)
        permutation, present = canonical_permutation(layout)
        moved = np.transpose(value, permutation)
        sizes = dict(zip(present, moved.shape[1:]))
        return moved.reshape(clips, -1, sizes.get("t", 1), sizes.get("f", 1), sizes["c"])

    def _canonical_tensor(self, layer: str, value, clips: int):
        layout = self._layout(layer, len(value.shape) - 1)
        permutation, present = canonical_permutation(layout)
        moved = self.tf.transpose(value, permutation)
        sizes = dict(zip(present, moved.shape[1:]))
        return self.tf.reshape(moved, (clips, -1, sizes.get("t", 1), sizes.get("f", 1), sizes["c"]))

    def _from_canonical(self, layer: str, acts: np.ndarray) -> np.ndarray:
        output_shape = self.model.get_layer(layer).output.shape
        layout = self._layout(layer, len(output_shape) - 1)
        present = [axis for axis in "tfc" if axis in layout]
        sizes = dict(zip("tfc", acts.shape[2:]))
        items = acts.reshape(-1, *[sizes[axis] for axis in present])
        return np.transpose(items, [0, *[1 + present.index(axis) for axis in layout]])


def set_threads(threads: int | None) -> None:
    """TensorFlow's thread count, which it takes only before it first runs anything: builders call this before
    they load a model (later calls change nothing)."""
    import tensorflow as tf

    if not threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised: the first setting stands
        pass


def _submodel(model, outputs: dict):
    import keras

    return keras.Model(model.inputs, outputs)


def _call_arguments(operation) -> set[str]:
    import inspect

    try:
        return set(inspect.signature(operation.call).parameters)
    except (TypeError, ValueError, AttributeError):
        return set()


def build(name: str, model_config: dict, weights, threads: int | None = None) -> KerasAdapter:
    import keras

    from audioprobe.io.download import sha256_of

    set_threads(threads)
    path = weights or model_config["file"]
    model = keras.saving.load_model(path, safe_mode=True)
    return KerasAdapter(model, name=name, sample_rate=model_config["sample_rate"], layers=layer_names(model_config),
                        layouts=model_config.get("layouts") or {}, head=model_config.get("head"),
                        scores=model_config.get("scores", "softmax"),
                        min_samples=min_samples(model_config), weights_sha256=sha256_of(path),
                        threads=threads)
