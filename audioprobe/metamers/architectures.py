"""Small keyword classifiers that differ only in how they connect along frequency (Study 2).

Every classifier takes an input representation [batch, freq, time] (float32; the front end is composed
elsewhere) and shares one input stage and one head, after the TF "simple audio" tutorial:

    input_representation [F, T] -> add_channel -> resize (bilinear, 32 x 32) -> normalize (scalar mean and
    variance, adapted on training representations) -> conv_0 -> conv_1 -> pool_0 -> dropout_0 -> flatten
    -> dense (128, relu) -> dropout_1 -> logits

Only the two conv stages (3 frames along time each, ReLU, 'valid') differ:

=================  ==========================================  =====================================
arch               along frequency                             conv_0 / conv_1 channels
=================  ==========================================  =====================================
conv2d             convolutional (3 bands, shared weights)     width / 2*width per (band, frame)
local_frequency    locally connected (3 bands, a kernel per    width / 2*width per (band, frame)
                   band position: unshared weights)
grouped_temporal   ``groups`` groups of adjacent bands; each   groups*width / groups*2*width per
                   group's bands are the channels of its own   frame (width, 2*width per group)
                   temporal conv stack; nothing crosses groups
fc_frequency       fully connected (all bands are channels of  groups*width / groups*2*width per
                   one temporal conv)                          frame
=================  ==========================================  =====================================

So conv2d and local_frequency have the same representation sizes at every layer (they differ only in
weight sharing along frequency), and so do grouped_temporal and fc_frequency (grouped versus all-to-all
frequency connections; fc_frequency is grouped_temporal with one group). The 2-D models max-pool 2 x 2
over (band, frame), the temporal ones max-pool 2 over frames. The grouped model is built from slices,
per-group ``Conv1D`` and a concatenation, never ``Conv1D(groups=...)``, whose CPU gradients have failed
(keras-team/keras#14896, tensorflow/tensorflow#53631). Nothing here uses the removed keras
``LocallyConnected`` layers: :class:`LocallyConnectedFrequency` is patch extraction + one batched matmul
per band position.

Layer names are stable; :func:`metamer_layers` lists the layers metamers are made for and
:func:`layer_model` returns several layers' outputs in one forward pass. Output layouts: conv2d and
local_frequency conv stages are [band, frame, filter]; the temporal models' are [frame, channel], where
grouped_temporal's channel ``g * w + i`` is filter ``i`` of group ``g`` (its per-group layers are
``freq_group_{g}``, ``conv_0_g{g}``, ``conv_0_group_{g}``, ``conv_1_g{g}``; ``conv_0`` and ``conv_1`` are
the concatenations).

The tutorial's bilinear resize without antialiasing keeps every frequency row when halving 64 rows, but
drops frame information when shrinking time by a non-integer factor (~1/3 of the frames of a 100-frame
input get no gradient), so input-stage metamers are under-constrained; ``resize=None`` or a front end
with the grid's size avoids it.
"""

from __future__ import annotations

import re

import numpy as np

ARCHS = ("conv2d", "grouped_temporal", "fc_frequency", "local_frequency")
INPUT_LAYER = "input_representation"
CONV_LAYERS = ("conv_0", "conv_1")
METAMER_LAYERS = (INPUT_LAYER, *CONV_LAYERS, "dense", "logits")
DEFAULT_RESIZE = (32, 32)
_GROUP_LAYER = re.compile(r"^(conv_\d+)_g\d+$")


def _keras():
    import keras

    return keras


