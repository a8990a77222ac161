"""YAMNet, layer by layer, in TensorFlow.

The same front end as the reference model (16 kHz; 25 ms Hann STFT with 10 ms hop; 64 mel bands from 125
to 7500 Hz; log(mel + 0.001); patches of 96 frames every 48 frames) and its 14 conv layers, global average
pooling, a 521-way dense layer and a sigmoid. Each clip is padded the way YAMNet pads a waveform, so a
clip of ``S`` samples always gives the same number of patches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
from pathlib import Path

import numpy as np

from audioprobe.models.base import RELU_GRADIENTS, ModelAdapter, fake_relu
from audioprobe.models.yamnet_weights import LAYER_DEFS, YamnetWeights, load_weights

SAMPLE_RATE = 16000
STFT_WINDOW = 400
STFT_HOP = 160
FFT_LENGTH = 512
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.001
PATCH_FRAMES = 96
PATCH_HOP_FRAMES = 48
MIN_SAMPLES = int((0.96 + 0.025 - 0.010) * SAMPLE_RATE)  # 15,600: one full patch
PATCH_HOP_SAMPLES = int(0.48 * SAMPLE_RATE)
LAYERS = [f"layer{i}" for i in range(1, len(LAYER_DEFS) + 1)]
AXES = ("patch", "time", "freq", "channel")


@functools.cache
def _logf():
    try:
        logf = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6").logf
    except (OSError, AttributeError):
        return None
    logf.restype, logf.argtypes = ctypes.c_float, [ctypes.c_float]
    return logf


def libm_logf(values: np.ndarray) -> np.ndarray:
    """Natural log with the C library's ``logf``, as the TFLite interpreter computes it.

    TensorFlow's and NumPy's vectorised logs differ from it in the last bit for about one value in ten;
    the log-mel feeds int8 quantisation downstream, where a last-bit difference can change a value.
    Falls back to NumPy where no C ``logf`` can be loaded.
    """
    logf = _logf()
    if logf is None:
        return np.log(values).astype(np.float32)
    flat = np.fromiter(map(logf, values.ravel().tolist()), dtype=np.float32, count=values.size)
    return flat.reshape(values.shape)


def padded_length(samples: int) -> int:
    """YAMNet's padding: at least one patch, then whole patch hops."""
    samples = max(samples, MIN_SAMPLES)
    hops = math.ceil((samples - MIN_SAMPLES) / PATCH_HOP_SAMPLES)
    return MIN_SAMPLES + hops * PATCH_HOP_SAMPLES


def patches_for(samples: int) -> int:
    return 1 + (padded_length(samples) - MIN_SAMPLES) // PATCH_HOP_SAMPLES


def layer_shape(layer: str, clip_samples: int) -> tuple[int, ...]:
    """(patches, time, freq, channels) of ``layer`` for a clip of ``clip_samples``: no weights needed."""
    return (patches_for(clip_samples), *conv_output_shapes()[LAYERS.index(layer)])


def conv_output_shapes() -> list[tuple[int, int, int]]:
    """(time, freq, channels) of each conv layer for one 96 x 64 patch."""
    time, freq, shapes = PATCH_FRAMES, MEL_BANDS, []
    for _, stride, filters in LAYER_DEFS:
        time, freq = math.ceil(time / stride), math.ceil(freq / stride)
        shapes.append((time, freq, filters))
    return shapes


NUMERICS = ("float", "tflite")


