"""Small keyword classifiers that differ only in how they connect along frequency (Study 2).

Every classifier takes an input representation [batch, freq, time] (float32; the front end is composed
elsewhere) and shares one input stage and one head, after the TF "simple audio" tutorial and Lu's
Tables 2 and 3:

    input_representation [F, T] -> add_channel -> resize (bilinear, 32 x 32) -> normalize (scalar mean and
    variance, adapted on training representations) -> conv_0 -> conv_1 -> pool_0 -> dropout_0 -> flatten
    -> dense (relu) -> dropout_1 -> logits

Only the two conv stages (3 frames along time each, 'valid', then a ReLU), the pooling and the dense
width differ. With the default ``sizes="seed"`` and a 32 x 32 grid:

=================  ===========================================  ====================  ==========  =========
arch               along frequency                              conv_0 / conv_1       pool_0      dense
=================  ===========================================  ====================  ==========  =========
conv2d             convolutional (3 bands, shared weights)      32 / 64 per (band,    2 x 2 over  128
                   (Lu's Table 2 = the tutorial: 1,625,611      frame)                (band,
                   parameters)                                                        frame)
local_frequency    locally connected (3 bands, a kernel per     32 / 64 per (band,    as conv2d   128
                   band position: unshared weights)             frame)
grouped_temporal   ``groups`` (8) groups of adjacent bands;     128 / 512 per frame   2 x 2 over  512
                   each group's bands are the channels of its   (16 / 64 per group)   (frame,
                   own temporal conv stack; nothing crosses                           channel)
                   groups (Lu's Table 3: 1,866,379 parameters)
fc_frequency       fully connected (all bands are channels of   128 / 512 per frame   as grouped  512
                   one temporal conv)
=================  ===========================================  ====================  ==========  =========

Lu chose Table 3's widths so that the 1-D model has about as many parameters as the 2-D one (1.87M
against 1.63M), which leaves its layers of other sizes (dense 512 against 128); Lu's discussion asks for a
control with matched representation sizes. ``sizes="matched"`` is that control: the temporal models
get conv2d's number of units at every metamer layer (conv_0 (F-2) x 32 = 960 and conv_1 (F-4) x 64 =
1,792 channels per frame, so 30 x 960 = 30 x 30 x 32 units, pool_0 14 x 896 = 14 x 14 x 64, dense 128),
at the cost of more parameters (2,266,187 for grouped_temporal); the 2-D models do not change.
:func:`layer_widths` gives the numbers.

The temporal pool is Table 3's: the [frame, channel] map gets a unit axis and is max-pooled 2 x 2 over
(frame, channel), i.e. over pairs of frames and pairs of neighbouring channels (always of one group).
The grouped model is built from slices, per-group ``Conv1D`` and a concatenation, never
``Conv1D(groups=...)``, whose CPU gradients have failed (keras-team/keras#14896,
tensorflow/tensorflow#53631); its parameter count equals a grouped Conv1D's. Nothing here uses the
removed keras ``LocallyConnected`` layers: :class:`LocallyConnectedFrequency` is patch extraction + one
batched matmul per band position.

Every ReLU of a metamer layer is its own ``ReLU`` layer named after the stage (``conv_0``, ``conv_1``,
``dense``), after a linear layer ``<stage>_linear`` (the pre-activation), so that metamer synthesis can
read a matched ReLU through a FakeReLU (ReLU forward, identity gradient; Feather et al.):
:func:`layer_model` with ``relu_gradient="fake"`` returns FakeReLU(pre-activation) for the requested
ReLU layers while the network itself keeps its true ReLUs (as ``fake_relu`` in Feather et al.'s
PyTorch models, where only the recorded output goes through FakeReLU).

Layer names are stable; :func:`metamer_layers` lists the layers metamers are made for and
:func:`layer_model` returns several layers' outputs in one forward pass. Output layouts: conv2d and
local_frequency conv stages are [band, frame, filter]; the temporal models' are [frame, channel], where
grouped_temporal's channel ``g * c + i`` is filter ``i`` of group ``g`` (its per-group layers are
``freq_group_{g}``, ``conv_0_g{g}``, ``conv_0_group_{g}``, ``conv_1_g{g}``, all pre-activation;
``conv_0_linear`` and ``conv_1_linear`` are their concatenations).

The tutorial's bilinear resize without antialiasing keeps every frequency row when halving 64 rows, but
drops frame information when shrinking time by a non-integer factor (~1/3 of the frames of a 100-frame
input get no gradient), so input-stage metamers are under-constrained; ``resize=None`` or a front end
with the grid's size avoids it.
"""

