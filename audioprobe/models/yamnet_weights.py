"""YAMNet weights from any of its published forms, as batch-norm-folded (kernel, bias) pairs.

Sources:
- the TF Hub / Kaggle TFLite export (``*.tflite``), whose conv kernels already have batch norm folded in;
- the official Keras weights file (``yamnet.h5``), local SavedModel folders (read with
  ``tf.saved_model.load``) and TF Hub handles (http(s) URLs, fetched with ``tensorflow_hub``), whose
  variables keep batch norm apart: it is folded here, with YAMNet's epsilon of 1e-4.

The result is a :class:`YamnetWeights`: ``layers[i]`` holds the folded parts of conv layer ``i + 1``
(``conv`` for layer 1; ``depthwise`` and ``pointwise`` for layers 2 to 14), ``logits`` the dense head.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioprobe.io.download import sha256_of
from audioprobe.models.weights import WEIGHT_FILE_SUFFIXES, is_hub_handle, weights_problem

# (kind, stride, filters) for YAMNet's 14 conv layers, from the reference implementation.
LAYER_DEFS = [("conv", 2, 32), ("separable", 1, 64), ("separable", 2, 128), ("separable", 1, 128),
              ("separable", 2, 256), ("separable", 1, 256), ("separable", 2, 512), ("separable", 1, 512),
              ("separable", 1, 512), ("separable", 1, 512), ("separable", 1, 512), ("separable", 1, 512),
              ("separable", 2, 1024), ("separable", 1, 1024)]
NUM_CLASSES = 521
BATCHNORM_EPSILON = 1e-4


class MissingWeights(FileNotFoundError):
    pass


@dataclass
class YamnetWeights:
    layers: list[dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)
    logits: tuple[np.ndarray, np.ndarray] | None = None
    sha256: str = ""
    source: str = ""
    #: TFLite export only: integer kernels (as float32, in the same layout) and their scales, keyed by
    #: (layer index, part) and "logits", and the front end's window, DFT and mel matrices; used to
    #: reproduce the interpreter's dynamic-range arithmetic (``numerics="tflite"``)
    hybrid: dict = field(default_factory=dict)
    frontend: dict = field(default_factory=dict)

    def check(self) -> "YamnetWeights":
        if len(self.layers) != len(LAYER_DEFS) or self.logits is None:
            raise ValueError(f"{self.source}: found {len(self.layers)} of 14 conv layers"
                             f"{'' if self.logits is not None else ' and no logits layer'}")
        channels = 1
        for index, ((kind, _, filters), parts) in enumerate(zip(LAYER_DEFS, self.layers), start=1):
            if kind == "conv":
                _expect(parts["conv"][0], (3, 3, channels, filters), f"layer{index}/conv", self.source)
            else:
                _expect(parts["depthwise"][0], (3, 3, channels, 1), f"layer{index}/depthwise", self.source)
                _expect(parts["pointwise"][0], (1, 1, channels, filters), f"layer{index}/pointwise", self.source)
            channels = filters
        _expect(self.logits[0], (channels, NUM_CLASSES), "logits", self.source)
        return self


def _expect(array, shape, name, source):
    if tuple(array.shape) != shape:
        raise ValueError(f"{source}: {name} kernel has shape {tuple(array.shape)}, expected {shape}")


def load_weights(source, config_key: str = "models.yamnet.weights", *, sha256: str | None = None) -> YamnetWeights:
    """Weights from a ``.tflite`` file, a Keras ``.h5`` file, a SavedModel folder or a TF Hub handle (URL).

    Anything else (a missing folder, a file with another suffix such as ``yamnet.tflit``) is a
    :class:`MissingWeights` naming ``config_key`` and the accepted forms. ``sha256``: the file's digest when
    the caller has just computed it (``models.load`` verifies downloaded weights), so it is not hashed again.
    """
    source = str(source)
    path = Path(source)
    if is_hub_handle(source):
        weights = from_hub(source, config_key=config_key)
    elif path.suffix == ".tflite":
        _require_file(path, config_key)
        weights = from_tflite(path, sha256=sha256)
    elif path.suffix in WEIGHT_FILE_SUFFIXES:
        _require_file(path, config_key)
        weights = from_variables(_h5_variables(path), source=str(path))
        weights.sha256 = sha256 or sha256_of(path)
    elif (path / "saved_model.pb").is_file():
        weights = from_saved_model(path)
    else:
        raise MissingWeights(weights_problem(source, config_key) or f"{config_key}: {source} is not YAMNet weights")
    return weights.check()


def _require_file(path: Path, config_key: str = "models.yamnet.weights") -> None:
    if not path.is_file():
        raise MissingWeights(
            f"YAMNet weights not found at {path}. Run the workflow with network access once so the rule "
            f"download_model_file fetches them into resources/models/<name>/, or set {config_key} in your "
            "config to a local yamnet.tflite (TF Hub / Kaggle export), yamnet.h5 (Keras weights) or SavedModel "
            "folder.")


# --- TFLite ---------------------------------------------------------------------------------------------

def from_tflite(path, *, sha256: str | None = None) -> YamnetWeights:
    """Read the folded kernels and biases out of the TFLite flatbuffer, following its op graph.

    Tensor names in the export are unreliable (the converter merges names of ops that share constants),
    so ops are taken in execution order: four FULLY_CONNECTED ops (real and imaginary DFT, mel matrix,
    logits) and, for the conv stack, layer 1's CONV_2D then DEPTHWISE_CONV_2D and CONV_2D for each of
    layers 2 to 14. The export stores most kernels as int8 with one scale: they are dequantized for float
    use and also kept as integers so that ``numerics="tflite"`` can reproduce the interpreter exactly.
    ``sha256``: the file's digest if already computed (else it is computed here).
    """
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the public API has no op graph
    produced_by = {int(out): op for op in ops for out in op["outputs"]}
    details = {d["index"]: d for d in interpreter.get_tensor_details()}

    def source_of(index):
        op = produced_by.get(int(index))
        return int(op["inputs"][0]) if op is not None and op["op_name"] == "DEQUANTIZE" else int(index)

    def constant(index):
        index = source_of(index)
        return _dequantize(interpreter.get_tensor(index), details[index]["quantization_parameters"])

    def integer(index, layout):
        """(integer kernel as float32 in ``layout``, scale) for int8 kernels used directly by an op."""
        if int(index) in produced_by:  # widened by a DEQUANTIZE op: the op computes in float
            return None
        values = interpreter.get_tensor(int(index))
        if not np.issubdtype(values.dtype, np.integer):
            return None
        scales = details[int(index)]["quantization_parameters"]["scales"]
        if scales.size != 1:
            raise ValueError(f"{path}: per-channel quantised kernels are not supported")
        return layout(values.astype(np.float32)), np.float32(scales[0])

    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    dense = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    expected = ["CONV_2D"] + ["DEPTHWISE_CONV_2D", "CONV_2D"] * (len(LAYER_DEFS) - 1)
    if [op["op_name"] for op in convs] != expected or len(dense) != 4:
        raise ValueError(f"{path}: not a YAMNet TFLite export (found {len(convs)} conv and {len(dense)} "
                         "fully connected ops, expected 27 and 4)")
    weights = YamnetWeights(sha256=sha256 or sha256_of(path), source=str(path))

    def conv_layout(kernel):  # TFLite [out, h, w, in] and depthwise [1, h, w, ch] -> [h, w, in, out]
        return np.transpose(kernel, (1, 2, 3, 0))

    parts = [(conv_layout(constant(op["inputs"][1])), constant(op["inputs"][2])) for op in convs]
    names = ["conv"] + ["depthwise", "pointwise"] * (len(LAYER_DEFS) - 1)
    layer_of = [0] + [1 + i // 2 for i in range(2 * (len(LAYER_DEFS) - 1))]
    weights.layers = [{} for _ in LAYER_DEFS]
    for op, part, name, layer in zip(convs, parts, names, layer_of):
        weights.layers[layer][name] = part
        if (hybrid := integer(op["inputs"][1], conv_layout)) is not None:
            weights.hybrid[(layer, name)] = hybrid

    def dense_layout(kernel):  # TFLite [out, in] -> [in, out]
        return kernel.T

    logits = dense[-1]
    weights.logits = (dense_layout(constant(logits["inputs"][1])), constant(logits["inputs"][2]))
    if (hybrid := integer(logits["inputs"][1], dense_layout)) is not None:
        weights.hybrid["logits"] = hybrid
    window = next(op for op in ops if op["op_name"] == "MUL" and int(op["inputs"][1]) in details
                  and details[int(op["inputs"][1])]["shape"][-1] == 400)
    weights.frontend = {
        "window": constant(window["inputs"][1]).reshape(-1),
        "dft_real": integer(dense[0]["inputs"][1], dense_layout),
        "dft_imag": integer(dense[1]["inputs"][1], dense_layout),
        "mel": integer(dense[2]["inputs"][1], dense_layout),
        "mel_bias": constant(dense[2]["inputs"][2]),
    }
    return weights


def _dequantize(values: np.ndarray, quantization: dict) -> np.ndarray:
    """Integer weights (the export quantises pointwise kernels to int8) back to float32."""
    if not np.issubdtype(values.dtype, np.integer):
        return np.asarray(values, dtype=np.float32)
    scales = np.asarray(quantization["scales"], dtype=np.float32)
    zeros = np.asarray(quantization["zero_points"], dtype=np.float32)
    if scales.size > 1:  # one scale per slice along the quantised dimension
        shape = [1] * values.ndim
        shape[quantization["quantized_dimension"]] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((values.astype(np.float32) - zeros) * scales).astype(np.float32)


# --- Keras h5 and SavedModel variables --------------------------------------------------------------------

_VARIABLE = re.compile(r"(layer\d+)/(conv|depthwise_conv|pointwise_conv)(/bn)?/"
                       r"(kernel|depthwise_kernel|beta|gamma|moving_mean|moving_variance)(:0)?$")
_DENSE = re.compile(r"(dense|logits)[^/]*/(kernel|bias)(:0)?$")


def _h5_variables(path) -> dict[str, np.ndarray]:
    import h5py

    from audioprobe.io.h5safe import open_h5

    out = {}
    with open_h5(path) as file:
        file.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def import_hub():
    """``tensorflow_hub``, or an ImportError that says what to install (it imports setuptools' pkg_resources)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import tensorflow_hub as hub
    except ImportError as err:
        raise ImportError(
            f"tensorflow_hub cannot be imported ({err}). It needs setuptools' pkg_resources, which setuptools 81 "
            "removed: run ./setup.sh again, or pip install 'tensorflow-hub==0.16.1' 'setuptools>=77.0.3,<81'. "
            "A local SavedModel folder, .tflite or .h5 file needs no tensorflow_hub.") from err
    return hub


def from_hub(handle: str, config_key: str = "models.yamnet.weights") -> YamnetWeights:
    """Weights from a TF Hub handle (an http(s) URL; fetching it needs the network, then hub's cache holds it)."""
    hub = import_hub()
    try:
        model = hub.load(handle)
    except Exception as err:
        raise MissingWeights(
            f"{config_key}: could not load YAMNet from TF Hub handle {handle!r} ({type(err).__name__}: {err}). "
            f"Offline, set {config_key} to a local yamnet.tflite or yamnet.h5 file or SavedModel folder.") from err
    return _from_saved_object(model, handle)


def from_saved_model(path) -> YamnetWeights:
    """Weights from a local SavedModel folder (one holding ``saved_model.pb``), without tensorflow_hub."""
    import tensorflow as tf

    try:
        model = tf.saved_model.load(str(path))
    except Exception as err:
        raise ValueError(f"{path}: could not load the SavedModel ({type(err).__name__}: {err})") from err
    return _from_saved_object(model, str(path))


def _from_saved_object(model, source: str) -> YamnetWeights:
    """Fold the variables of a loaded SavedModel; its sha256 is that of the sorted names and values."""
    import tensorflow as tf

    variables = {}
    for variable in tf.train.TrackableView(model).descendants():
        if isinstance(variable, tf.Variable):
            if variable.name in variables:
                raise ValueError(f"{source}: two variables are named {variable.name}")
            variables[variable.name] = variable.numpy()
    weights = from_variables(variables, source=source)
    weights.sha256 = hashlib.sha256("".join(sorted(variables)).encode() +
                                    b"".join(variables[k].tobytes() for k in sorted(variables))).hexdigest()
    return weights


def from_variables(variables: dict[str, np.ndarray], source: str = "variables") -> YamnetWeights:
    """Fold batch norm into the conv kernels, from unfolded variables named as in YAMNet's Keras model."""
    found: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    dense: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if match := _VARIABLE.search(name):
            layer, conv, _, part, _ = match.groups()
            found.setdefault((layer, conv), {})[part] = np.asarray(value, dtype=np.float32)
        elif match := _DENSE.search(name):
            dense[match.group(2)] = np.asarray(value, dtype=np.float32)
    weights = YamnetWeights(source=source)
    for index, (kind, _, _) in enumerate(LAYER_DEFS, start=1):
        convs = ["conv"] if kind == "conv" else ["depthwise_conv", "pointwise_conv"]
        parts = {}
        for conv in convs:
            found_parts = found.get((f"layer{index}", conv))
            if not found_parts:
                raise ValueError(f"{source}: no variables for layer{index}/{conv}")
            parts[conv.replace("_conv", "")] = _fold(found_parts, f"layer{index}/{conv}", source)
        weights.layers.append(parts)
    if set(dense) != {"kernel", "bias"}:
        raise ValueError(f"{source}: no dense logits layer (kernel and bias) found")
    weights.logits = (dense["kernel"], dense["bias"])
    return weights


def _fold(parts: dict[str, np.ndarray], name: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    kernel = parts.get("kernel", parts.get("depthwise_kernel"))
    missing = [p for p in ("moving_mean", "moving_variance", "beta") if p not in parts]
    if kernel is None or missing:
        raise ValueError(f"{source}: {name} lacks {missing or ['kernel']}")
    scale = parts.get("gamma", 1.0) / np.sqrt(parts["moving_variance"] + BATCHNORM_EPSILON)
    bias = parts["beta"] - parts["moving_mean"] * scale
    if "depthwise_kernel" in parts:  # [h, w, channels, 1]: scale per input channel
        folded = kernel * scale[None, None, :, None]
    else:  # [h, w, in, out]: scale per output channel
        folded = kernel * scale[None, None, None, :]
    return folded.astype(np.float32), bias.astype(np.float32)