def _layer_classes():
    """Custom layers, defined lazily so that importing this module does not import TensorFlow."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    keras = _keras()

    class ChannelSlice(keras.layers.Layer):
        """``x[..., start:stop]``: the frequency rows of one group (frequency is the channel axis)."""

        def __init__(self, start: int, stop: int, **kwargs):
            super().__init__(**kwargs)
            self.start, self.stop = int(start), int(stop)

        def call(self, inputs):
            return inputs[..., self.start:self.stop]

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], self.stop - self.start)

        def get_config(self):
            return {**super().get_config(), "start": self.start, "stop": self.stop}

    class LocallyConnectedFrequency(keras.layers.Layer):
        """Convolutional along time, locally connected along frequency: every output band position has its
        own kernel over ``kernel_size[0]`` neighbouring bands x ``kernel_size[1]`` frames ('valid').

        Input [batch, freq, time, channels] -> [batch, freq - kf + 1, time - kt + 1, filters]. The kernel
        has shape [output bands, kf * kt * channels, filters]; each position is initialised like a Conv2D
        kernel (Glorot uniform over its own fan-in and fan-out), biases at zero.
        """

        def __init__(self, filters: int, kernel_size=(3, 3), activation=None, seed=None, **kwargs):
            super().__init__(**kwargs)
            self.seed = seed
            self.filters = int(filters)
            self.kernel_size = tuple(int(k) for k in kernel_size)
            self.activation = keras.activations.get(activation)

        def build(self, input_shape):
            _, freq, time, channels = input_shape
            kf, kt = self.kernel_size
            if freq < kf or (time is not None and time < kt):
                raise ValueError(f"input {input_shape} is smaller than the kernel {self.kernel_size}")
            self.out_bands = freq - kf + 1
            patch = kf * kt * channels
            limit = float(np.sqrt(6.0 / (patch + kf * kt * self.filters)))
            self.kernel = self.add_weight(name="kernel", shape=(self.out_bands, patch, self.filters),
                                          initializer=keras.initializers.RandomUniform(-limit, limit, seed=self.seed))
            self.bias = self.add_weight(name="bias", shape=(self.out_bands, self.filters), initializer="zeros")

        def call(self, inputs):
            import tensorflow as tf

            kf, kt = self.kernel_size
            bands, filters = self.out_bands, self.filters
            patches = _patches(inputs, kf, kt)  # [batch, bands, frames, kf * kt * channels]
            frames = tf.shape(patches)[2]
            # one matmul per band position: [bands, batch * frames, patch] x [bands, patch, filters]
            flat = tf.reshape(tf.transpose(patches, [1, 0, 2, 3]), [bands, -1, tf.shape(patches)[3]])
            out = tf.matmul(flat, tf.cast(self.kernel, flat.dtype)) + tf.cast(self.bias, flat.dtype)[:, None, :]
            out = tf.transpose(tf.reshape(out, [bands, -1, frames, filters]), [1, 0, 2, 3])
            return self.activation(out)

        def compute_output_shape(self, input_shape):
            batch, freq, time, _ = input_shape
            kf, kt = self.kernel_size
            return (batch, freq - kf + 1, None if time is None else time - kt + 1, self.filters)

        def get_config(self):
            return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size, "seed": self.seed,
                    "activation": keras.activations.serialize(self.activation)}

    _CLASSES = {"ChannelSlice": ChannelSlice, "LocallyConnectedFrequency": LocallyConnectedFrequency}
    return _CLASSES


_CLASSES = None


def _patches(inputs, kf: int, kt: int):
    """[batch, freq, time, channels] -> 'valid' patches [batch, freq - kf + 1, time - kt + 1, kf * kt * channels]
    (ordered band offset, frame offset, channel), with a gradient that adds the kf * kt shifted patch
    gradients back (TensorFlow's own ExtractImagePatches gradient is a slower segment sum)."""
    import tensorflow as tf

    @tf.custom_gradient
    def extract(x):
        patches = tf.image.extract_patches(x, [1, kf, kt, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")

        def grad(upstream):
            shape = tf.shape(patches)
            parts = tf.reshape(upstream, [shape[0], shape[1], shape[2], kf, kt, tf.shape(x)[3]])
            return tf.add_n([tf.pad(parts[:, :, :, i, j, :], [[0, 0], [i, kf - 1 - i], [j, kt - 1 - j], [0, 0]])
                             for i in range(kf) for j in range(kt)])

        return patches, grad

    return extract(inputs)


def __getattr__(name):  # the custom layer classes, e.g. architectures.LocallyConnectedFrequency
    if name in ("ChannelSlice", "LocallyConnectedFrequency"):
        return _layer_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"architecture {arch!r} is unknown; audioprobe knows {', '.join(ARCHS)}")


def classifier_shape(input_shape, resize=DEFAULT_RESIZE) -> tuple[int, int]:
    """[freq, time] the conv stages see: ``resize`` if given, else the input shape."""
    freq, time = (int(v) for v in input_shape)
    return (freq, time) if resize is None else (int(resize[0]), int(resize[1]))


def build_classifier(arch: str, input_shape: tuple[int, int], n_classes: int, *, groups: int = 8,
                     width: int = 32, seed: int = 0, normalization_data=None, resize=DEFAULT_RESIZE,
                     antialias: bool = False, dense_units: int = 128, kernel_size: int = 3,
                     dropout: tuple[float, float] = (0.25, 0.5)):
    """A classifier [batch, freq, time] -> logits [batch, n_classes] (see the module docstring).

    ``input_shape`` is (freq, time) of the representation. ``resize`` is the [freq, time] grid every
    architecture works on (the tutorial's bilinear 32 x 32 without antialiasing; ``None`` keeps the input
    grid). ``normalization_data`` [examples, freq, time] adapts the scalar mean/variance of the normalize
    layer (computed after resizing); without it the layer is the identity (mean 0, variance 1) until its
    weights are loaded. ``groups`` is the number of frequency groups of grouped_temporal and sets the
    channel counts of both temporal models (``groups * width``, ``groups * 2 * width``); ``width`` is the
    conv_0 filter count (per group for grouped_temporal). Every initialiser and dropout layer gets its own
    seed derived from ``seed`` (Keras' global random state is neither used nor changed).
    """
    _check_arch(arch)
    keras = _keras()
    layers = keras.layers
    classes = _layer_classes()
    freq_in, time_in = (int(v) for v in input_shape)
    freq, time = classifier_shape(input_shape, resize)
    k = int(kernel_size)
    if min(freq, time) < 2 * k:
        raise ValueError(f"a [{freq}, {time}] grid is too small for two {k}-wide valid convolutions and pooling")
    if groups < 1 or (arch == "grouped_temporal" and freq % groups):
        raise ValueError(f"{freq} frequency rows cannot be split into {groups} equal groups")
    if width < 1 or n_classes < 2:
        raise ValueError("width must be >= 1 and n_classes >= 2")
    seeds = iter(range(1000 * int(seed) + 1, 1000 * int(seed) + 1000))  # one per layer, in build order

    def init():
        return {"kernel_initializer": keras.initializers.GlorotUniform(seed=next(seeds))}

    inputs = keras.Input(shape=(freq_in, time_in), dtype="float32", name=INPUT_LAYER)
    x = layers.Reshape((freq_in, time_in, 1), name="add_channel")(inputs)
    resizer = None
    if resize is not None:
        resizer = layers.Resizing(freq, time, interpolation="bilinear", antialias=antialias, name="resize")
        x = resizer(x)
    norm = layers.Normalization(axis=-1, name="normalize")
    x = norm(x)

    c0, c1 = int(width), 2 * int(width)
    if arch == "conv2d":
        x = layers.Conv2D(c0, k, activation="relu", name="conv_0", **init())(x)
        x = layers.Conv2D(c1, k, activation="relu", name="conv_1", **init())(x)
        x = layers.MaxPooling2D(2, name="pool_0")(x)
    elif arch == "local_frequency":
        local = classes["LocallyConnectedFrequency"]
        x = local(c0, (k, k), activation="relu", seed=next(seeds), name="conv_0")(x)
        x = local(c1, (k, k), activation="relu", seed=next(seeds), name="conv_1")(x)
        x = layers.MaxPooling2D(2, name="pool_0")(x)
    else:
        x = layers.Reshape((freq, time), name="drop_channel")(x)
        x = layers.Permute((2, 1), name="time_major")(x)  # [time, freq]: frequency rows are channels
        if arch == "fc_frequency":
            x = layers.Conv1D(groups * c0, k, activation="relu", name="conv_0", **init())(x)
            x = layers.Conv1D(groups * c1, k, activation="relu", name="conv_1", **init())(x)
        else:
            rows = freq // groups
            x = _concat(layers, [layers.Conv1D(c0, k, activation="relu", name=f"conv_0_g{g}", **init())(
                classes["ChannelSlice"](g * rows, (g + 1) * rows, name=f"freq_group_{g}")(x))
                for g in range(groups)], "conv_0")
            x = _concat(layers, [layers.Conv1D(c1, k, activation="relu", name=f"conv_1_g{g}", **init())(
                classes["ChannelSlice"](g * c0, (g + 1) * c0, name=f"conv_0_group_{g}")(x))
                for g in range(groups)], "conv_1")
        x = layers.MaxPooling1D(2, name="pool_0")(x)
    x = layers.Dropout(dropout[0], seed=next(seeds), name="dropout_0")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dense_units, activation="relu", name="dense", **init())(x)
    x = layers.Dropout(dropout[1], seed=next(seeds), name="dropout_1")(x)
    logits = layers.Dense(n_classes, name="logits", **init())(x)
    model = keras.Model(inputs, logits, name=arch)
    if normalization_data is not None:
        _adapt(norm, resizer, normalization_data)
    return model


def _concat(layers, parts, name):
    return layers.Concatenate(axis=-1, name=name)(parts) if len(parts) > 1 else \
        layers.Identity(name=name)(parts[0])


def _adapt(norm, resizer, data, batch: int = 256) -> None:
    """Scalar mean and variance of the (resized) training representations."""
    data = np.asarray(data, np.float32)
    if data.ndim != 3:
        raise ValueError(f"normalization_data must be [examples, freq, time], not {data.shape}")
    chunks = []
    for start in range(0, len(data), batch):
        chunk = data[start:start + batch, ..., None]
        chunks.append(np.asarray(resizer(chunk)) if resizer is not None else chunk)
    norm.adapt(np.concatenate(chunks))


def metamer_layers(model) -> list[str]:
    """The layers metamers are made for, input side first: the input representation, each conv stage
    (after its ReLU), the dense layer (after its ReLU) and the logits."""
    names = {layer.name for layer in model.layers}
    missing = [name for name in METAMER_LAYERS if name not in names]
    if missing:
        raise ValueError(f"model {model.name!r} has no layer {missing[0]!r}: not built by build_classifier?")
    return list(METAMER_LAYERS)


def layer_model(model, layers):
    """A model from the classifier's input to {layer name: output} for ``layers``, in one forward pass.

    Call it with ``training=False`` (dropout off). It shares the classifier's weights.
    """
    keras = _keras()
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layer_model needs at least one layer")
    known = [layer.name for layer in model.layers]
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"model {model.name!r} has no layer {unknown[0]!r}; its layers are {', '.join(known)}")
    outputs = {name: model.get_layer(name).output for name in layers}
    return keras.Model(model.input, outputs, name=f"{model.name}_layers")


