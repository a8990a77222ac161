"""musicnn (Pons and Serra 2019) in TensorFlow 2, from the TF1 checkpoints inside musicnn's wheel.

musicnn 0.1.0 ships four checkpoints, ``MTT_musicnn``, ``MSD_musicnn`` (the musically motivated CNN: timbral
and temporal front end, a residual mid end, temporal pooling and a dense back end) and ``MTT_vgg``,
``MSD_vgg`` (five 3x3 conv blocks), trained on MagnaTagATune (MTT) and the Million Song Dataset (MSD) with 50
tags each. Its code pins ancient NumPy and TensorFlow 1, so the package is installed without its
dependencies and never imported: the checkpoint is read with ``tf.compat.v1.train.NewCheckpointReader`` and
the network of musicnn's ``models.py`` rebuilt as a Keras 3 functional model (batch norm in inference mode
with the checkpoint's moving statistics and TF1's epsilon, 1e-3; dropout is off at inference and left out),
wrapped in the generic :class:`~audioprobe.models.keras_model.KerasAdapter`. The tags are musicnn's
``configuration.py`` lists, copied here so that the config checks need no package.

Front end, as musicnn's extractor (``batch_data``): the power mel spectrogram of ``librosa.feature.
melspectrogram(y, sr=16000, n_fft=512, hop_length=256, n_mels=96)`` (centred frames with zero padding,
periodic Hann window, Slaney mel filters with Slaney area normalisation), then ``log10(10000 * mel + 1)``,
computed here in TensorFlow (differentiable) with the filter matrix built in NumPy as librosa builds it.
A clip of ``S`` samples has ``1 + S // 256`` frames; it is cut into non-overlapping patches of 187 frames
(3 s; the extractor's default ``input_overlap=False``), starting at frame 0, and **a trailing partial patch
is dropped** (the extractor's ``range(0, frames - 187 + 1, 187)``). A clip shorter than one patch
(:data:`MIN_SAMPLES`, 47,616 samples, 2.976 s) is zero-padded at its end to it (musicnn's extractor
fails on it).

Stated deviation from upstream: musicnn's extractor casts the mel spectrogram to float16 before the log,
so ``10000 * mel`` overflows float16 to inf for loud bins (mel power above about 6.55) and the log-mel
carries float16 rounding (about 1e-3 relative); here everything is float32, so loud audio stays finite.

Layers (each patch of a clip is one item; canonical axes patch, time, freq, channel):

- musicnn: ``frontend`` (the concatenation of the timbral features, 2 x 204 channels from the 7x38 and
  7x67 filters, and the temporal features, 3 x 51 channels from the 128, 64 and 32-frame filters, each
  max-pooled over frequency: 187 frames x 561 channels), ``cnn1`` (the first mid-end conv layer's batch
  norm), ``cnn2`` and ``cnn3`` (the second and third, after their residual additions; musicnn's own
  ``cnn1/2/3`` features), ``pool`` (the max and mean over time of the 753 mid-end features, the
  concatenation of ``frontend``, ``cnn1``, ``cnn2``, ``cnn3``; flattened as musicnn flattens it, so
  channel ``2k`` is the max of feature ``k`` and ``2k + 1`` its mean), ``penultimate`` (the 200-unit dense
  layer's batch norm; musicnn's ``penultimate``) and ``taggram`` (the 50 tag logits; musicnn's taggram is
  their sigmoid). The back end reads ``frontend``, ``cnn1`` and ``cnn2`` again through the concatenation,
  so the network can be continued from ``frontend``, ``pool``, ``penultimate`` and ``taggram`` only.
- vgg: ``pool1`` ... ``pool5`` (the max pools after each conv block's batch norm) and ``taggram``; every
  one of them can be continued from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import audioprobe.models.weights as weights_checks

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3, sr=16000, n_fft=512, hop_length=256) + 1, as the extractor
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP  # 47,616: 1 + S // 256 = 187 frames, one full patch
LOG_SCALE = 10000.0  # log10(LOG_SCALE * mel + 1)
BATCH_NORM_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default, which models.py keeps
CHECKPOINTS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
DEFAULT_CHECKPOINT = "MTT_musicnn"
#: sha256 over each checkpoint's ``.data-00000-of-00001`` then ``.index`` file, as musicnn 0.1.0 ships them
SHA256 = {"MTT_musicnn": "7e2794c9cea7a35c96141f9bfc61b9babe5ef4abbd122793fbc584cebcee8a5c",
          "MSD_musicnn": "041c827105910b6c2c8d68dc6251219078a5c35483c53ed2a873f2d91cc36dff",
          "MTT_vgg": "51d13bd3b048b4717aeb85336f99910ba535d3457e6383333984b4d609d9decc",
          "MSD_vgg": "a2b31ae6e7719a21eae799f3a3c9043109c710af93c6e6f0f913c548b3d7bde6"}
CHECKPOINT_FILES = (".data-00000-of-00001", ".index")

# --- the musicnn architecture (build_musicnn with num_filt=1.6, 64 mid-end filters, 200 back-end units) ----
TIMBRAL = ((7, int(0.4 * N_MELS)), (7, int(0.7 * N_MELS)))  # (time, freq) kernels: 7x38 and 7x67
TIMBRAL_FILTERS = int(1.6 * 128)  # 204
TEMPORAL = (128, 64, 32)  # time kernels, one frequency bin wide
TEMPORAL_FILTERS = int(1.6 * 32)  # 51
FRONTEND_CHANNELS = len(TIMBRAL) * TIMBRAL_FILTERS + len(TEMPORAL) * TEMPORAL_FILTERS  # 561
MIDEND_FILTERS = 64
MIDEND_KERNEL = 7
MIDEND_CHANNELS = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS  # 753, the concatenation the back end pools
MIDEND_LAYERS = ("cnn1", "cnn2", "cnn3")  # the back end reads them again through a concatenation: not cuts
BACKEND_UNITS = 200
# --- the vgg architecture (vgg with 128 filters) --------------------------------------------------------
VGG_FILTERS = 128
VGG_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))

LAYERS = {
    "musicnn": ("frontend", "cnn1", "cnn2", "cnn3", "pool", "penultimate", "taggram"),
    "vgg": ("pool1", "pool2", "pool3", "pool4", "pool5", "taggram"),
}
LAYOUTS = {
    "musicnn": {"frontend": "tc", "cnn1": "tc", "cnn2": "tc", "cnn3": "tc", "pool": "c", "penultimate": "c",
                "taggram": "c"},
    "vgg": {**{f"pool{i}": "tfc" for i in range(1, 6)}, "taggram": "c"},
}
HEAD = "taggram"
ABOUT = ("musicnn (Pons and Serra 2019), TensorFlow from musicnn 0.1.0's TF1 checkpoints (MTT_musicnn, "
         "MSD_musicnn, MTT_vgg, MSD_vgg): a musically motivated CNN or a VGG on 3-s log-mel patches, 50 "
         "MagnaTagATune or Million Song Dataset tags")

MTT_TAGS = ("guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
            "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
            "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
            "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
            "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
            "female voice", "choral")
MSD_TAGS = ("rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
            "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
            "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
            "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
            "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
            "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy")


# --- the configuration, without TensorFlow ----------------------------------------------------------------

def checkpoint_of(model_config: dict) -> str:
    return model_config.get("checkpoint", DEFAULT_CHECKPOINT)


def architecture(model_config: dict) -> str:
    """``musicnn`` or ``vgg``: the network the configured checkpoint belongs to."""
    checkpoint = checkpoint_of(model_config)
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"{checkpoint!r} is not one of musicnn's checkpoints, {', '.join(CHECKPOINTS)}")
    return checkpoint.split("_", 1)[1]


def layer_names(model_config: dict) -> list[str]:
    return list(LAYERS[architecture(model_config)])


def layouts(model_config: dict) -> dict[str, str]:
    return dict(LAYOUTS[architecture(model_config)])


def class_names(model_config: dict) -> list[str]:
    """The 50 tags, in the order of the taggram: MagnaTagATune's for MTT_*, the Million Song Dataset's for
    MSD_* (musicnn's configuration.MTT_LABELS and MSD_LABELS)."""
    architecture(model_config)  # a known checkpoint
    return list(MTT_TAGS if checkpoint_of(model_config).startswith("MTT") else MSD_TAGS)


def frames_of(clip_samples: int) -> int:
    """Spectrogram frames of a clip (centred frames), after padding a short clip to :data:`MIN_SAMPLES`."""
    return 1 + max(int(clip_samples), MIN_SAMPLES) // HOP


def patches_of(clip_samples: int) -> int:
    """Non-overlapping 187-frame patches of a clip; a trailing partial patch is dropped, as musicnn does."""
    return frames_of(clip_samples) // PATCH_FRAMES


def _vgg_shapes() -> dict[str, tuple[int, int, int]]:
    time, freq, shapes = PATCH_FRAMES, N_MELS, {}
    for index, ((pool_t, pool_f), (stride_t, stride_f)) in enumerate(VGG_POOLS, start=1):
        time, freq = (time - pool_t) // stride_t + 1, (freq - pool_f) // stride_f + 1  # "valid" max pooling
        shapes[f"pool{index}"] = (time, freq, VGG_FILTERS)
    return shapes


#: (time, freq, channel) of one patch at each layer
PATCH_SHAPES = {
    "musicnn": {"frontend": (PATCH_FRAMES, 1, FRONTEND_CHANNELS),
                **{f"cnn{i}": (PATCH_FRAMES, 1, MIDEND_FILTERS) for i in (1, 2, 3)},
                "pool": (1, 1, 2 * MIDEND_CHANNELS), "penultimate": (1, 1, BACKEND_UNITS),
                "taggram": (1, 1, len(MTT_TAGS))},
    "vgg": {**_vgg_shapes(), "taggram": (1, 1, len(MTT_TAGS))},
}


def layer_shape(model_config: dict, layer: str, clip_samples: int) -> tuple[int, ...]:
    """(patches, time, freq, channel) of one clip's activations at ``layer`` (see the module's docstring)."""
    shapes = PATCH_SHAPES[architecture(model_config)]
    if layer not in shapes:
        raise ValueError(f"musicnn checkpoint {checkpoint_of(model_config)!r} has no layer {layer!r}; its layers "
                         f"are {', '.join(layer_names(model_config))}")
    return (patches_of(clip_samples), *shapes[layer])


# --- the checkpoint files ---------------------------------------------------------------------------------

def weights_problem(name: str, model_config: dict) -> str | None:
    checkpoint = checkpoint_of(model_config)
    if checkpoint not in CHECKPOINTS:
        return (f"models.{name}.checkpoint: {checkpoint!r} is not one of musicnn's checkpoints, "
                f"{', '.join(CHECKPOINTS)}")
    return None


def checkpoint_prefix(name: str, model_config: dict) -> str:
    """The prefix of the configured checkpoint inside the installed musicnn (``.../musicnn/MTT_musicnn/``,
    as musicnn's extractor restores it), found without importing the package."""
    checkpoint = checkpoint_of(model_config)
    try:
        index = weights_checks.package_file("musicnn", f"{checkpoint}/.index", f"models.{name}")
        weights_checks.package_file("musicnn", f"{checkpoint}/{CHECKPOINT_FILES[0]}", f"models.{name}")
    except weights_checks.MissingPackageFile as err:
        raise weights_checks.MissingPackageFile(
            f"models.{name}: the musicnn checkpoint {checkpoint} is not installed ({err}). Install musicnn "
            "0.1.0 for its checkpoints, without its dependencies (setup.sh does: pip install --no-deps "
            "musicnn==0.1.0)") from err
    return str(Path(index).parent) + "/"


def weights_file(name: str, model_config: dict) -> str | None:
    """The checkpoint's data file inside the installed musicnn (the rules' input), or None when musicnn is not
    installed in the process that reads the config (the job then finds it, or says what to install)."""
    try:
        return checkpoint_prefix(name, model_config) + CHECKPOINT_FILES[0]
    except weights_checks.MissingPackageFile:
        return None


def prefix_of(path: str) -> str:
    """A checkpoint prefix from the prefix itself or from one of its files."""
    path = str(path)
    for suffix in CHECKPOINT_FILES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path


def checkpoint_sha256(prefix: str) -> str:
    """The sha256 over the checkpoint's data file, then its index file."""
    digest = hashlib.sha256()
    for suffix in CHECKPOINT_FILES:
        with open(prefix + suffix, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


# --- the front end ----------------------------------------------------------------------------------------

def _hz_to_mel(hz):
    """Slaney's mel scale (librosa.hz_to_mel with htk=False): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    step, log_step = 200.0 / 3, np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 1000.0 / step + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, hz / step)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    step, log_step = 200.0 / 3, np.log(6.4) / 27.0
    return np.where(mel >= 1000.0 / step, 1000.0 * np.exp(log_step * (mel - 1000.0 / step)), step * mel)


def mel_filters() -> np.ndarray:
    """[96, 257] float32: ``librosa.filters.mel(sr=16000, n_fft=512, n_mels=96)`` (htk=False,
    norm="slaney"), built the same way in NumPy so that the TensorFlow env needs no librosa."""
    bins = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2))
    widths = np.diff(edges)
    ramps = np.subtract.outer(edges, bins)
    weights = np.zeros((N_MELS, 1 + N_FFT // 2), dtype=np.float32)
    for band in range(N_MELS):
        weights[band] = np.maximum(0, np.minimum(-ramps[band] / widths[band], ramps[band + 2] / widths[band + 1]))
    weights *= (2.0 / (edges[2: N_MELS + 2] - edges[:N_MELS]))[:, None]  # Slaney: equal area per band
    return weights


def log_mel(waveforms):
    """[clips, samples] -> [clips, 1 + samples // 256, 96]: musicnn's log-mel in float32 TensorFlow."""
    import tensorflow as tf

    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    padded = tf.pad(waveforms, [[0, 0], [N_FFT // 2, N_FFT // 2]])  # librosa's centring, zeros ("constant")
    spectrum = tf.signal.stft(padded, frame_length=N_FFT, frame_step=HOP, fft_length=N_FFT,
                              window_fn=lambda length, dtype: tf.signal.hann_window(length, periodic=True,
                                                                                    dtype=dtype))
    power = tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2
    mel = tf.matmul(power, tf.constant(mel_filters().T))
    return tf.math.log(LOG_SCALE * mel + 1.0) / np.float32(np.log(10.0))


def log_mel_patches(waveforms):
    """[clips, samples] -> [clips * patches, 187, 96], each clip's patches in order; clips shorter than
    :data:`MIN_SAMPLES` are zero-padded at their end to it (as the adapter pads them)."""
    import tensorflow as tf

    waveforms = tf.convert_to_tensor(waveforms, tf.float32)
    short = tf.maximum(0, MIN_SAMPLES - tf.shape(waveforms)[1])
    spectrogram = log_mel(tf.pad(waveforms, [[0, 0], [0, short]]))
    frames = spectrogram.shape[1]
    if frames is None:
        frames = tf.shape(spectrogram)[1]
    kept = (frames // PATCH_FRAMES) * PATCH_FRAMES  # a trailing partial patch is dropped
    return tf.reshape(spectrogram[:, :kept], (-1, PATCH_FRAMES, N_MELS))


# --- the network ------------------------------------------------------------------------------------------

def _tf1_name(base: str, index: int) -> str:
    """The name tf.compat.v1.layers gave the ``index``-th layer of a kind: conv2d, conv2d_1, ..."""
    return base if index == 0 else f"{base}_{index}"


class _Weights:
    """The Keras layers to fill and the checkpoint variables that fill them."""

    def __init__(self, read):
        self.read, self.assigned = read, {}

    def conv(self, layer, variable: str, kernel_shape=None):
        kernel = self.read(f"{variable}/kernel")
        self.assigned[layer.name] = [kernel if kernel_shape is None else kernel.reshape(kernel_shape),
                                     self.read(f"{variable}/bias")]
        return layer

    def batch_norm(self, name: str, variable: str):
        import keras

        self.assigned[name] = [self.read(f"{variable}/{part}")
                               for part in ("gamma", "beta", "moving_mean", "moving_variance")]
        return keras.layers.BatchNormalization(epsilon=BATCH_NORM_EPSILON, name=name)

    def fill(self, model) -> None:
        for name, values in self.assigned.items():
            model.get_layer(name).set_weights(values)


def musicnn_network(read, classes: int, name: str = "musicnn"):
    """models.py's ``build_musicnn`` as a Keras functional model on log-mel patches [items, 187, 96],
    its variables read with ``read(checkpoint variable name)``."""
    import keras

    layers, weights = keras.layers, _Weights(read)
    patches = keras.Input((PATCH_FRAMES, N_MELS), name="log_mel")
    image = layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="expand")(patches)
    normalised = weights.batch_norm("input_bn", "batch_normalization")(image)
    conv = bn = 0
    features = []
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(normalised)  # time only, then "valid"
    for kernel in TIMBRAL:
        label = f"timbral_{kernel[0]}x{kernel[1]}"
        x = weights.conv(layers.Conv2D(TIMBRAL_FILTERS, kernel, padding="valid", activation="relu",
                                       name=f"{label}_conv"), _tf1_name("conv2d", conv))(padded)
        conv, bn = conv + 1, bn + 1
        x = weights.batch_norm(f"{label}_bn", _tf1_name("batch_normalization", bn))(x)
        x = layers.MaxPooling2D((1, N_MELS - kernel[1] + 1), name=f"{label}_pool")(x)  # over all frequencies
        features.append(layers.Reshape((PATCH_FRAMES, TIMBRAL_FILTERS), name=label)(x))
    for length in TEMPORAL:
        label = f"temporal_{length}"
        x = weights.conv(layers.Conv2D(TEMPORAL_FILTERS, (length, 1), padding="same", activation="relu",
                                       name=f"{label}_conv"), _tf1_name("conv2d", conv))(normalised)
        conv, bn = conv + 1, bn + 1
        x = weights.batch_norm(f"{label}_bn", _tf1_name("batch_normalization", bn))(x)
        x = layers.MaxPooling2D((1, N_MELS), name=f"{label}_pool")(x)
        features.append(layers.Reshape((PATCH_FRAMES, TEMPORAL_FILTERS), name=label)(x))
    frontend = layers.Concatenate(axis=-1, name="frontend")(features)

    # mid end: 7-frame convs across all channels (models.py pads time by 3 and convolves "valid"), each with
    # a ReLU then batch norm; the second and third add their input back
    midend, x = [frontend], frontend
    for index in (1, 2, 3):
        channels = x.shape[-1]
        out = weights.conv(layers.Conv1D(MIDEND_FILTERS, MIDEND_KERNEL, padding="same", activation="relu",
                                         name=f"cnn{index}_conv"), _tf1_name("conv2d", conv),
                           (MIDEND_KERNEL, channels, MIDEND_FILTERS))(x)
        conv, bn = conv + 1, bn + 1
        out = weights.batch_norm(f"cnn{index}" if index == 1 else f"cnn{index}_bn",
                                 _tf1_name("batch_normalization", bn))(out)
        x = out if index == 1 else layers.Add(name=f"cnn{index}")([out, x])
        midend.append(x)
    stacked = layers.Concatenate(axis=-1, name="midend")(midend)

    # back end: max and mean over time, flattened as models.py flattens [753, 2] (max, mean per feature)
    pooled = [layers.Reshape((MIDEND_CHANNELS, 1), name=f"{kind}_pool_column")(pool(name=f"{kind}_pool")(stacked))
              for kind, pool in (("max", layers.GlobalMaxPooling1D), ("mean", layers.GlobalAveragePooling1D))]
    pool = layers.Flatten(name="pool")(layers.Concatenate(axis=-1, name="max_mean")(pooled))
    bn += 1
    x = weights.batch_norm("pool_bn", _tf1_name("batch_normalization", bn))(pool)
    x = weights.conv(layers.Dense(BACKEND_UNITS, activation="relu", name="dense"), "dense")(x)
    bn += 1
    x = weights.batch_norm("penultimate", _tf1_name("batch_normalization", bn))(x)
    logits = weights.conv(layers.Dense(classes, name=HEAD), "dense_1")(x)
    model = keras.Model(patches, logits, name=name)
    weights.fill(model)
    return model


def vgg_network(read, classes: int, name: str = "vgg"):
    """models.py's ``vgg`` (128 filters) as a Keras functional model on log-mel patches [items, 187, 96]."""
    import keras

    layers, weights = keras.layers, _Weights(read)
    patches = keras.Input((PATCH_FRAMES, N_MELS), name="log_mel")
    x = layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="expand")(patches)
    x = weights.batch_norm("input_bn", "batch_normalization")(x)
    for index, (pool, strides) in enumerate(VGG_POOLS, start=1):
        x = weights.conv(layers.Conv2D(VGG_FILTERS, (3, 3), padding="same", activation="relu", name=f"conv{index}"),
                         f"{index}CNN")(x)
        x = weights.batch_norm(f"conv{index}_bn", _tf1_name("batch_normalization", index))(x)
        x = layers.MaxPooling2D(pool, strides, padding="valid", name=f"pool{index}")(x)
    x = layers.Flatten(name="flatten")(x)
    logits = weights.conv(layers.Dense(classes, name=HEAD), "dense")(x)
    model = keras.Model(patches, logits, name=name)
    weights.fill(model)
    return model


def network(prefix: str, checkpoint: str):
    """The Keras model of ``checkpoint``'s architecture with the variables of the checkpoint at ``prefix``."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    stored = reader.get_variable_to_shape_map()

    def read(variable: str) -> np.ndarray:
        if variable not in stored:
            raise ValueError(f"the checkpoint {prefix} has no variable {variable!r}: it is not a musicnn "
                             f"{checkpoint} checkpoint")
        return np.asarray(reader.get_tensor(variable), dtype=np.float32)

    build_network = vgg_network if checkpoint.endswith("_vgg") else musicnn_network
    return build_network(read, len(class_names({"checkpoint": checkpoint})), name=checkpoint)


def build(name: str, model_config: dict, weights, threads: int | None = None):
    """The adapter: musicnn's log-mel front end, then the network (see the module's docstring). ``weights`` is
    the checkpoint's prefix or one of its files (the rules pass :func:`weights_file`), or None for the
    configured checkpoint inside the installed musicnn; either is checked against :data:`SHA256`."""
    from audioprobe.io.download import WeightsChanged
    from audioprobe.models.keras_model import KerasAdapter

    if problem := weights_problem(name, model_config):
        raise ValueError(problem)
    checkpoint = checkpoint_of(model_config)
    prefix = prefix_of(weights) if weights else checkpoint_prefix(name, model_config)
    sha256 = checkpoint_sha256(prefix)
    if sha256 != SHA256[checkpoint]:
        raise WeightsChanged(
            f"{prefix} has sha256 {sha256} (over its data and index files), but audioprobe records "
            f"{SHA256[checkpoint]} for musicnn 0.1.0's {checkpoint}: the checkpoint changed, so the job stopped. "
            "Reinstall musicnn (pip install --no-deps --force-reinstall musicnn==0.1.0).")
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
    model = network(prefix, checkpoint)
    return KerasAdapter(model, name=name, sample_rate=SAMPLE_RATE, layers=layer_names(model_config),
                        layouts=layouts(model_config), head=HEAD, scores="sigmoid", frontend=log_mel_patches,
                        min_samples=MIN_SAMPLES, weights_sha256=sha256, threads=threads)