from __future__ import annotations

import re

import numpy as np

from audioprobe.models.base import RELU_GRADIENTS, fake_relu  # noqa: F401 - part of this module's API

ARCHS = ("conv2d", "grouped_temporal", "fc_frequency", "local_frequency")
TEMPORAL_ARCHS = ("grouped_temporal", "fc_frequency")
SIZES = ("seed", "matched")
INPUT_LAYER = "input_representation"
CONV_LAYERS = ("conv_0", "conv_1")
RELU_LAYERS = (*CONV_LAYERS, "dense")
METAMER_LAYERS = (INPUT_LAYER, *CONV_LAYERS, "dense", "logits")
DEFAULT_RESIZE = (32, 32)
DENSE_2D = 128  # Lu's Table 2 (the tutorial)
TABLE3 = {"conv_0": 128, "conv_1": 512, "dense": 512}  # Lu's Table 3: channels in all groups, dense units
_STAGE_PART = re.compile(r"^(conv_\d+|dense)_(g\d+|linear)$")


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

    class FakeReLU(keras.layers.Layer):
        """ReLU forward, identity gradient (Feather et al.'s FakeReLU): see :func:`fake_relu`."""

        def call(self, inputs):
            return fake_relu(inputs)

        def compute_output_shape(self, input_shape):
            return input_shape

    _CLASSES = {"ChannelSlice": ChannelSlice, "LocallyConnectedFrequency": LocallyConnectedFrequency,
                "FakeReLU": FakeReLU}
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
    if name in ("ChannelSlice", "LocallyConnectedFrequency", "FakeReLU"):
        return _layer_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"architecture {arch!r} is unknown; audioprobe knows {', '.join(ARCHS)}")


def classifier_shape(input_shape, resize=DEFAULT_RESIZE) -> tuple[int, int]:
    """[freq, time] the conv stages see: ``resize`` if given, else the input shape."""
    freq, time = (int(v) for v in input_shape)
    return (freq, time) if resize is None else (int(resize[0]), int(resize[1]))


def layer_widths(arch: str, freq: int, *, sizes: str = "seed", width: int = 32, kernel_size: int = 3) -> dict:
    """Filters of conv_0 and conv_1 (per (band, frame) for the 2-D models, per frame in all groups for the
    temporal ones) and dense units, for a grid of ``freq`` rows.

    2-D models: ``width``, 2 x ``width``, 128 (Lu's Table 2). Temporal models: Lu's Table 3 (128, 512, 512)
    with ``sizes="seed"``; with ``sizes="matched"`` conv2d's units per frame, (freq - k + 1) x ``width`` and
    (freq - 2k + 2) x 2 ``width``, and its 128 dense units, so every metamer layer has conv2d's size.
    """
    _check_arch(arch)
    if sizes not in SIZES:
        raise ValueError(f"metamers.sizes must be one of {', '.join(SIZES)}, not {sizes!r}")
    k = int(kernel_size)
    if arch not in TEMPORAL_ARCHS:
        return {"conv_0": int(width), "conv_1": 2 * int(width), "dense": DENSE_2D}
    if sizes == "seed":
        return dict(TABLE3)
    return {"conv_0": (freq - k + 1) * int(width), "conv_1": (freq - 2 * k + 2) * 2 * int(width), "dense": DENSE_2D}