class Yamnet(ModelAdapter):
    """YAMNet adapter.

    ``numerics="float"`` computes in float32 throughout (differentiable; what the Keras model computes).
    ``numerics="tflite"`` reproduces the TFLite export's dynamic-range arithmetic, where int8 kernels meet
    inputs quantised to int8 per patch (conv) or per row (dense): it matches the interpreter's reference
    kernels (``BUILTIN_WITHOUT_DEFAULT_DELEGATES``) bit for bit at every layer. The interpreter's default
    XNNPACK delegate quantises differently and is not reproduced. Gradients always use float numerics.
    """

    sample_rate = SAMPLE_RATE
    min_samples = MIN_SAMPLES
    framework = "tensorflow"

    def __init__(self, weights: YamnetWeights, name: str = "yamnet", threads: int | None = None,
                 numerics: str = "float"):
        import tensorflow as tf

        if numerics not in NUMERICS:
            raise ValueError(f"numerics must be one of {', '.join(NUMERICS)}, not {numerics!r}")
        if numerics == "tflite" and not all(weights.frontend.get(k) is not None for k in ("dft_real", "mel")):
            raise ValueError(f"numerics='tflite' needs quantised weights from a TFLite export; "
                             f"{weights.source} has none: use numerics='float'")
        self.numerics = numerics
        if numerics == "tflite":
            # Grappler regroups chains of additions (arithmetic optimiser) and pushes constants through
            # products (constant folding), both of which change float rounding; the TFLite order of
            # operations below only holds with them off (a process-wide TF setting).
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False,
                                                          "constant_folding": False})

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self.name = name
        self.weights_sha256 = weights.sha256
        self.tf = tf
        self._params = [{part: (tf.constant(k), tf.constant(b)) for part, (k, b) in layer.items()}
                        for layer in weights.layers]
        self._logits = (tf.constant(weights.logits[0]), tf.constant(weights.logits[1]))
        self._hybrid = {key: (tf.constant(k), tf.constant(scale)) for key, (k, scale) in weights.hybrid.items()}
        self._frontend = {key: (tuple(tf.constant(v) for v in value) if isinstance(value, tuple)
                                else tf.constant(value)) for key, value in weights.frontend.items()
                          if value is not None}
        self._mel = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=MEL_BANDS, num_spectrogram_bins=FFT_LENGTH // 2 + 1, sample_rate=SAMPLE_RATE,
            lower_edge_hertz=MEL_MIN_HZ, upper_edge_hertz=MEL_MAX_HZ)
        self._shapes = conv_output_shapes()
        self._compiled = {}

    # --- interface -------------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return list(LAYERS)

    def permute_weights(self, seed: int) -> None:
        """Every kernel and bias of the 14 layers (batch norm is folded into them in the exports) and of the
        logits layer; the log-mel front end is fixed and stays. numerics="float" only: the TFLite arithmetic
        reads the integer kernels, which are the export's own."""
        from audioprobe.models.permutation import permuted_all, permuted_checksum

        if self.numerics != "float":
            raise ValueError(f"models.{self.name}: permute_weights needs numerics: float (the TFLite arithmetic "
                             "uses the export's own integer kernels)")
        keys = [(index, part) for index, layer in enumerate(self._params) for part in layer]
        tensors = [value.numpy() for index, part in keys for value in self._params[index][part]]
        tensors += [value.numpy() for value in self._logits]
        values = iter(permuted_all(tensors, seed))
        for index, part in keys:
            self._params[index][part] = (self.tf.constant(next(values)), self.tf.constant(next(values)))
        self._logits = (self.tf.constant(next(values)), self.tf.constant(next(values)))
        self.weights_sha256 = permuted_checksum(self.weights_sha256, seed)

    def layer_axes(self, layer: str) -> tuple[str, ...]:
        self.check_layers([layer])
        return AXES

    def layer_shape(self, layer: str, clip_samples: int) -> tuple[int, ...]:
        self.check_layers([layer])
        return layer_shape(layer, clip_samples)

    def activations(self, waveforms: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
        layers = self.check_layers(layers)
        key = ("act", tuple(layers))
        if key not in self._compiled:
            self._compiled[key] = self.tf.function(
                lambda w: self._waveform_to_layers(w, layers, self.numerics), reduce_retracing=True)
        waveforms = np.asarray(waveforms, dtype=np.float32)
        padded = np.pad(waveforms, ((0, 0), (0, padded_length(waveforms.shape[1]) - waveforms.shape[1])))
        out = self._compiled[key](self.tf.constant(padded))
        return {layer: out[layer].numpy() for layer in layers}

    def forward_from(self, layer: str, activations: np.ndarray,
                     channel_masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Run layers after ``layer`` and the head; activations [clips, patches, time, freq, channels].

        ``channel_masks`` ({layer: [channels] of 0/1}) zero channels of ``layer`` and of later layers, which
        equals zeroing those channels' kernel rows and biases (each block ends in a ReLU)."""
        start = LAYERS.index(self.check_layers([layer])[0]) + 1
        masks = self._channel_multipliers(layer, channel_masks or {})
        activations = np.asarray(activations, dtype=np.float32) * masks[0]
        key = ("from", start)
        if key not in self._compiled:
            self._compiled[key] = self.tf.function(
                lambda x, later: self._continue(x, start, self.numerics, later), reduce_retracing=True)
        later = tuple(self.tf.constant(mask) for mask in masks[1:])
        out = self._compiled[key](self.tf.constant(activations), later)
        return {name: value.numpy() for name, value in out.items()}

    def _channel_multipliers(self, layer: str, channel_masks: dict) -> list[np.ndarray]:
        """0/1 float vectors for ``layer`` and every later layer (ones where no mask is given)."""
        self.check_layers(list(channel_masks))
        start = LAYERS.index(layer)
        early = [name for name in channel_masks if LAYERS.index(name) < start]
        if early:
            raise ValueError(f"cannot mask {early[0]} when continuing from the later layer {layer}")
        out = []
        for index in range(start, len(LAYERS)):
            channels = self._shapes[index][-1]
            mask = np.asarray(channel_masks.get(LAYERS[index], np.ones(channels)), dtype=np.float32)
            if mask.shape != (channels,):
                raise ValueError(f"the mask of {LAYERS[index]} has shape {mask.shape}, expected ({channels},)")
            out.append(mask)
        return out

    def differentiable(self, layers: list[str], relu_gradient: str = "true"):
        """Float numerics; with ``relu_gradient="fake"`` each requested layer's final ReLU is read through
        a FakeReLU (identity gradient; Feather et al.'s metamer synthesis) while the path on keeps true ReLUs."""
        layers = self.check_layers(layers)
        if relu_gradient not in RELU_GRADIENTS:
            raise ValueError(f"relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, not {relu_gradient!r}")
        return lambda waveforms: self._waveform_to_layers(waveforms, layers, "float", relu_gradient == "fake")

    # --- TensorFlow graph --------------------------------------------------------------------------------
    def log_mel_patches(self, waveforms, numerics: str = "float"):
        """[clips, samples] (already padded) -> [clips, patches, 96, 64]."""
        tf = self.tf
        if numerics == "tflite":
            frames = tf.signal.frame(waveforms, STFT_WINDOW, STFT_HOP) * self._frontend["window"]
            half = (FFT_LENGTH - STFT_WINDOW) // 2  # the export centres each frame in the DFT window
            frames = tf.pad(frames, [[0, 0], [0, 0], [half, FFT_LENGTH - STFT_WINDOW - half]])
            real = self._hybrid_dense(frames, *self._frontend["dft_real"])
            imag = self._hybrid_dense(frames, *self._frontend["dft_imag"])
            spectrogram = tf.sqrt(real * real + imag * imag)
            mel = self._hybrid_dense(spectrogram, *self._frontend["mel"]) + self._frontend["mel_bias"]
            log_mel = tf.reshape(tf.numpy_function(libm_logf, [mel], tf.float32, stateful=False), tf.shape(mel))
        else:
            spectrogram = tf.abs(tf.signal.stft(waveforms, STFT_WINDOW, STFT_HOP, FFT_LENGTH))
            log_mel = tf.math.log(tf.tensordot(spectrogram, self._mel, 1) + LOG_OFFSET)
        return tf.signal.frame(log_mel, PATCH_FRAMES, PATCH_HOP_FRAMES, axis=1)

    def _waveform_to_layers(self, waveforms, layers, numerics, identity_gradient: bool = False):
        tf = self.tf
        patches = self.log_mel_patches(waveforms, numerics)
        clips, count = tf.shape(patches)[0], tf.shape(patches)[1]
        net = tf.reshape(patches, [-1, PATCH_FRAMES, MEL_BANDS, 1])
        last = max(LAYERS.index(layer) for layer in layers)
        out = {}
        for index in range(last + 1):
            linear = self._block_linear(net, index, numerics)
            net = tf.nn.relu(linear)
            if LAYERS[index] in layers:
                value = fake_relu(linear) if identity_gradient else net
                out[LAYERS[index]] = tf.reshape(value, [clips, count, *self._shapes[index]])
        return out

    def _continue(self, activations, start, numerics, masks=None):
        tf = self.tf
        clips, count = tf.shape(activations)[0], tf.shape(activations)[1]
        net = tf.reshape(activations, [-1, *activations.shape[2:]])
        for index in range(start, len(LAYERS)):
            net = self._block(net, index, numerics)
            if masks is not None:
                net = net * masks[index - start]
        embedding = tf.reduce_mean(net, axis=[1, 2])
        if numerics == "tflite" and "logits" in self._hybrid:
            logits = self._hybrid_dense(embedding, *self._hybrid["logits"]) + self._logits[1]
        else:
            logits = tf.matmul(embedding, self._logits[0]) + self._logits[1]
        return {"embedding": tf.reshape(embedding, [clips, count, -1]),
                "logits": tf.reshape(logits, [clips, count, -1]),
                "scores": tf.reshape(tf.sigmoid(logits), [clips, count, -1])}

    def _block(self, net, index, numerics):
        return self.tf.nn.relu(self._block_linear(net, index, numerics))

    def _block_linear(self, net, index, numerics):
        """A block up to its final ReLU (that ReLU's input)."""
        tf = self.tf
        kind, stride, _ = LAYER_DEFS[index]
        params = self._params[index]
        if kind == "conv":
            if numerics == "tflite" and (index, "conv") not in self._hybrid:
                return self._first_conv_in_tflite_order(net, *params["conv"], stride)
            return self._conv(net, index, "conv", stride, numerics)
        kernel, bias = params["depthwise"]
        if numerics == "tflite":
            net = tf.nn.relu(self._depthwise_in_tflite_order(net, kernel, bias, stride))
        else:
            net = tf.nn.relu(tf.nn.depthwise_conv2d(net, kernel, [1, stride, stride, 1], "SAME") + bias)
        return self._conv(net, index, "pointwise", 1, numerics)

    def _taps(self, net, size, stride):
        """The size x size shifted views of ``net`` (SAME padding) that a conv sums, row by row."""
        tf = self.tf
        height, width = net.shape[1], net.shape[2]
        out_h, out_w = -(-height // stride), -(-width // stride)
        pad_h = max((out_h - 1) * stride + size - height, 0)
        pad_w = max((out_w - 1) * stride + size - width, 0)
        padded = tf.pad(net, [[0, 0], [pad_h // 2, pad_h - pad_h // 2], [pad_w // 2, pad_w - pad_w // 2], [0, 0]])
        for row in range(size):
            for column in range(size):
                yield row, column, padded[:, row:row + (out_h - 1) * stride + 1:stride,
                                          column:column + (out_w - 1) * stride + 1:stride, :]

    def _depthwise_in_tflite_order(self, net, kernel, bias, stride):
        """3x3 depthwise conv summed as TFLite's float kernel sums it: bias first, then taps row by row.

        The next pointwise layer quantises this output to int8, so a last-bit difference from another
        summation order can move a value across a rounding boundary; this order reproduces the interpreter.
        """
        total = bias
        for row, column, tap in self._taps(net, kernel.shape[0], stride):
            total = total + tap * kernel[row, column, :, 0]
        return total

    def _first_conv_in_tflite_order(self, net, kernel, bias, stride):
        """Layer 1 (one input channel) summed as TFLite sums it: taps row by row, then the bias."""
        total = 0.0
        for row, column, tap in self._taps(net, kernel.shape[0], stride):
            total = total + tap * kernel[row, column, 0, :]
        return total + bias

    def _conv(self, net, index, part, stride, numerics):
        tf = self.tf
        kernel, bias = self._params[index][part]
        if numerics == "tflite" and (index, part) in self._hybrid:
            integers, scale = self._hybrid[(index, part)]
            quantised, factor = self._quantise(net, axis=[1, 2, 3])
            return tf.nn.conv2d(quantised, integers, stride, "SAME") * (factor * scale) + bias
        return tf.nn.conv2d(net, kernel, stride, "SAME") + bias

    def _hybrid_dense(self, x, integers, scale):
        """TFLite's hybrid fully connected op: each input row quantised to int8 with its own scale."""
        quantised, factor = self._quantise(x, axis=[-1])
        return self.tf.tensordot(quantised, integers, 1) * (factor * scale)

    def _quantise(self, x, axis):
        """Symmetric int8 quantisation as TFLite does it (round half away from zero, clamp to +-127).

        Products of such integers with int8 kernels sum exactly in float32 (|sum| < 2**24 for up to 1,040
        inputs), so the result equals the interpreter's int32 accumulation.
        """
        tf = self.tf
        peak = tf.reduce_max(tf.abs(x), axis=axis, keepdims=True)
        inverse = tf.math.divide_no_nan(127.0, peak)
        factor = tf.where(peak > 0, peak / 127.0, 1.0)
        magnitude = tf.abs(x * inverse)
        whole = tf.floor(magnitude)
        # floor(m + 0.5) would round 0.49999997 up in float32; m - floor(m) is exact, so compare that
        rounded = tf.sign(x) * (whole + tf.cast(magnitude - whole >= 0.5, x.dtype))
        return tf.clip_by_value(rounded, -127.0, 127.0), factor


def build(name: str, model_config: dict, weights, threads: int | None = None) -> Yamnet:
    """The registry's builder: weights the workflow downloaded (``weights`` null in the config) are checked
    against ``model_config['sha256']`` on every load; weights the config names are the user's."""
    sha256 = None
    downloaded = "weights" in model_config and not model_config["weights"] and model_config.get("sha256")
    if downloaded and Path(str(weights)).is_file():
        from audioprobe.io.download import verify_weights

        sha256 = verify_weights(weights, model_config["sha256"], f"models.{name}")  # the file is hashed once
    return Yamnet(load_weights(weights, f"models.{name}.weights", sha256=sha256), name=name, threads=threads,
                  numerics=model_config.get("numerics", "float"))