def representation_shapes(model, layers=None) -> dict[str, tuple[int, ...]]:
    """Per-example output shape of each layer (default: the metamer layers)."""
    layers = metamer_layers(model) if layers is None else list(layers)
    return {name: tuple(int(v) for v in model.get_layer(name).output.shape[1:]) for name in layers}


def stage_of(layer_name: str) -> str:
    """The conv stage a per-group layer belongs to ('conv_0_g3' -> 'conv_0'); other names unchanged."""
    match = _GROUP_LAYER.match(layer_name)
    return match.group(1) if match else layer_name


def layer_parameters(model) -> dict[str, int]:
    """Parameter count of every layer with parameters, per-group layers summed into their stage."""
    counts: dict[str, int] = {}
    for layer in model.layers:
        n = int(layer.count_params()) if layer.built else 0
        if n:
            stage = stage_of(layer.name)
            counts[stage] = counts.get(stage, 0) + n
    return counts


def parameter_table(models: dict):
    """One row per model: architecture, total / trainable / non-trainable parameters, per-layer counts
    (``layer=count;...``, input side first), and the representation size (units per example) at every
    metamer layer (``units_<layer>`` columns, for the matched-representation-size control)."""
    import pandas as pd

    rows = []
    for name, model in models.items():
        trainable = int(sum(np.prod(v.shape) for v in model.trainable_weights))
        total = int(model.count_params())
        row = {"model": name, "architecture": model.name, "total_params": total, "trainable_params": trainable,
               "non_trainable_params": total - trainable,
               "layer_params": ";".join(f"{layer}={n}" for layer, n in layer_parameters(model).items())}
        for layer, shape in representation_shapes(model).items():
            row[f"units_{layer}"] = int(np.prod(shape))
        for layer, shape in representation_shapes(model).items():
            row[f"shape_{layer}"] = "x".join(str(v) for v in shape)
        rows.append(row)
    return pd.DataFrame(rows)