def _check_settings(arch, freq, time, k, groups, width, n_classes, widths) -> None:
    if min(freq, time) < 2 * k:
        raise ValueError(f"a [{freq}, {time}] grid is too small for two {k}-wide valid convolutions and pooling")
    if width < 1 or n_classes < 2:
        raise ValueError("width must be >= 1 and n_classes >= 2")
    if groups < 1 or (arch == "grouped_temporal" and freq % groups):
        raise ValueError(f"{freq} frequency rows cannot be split into {groups} equal groups: "
                         f"set metamers.groups to a divisor of {freq}")
    if arch == "grouped_temporal":
        c0, c1 = widths["conv_0"], widths["conv_1"]
        if c0 % groups or c1 % groups or (c1 // groups) % 2:
            raise ValueError(f"conv_0/conv_1 channels {c0}/{c1} cannot be split into {groups} groups with an even "
                             f"channel count per group (pool_0 pools channel pairs within a group): choose "
                             f"metamers.groups dividing {c0} and {c1 // 2}")


def build_classifier(arch: str, input_shape: tuple[int, int], n_classes: int, *, groups: int = 8,
                     sizes: str = "seed", width: int = 32, seed: int = 0, normalization_data=None,
                     resize=DEFAULT_RESIZE, antialias: bool = False, kernel_size: int = 3,
                     dropout: tuple[float, float] = (0.25, 0.5)):
    """A classifier [batch, freq, time] -> logits [batch, n_classes] (see the module docstring).

    ``input_shape`` is (freq, time) of the representation. ``resize`` is the [freq, time] grid every
    architecture works on (the tutorial's bilinear 32 x 32 without antialiasing; ``None`` keeps the input
    grid). ``normalization_data`` [examples, freq, time] adapts the scalar mean/variance of the normalize
    layer (computed after resizing); without it the layer is the identity (mean 0, variance 1) until its
    weights are loaded. ``groups`` is the number of frequency groups of grouped_temporal; ``sizes`` and
    ``width`` (conv2d's conv_0 filters) set the layer widths (:func:`layer_widths`). Every initialiser and
    dropout layer gets its own seed derived from ``seed`` (Keras' global random state is neither used nor
    changed).
    """
    _check_arch(arch)
    keras = _keras()
    layers = keras.layers
    freq_in, time_in = (int(v) for v in input_shape)
    freq, time = classifier_shape(input_shape, resize)
    k = int(kernel_size)
    widths = layer_widths(arch, freq, sizes=sizes, width=width, kernel_size=k)
    _check_settings(arch, freq, time, k, int(groups), int(width), int(n_classes), widths)
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
    if arch in TEMPORAL_ARCHS:
        x = _temporal_stages(layers, x, arch, freq, time, k, int(groups), widths, init)
    else:
        x = _planar_stages(layers, x, arch, k, widths, init, seeds)
    x = layers.Dropout(dropout[0], seed=next(seeds), name="dropout_0")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.ReLU(name="dense")(layers.Dense(widths["dense"], name="dense_linear", **init())(x))
    x = layers.Dropout(dropout[1], seed=next(seeds), name="dropout_1")(x)
    logits = layers.Dense(n_classes, name="logits", **init())(x)
    model = keras.Model(inputs, logits, name=arch)
    if normalization_data is not None:
        _adapt(norm, resizer, normalization_data)
    return model


def _planar_stages(layers, x, arch, k, widths, init, seeds):
    """conv2d / local_frequency: two 2-D stages over (band, frame), then 2 x 2 max-pooling."""
    for stage in CONV_LAYERS:
        if arch == "conv2d":
            linear = layers.Conv2D(widths[stage], k, name=f"{stage}_linear", **init())
        else:
            linear = _layer_classes()["LocallyConnectedFrequency"](widths[stage], (k, k), seed=next(seeds),
                                                                  name=f"{stage}_linear")
        x = layers.ReLU(name=stage)(linear(x))
    return layers.MaxPooling2D(2, name="pool_0")(x)


def _temporal_stages(layers, x, arch, freq, time, k, groups, widths, init):
    """grouped_temporal / fc_frequency: frequency rows become channels of temporal convs (all rows in one
    conv, or ``groups`` separate stacks), then Table 3's 2 x 2 max-pooling over (frame, channel)."""
    x = layers.Reshape((freq, time), name="drop_channel")(x)
    x = layers.Permute((2, 1), name="time_major")(x)  # [time, freq]: frequency rows are channels
    parts = 1 if arch == "fc_frequency" else groups
    inputs_per_group = freq // parts
    for stage in CONV_LAYERS:
        if parts == 1:
            linear = layers.Conv1D(widths[stage], k, name=f"{stage}_linear", **init())(x)
        else:
            slice_name = "freq_group" if stage == "conv_0" else f"{CONV_LAYERS[0]}_group"
            slices = [_layer_classes()["ChannelSlice"](g * inputs_per_group, (g + 1) * inputs_per_group,
                                                       name=f"{slice_name}_{g}")(x) for g in range(parts)]
            linear = _concat(layers, [layers.Conv1D(widths[stage] // parts, k, name=f"{stage}_g{g}", **init())(part)
                                      for g, part in enumerate(slices)], f"{stage}_linear")
            inputs_per_group = widths[stage] // parts
        x = layers.ReLU(name=stage)(linear)
    frames, channels = time - 2 * (k - 1), widths["conv_1"]
    x = layers.Reshape((frames, channels, 1), name="add_pool_channel")(x)
    return layers.MaxPooling2D(2, name="pool_0")(x)


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


def layer_model(model, layers, relu_gradient: str = "true"):
    """A model from the classifier's input to {layer name: output} for ``layers``, in one forward pass.

    With ``relu_gradient="fake"`` each requested ReLU layer (conv_0, conv_1, dense) is read as
    FakeReLU(its pre-activation): the same values, but the gradient passes through as the identity, also
    where the pre-activation is negative. Only the requested layers' outputs change; the ReLUs the signal
    passes on its way to them stay true ReLUs, as in Feather et al. Call it with ``training=False``
    (dropout off). It shares the classifier's weights.
    """
    keras = _keras()
    layers = [layers] if isinstance(layers, str) else list(layers)
    if not layers:
        raise ValueError("layer_model needs at least one layer")
    if relu_gradient not in RELU_GRADIENTS:
        raise ValueError(f"metamers.synthesis.relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, "
                         f"not {relu_gradient!r}")
    known = [layer.name for layer in model.layers]
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"model {model.name!r} has no layer {unknown[0]!r}; its layers are {', '.join(known)}")
    fake = _layer_classes()["FakeReLU"]
    outputs = {}
    for name in layers:
        layer = model.get_layer(name)
        is_relu = isinstance(layer, keras.layers.ReLU)
        outputs[name] = fake(name=f"{name}_fake_relu")(layer.input) if is_relu and relu_gradient == "fake" \
            else layer.output
    return keras.Model(model.input, outputs, name=f"{model.name}_layers")


def relu_layers(model, layers=None) -> list[str]:
    """Which of ``layers`` (default: the metamer layers) are ReLU outputs, i.e. read through a FakeReLU
    when synthesis uses ``relu_gradient="fake"``."""
    keras = _keras()
    layers = metamer_layers(model) if layers is None else list(layers)
    return [name for name in layers if isinstance(model.get_layer(name), keras.layers.ReLU)]


def representation_shapes(model, layers=None) -> dict[str, tuple[int, ...]]:
    """Per-example output shape of each layer (default: the metamer layers)."""
    layers = metamer_layers(model) if layers is None else list(layers)
    return {name: tuple(int(v) for v in model.get_layer(name).output.shape[1:]) for name in layers}


def stage_of(layer_name: str) -> str:
    """The stage a per-group or pre-activation layer belongs to ('conv_0_g3', 'conv_0_linear' -> 'conv_0';
    'dense_linear' -> 'dense'); other names unchanged."""
    match = _STAGE_PART.match(layer_name)
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