def layer_table(models: dict):
    """Long table: model, layer, type, output shape, units, parameters, metamer layer or not."""
    import pandas as pd

    rows = []
    for name, model in models.items():
        chosen = set(metamer_layers(model))
        for layer in model.layers:
            shape = tuple(int(v) for v in layer.output.shape[1:])
            rows.append({"model": name, "architecture": model.name, "layer": layer.name,
                         "type": type(layer).__name__, "output_shape": "x".join(str(v) for v in shape),
                         "units": int(np.prod(shape)), "params": int(layer.count_params()) if layer.built else 0,
                         "metamer_layer": layer.name in chosen})
    return pd.DataFrame(rows)


def match_width(arch: str, target_params: int, input_shape: tuple[int, int], n_classes: int, *,
                max_width: int = 512, **build_kwargs) -> tuple[int, int]:
    """The ``width`` (1..``max_width``) whose parameter count is closest to ``target_params``, and that count.

    Every layer's parameter count is a polynomial of degree <= 2 in ``width`` (conv kernels, the dense
    layer's fan-in), so three small builds give the exact curve; the chosen width is built once more to
    confirm the count (bisection over builds if it ever differs)."""
    build_kwargs.pop("width", None)
    build_kwargs.pop("normalization_data", None)
    cache: dict[int, int] = {}

    def count(width: int) -> int:
        if width not in cache:
            cache[width] = int(build_classifier(arch, input_shape, n_classes, width=width,
                                                **build_kwargs).count_params())
        return cache[width]

    c1, c2, c3 = count(1), count(2), count(3)
    a = (c3 - 2 * c2 + c1) / 2  # count(w) = a w^2 + b w + c
    b = c2 - c1 - 3 * a
    c = c1 - a - b
    widths = np.arange(1, int(max_width) + 1)
    predicted = a * widths ** 2 + b * widths + c
    best = int(widths[np.argmin(np.abs(predicted - target_params))])
    if count(best) == int(round(a * best ** 2 + b * best + c)):
        return best, count(best)
    low, high = 1, int(max_width)  # pragma: no cover - the quadratic model did not hold
    if count(high) < target_params:
        return high, count(high)
    while high - low > 1:
        mid = (low + high) // 2
        if count(mid) < target_params:
            low = mid
        else:
            high = mid
    best = min((low, high), key=lambda w: (abs(count(w) - target_params), w))
    return best, count(best)
