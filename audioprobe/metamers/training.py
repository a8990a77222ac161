"""Train, evaluate, save and load the Study 2 classifiers (:mod:`audioprobe.metamers.architectures`).

Training follows the TF simple-audio tutorial: Adam, sparse categorical cross-entropy from logits, early
stopping on the validation loss; here the best epoch's weights are always restored and everything is
seeded (weights and dropout at build time, batch order here; TensorFlow's deterministic ops while
training). An explicit loop rather than ``model.fit``: one traced step for every batch size, and the
batch order and the restored epoch are plain to see. Weights are saved in Keras' ``.weights.h5`` format
(HDF5, no pickle, no model code), written atomically, with the architecture, input shape, class count
and parameter count as a file attribute that :func:`load_classifier` checks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from audioprobe.io.atomic import check_inside_results, replace_checked

log = logging.getLogger(__name__)
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy")
WEIGHTS_SUFFIX = ".weights.h5"
_ATTRS = "audioprobe_classifier"


@contextlib.contextmanager
def _deterministic(enabled: bool):
    """TensorFlow's deterministic ops for the duration of the block, then the previous setting again (the
    query and the switch back are not public API; without them, determinism stays on)."""
    import tensorflow as tf

    try:
        from tensorflow.python.framework.config import disable_op_determinism, is_op_determinism_enabled
    except ImportError:  # pragma: no cover - older/newer TensorFlow
        disable_op_determinism, is_op_determinism_enabled = None, None
    before = is_op_determinism_enabled() if is_op_determinism_enabled is not None else False
    if enabled and not before:
        tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if enabled and not before and disable_op_determinism is not None:
            disable_op_determinism()


def _emit(log_to, message: str) -> None:
    if log_to is None:
        log.info("%s", message)
    elif isinstance(log_to, logging.Logger):
        log_to.info("%s", message)
    else:
        log_to(message)


def train_classifier(model, x_train, y_train, x_val, y_val, *, epochs: int, batch_size: int,
                     learning_rate: float, patience: int, seed: int, log=None, deterministic: bool = True):
    """Train ``model`` (logits output) and return (model, history).

    Adam(``learning_rate``) on the sparse categorical cross-entropy from logits, in minibatches of
    ``batch_size`` in an order drawn from ``seed`` every epoch (dropout on). After each epoch the loss and
    accuracy on the validation set are computed (dropout off); training stops once the validation loss
    has not improved for ``patience`` epochs (as Keras' EarlyStopping), and the weights of the epoch with
    the lowest validation loss are restored, also when all ``epochs`` ran. ``seed`` also seeds Python,
    NumPy and TensorFlow (the model's dropout masks follow the seed it was built with); with
    ``deterministic`` TensorFlow's deterministic ops are on while training. ``log`` is a logger or a
    callable taking a string (default: this module's logger); one line per epoch and one at the end.

    History columns: epoch (1-based), loss and accuracy (means over the epoch's training batches, as
    Keras reports them), val_loss, val_accuracy, seconds; ``history.attrs`` holds ``best_epoch`` and
    ``stopped_early``. One step function is traced for any batch size, so the last, smaller batch
    costs no second trace.
    """
    import keras
    import pandas as pd
    import tensorflow as tf

    x_train, x_val = np.asarray(x_train, np.float32), np.asarray(x_val, np.float32)
    y_train, y_val = np.asarray(y_train, np.int64), np.asarray(y_val, np.int64)
    if len(x_train) != len(y_train) or len(x_val) != len(y_val):
        raise ValueError("inputs and labels differ in length")
    if len(x_train) == 0 or len(x_val) == 0:
        raise ValueError("training needs training and validation examples (early stopping uses the latter)")
    n_classes = int(model.output.shape[-1])
    labels = np.concatenate([y_train, y_val])
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must be in [0, {n_classes}); got {labels.min()}..{labels.max()}")
    if epochs < 1 or batch_size < 1 or patience < 0:
        raise ValueError("epochs and batch_size must be >= 1 and patience >= 0")

    keras.utils.set_random_seed(int(seed))
    order = np.random.default_rng(int(seed))
    variables = model.trainable_variables
    optimiser = keras.optimizers.Adam(learning_rate=learning_rate)
    optimiser.build(variables)
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    spec = (tf.TensorSpec([None, *x_train.shape[1:]], tf.float32), tf.TensorSpec([None], tf.int64))

    def summed(x, y, training):
        logits = model(x, training=training)
        correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1), y), tf.float32))
        return cross_entropy(y, logits), correct

    @tf.function(input_signature=spec)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss, correct = summed(x, y, True)
            mean = loss / tf.cast(tf.shape(x)[0], tf.float32)
        optimiser.apply_gradients(zip(tape.gradient(mean, variables), variables))
        return loss, correct

    @tf.function(input_signature=spec)
    def eval_step(x, y):
        return summed(x, y, False)

    def batches(x, y, index):
        for start in range(0, len(index), int(batch_size)):
            part = index[start:start + int(batch_size)]
            yield tf.constant(x[part]), tf.constant(y[part])

    rows, best, best_weights, wait = [], np.inf, None, 0
    with _deterministic(deterministic):
        for epoch in range(1, int(epochs) + 1):
            started = time.monotonic()
            totals = np.zeros(2)
            for xb, yb in batches(x_train, y_train, order.permutation(len(x_train))):
                totals += [float(v) for v in train_step(xb, yb)]
            val = np.zeros(2)
            for xb, yb in batches(x_val, y_val, np.arange(len(x_val))):
                val += [float(v) for v in eval_step(xb, yb)]
            row = {"epoch": epoch, "loss": totals[0] / len(x_train), "accuracy": totals[1] / len(x_train),
                   "val_loss": val[0] / len(x_val), "val_accuracy": val[1] / len(x_val),
                   "seconds": time.monotonic() - started}
            rows.append(row)
            _emit(log, f"{model.name} epoch {epoch}/{epochs}: loss {row['loss']:.4f} accuracy {row['accuracy']:.3f}"
                       f" val_loss {row['val_loss']:.4f} val_accuracy {row['val_accuracy']:.3f}"
                       f" ({row['seconds']:.1f} s)")
            if not np.isfinite(row["loss"]):
                _emit(log, f"{model.name}: training loss is not finite; stopping")
                break
            if row["val_loss"] < best:
                best, best_weights, wait = row["val_loss"], [v.numpy() for v in variables], 0
            else:
                wait += 1
                if wait >= patience:
                    break
    if best_weights is not None:  # only trainable variables change in training
        for variable, value in zip(variables, best_weights):
            variable.assign(value)
    history = pd.DataFrame(rows, columns=[*HISTORY_COLUMNS, "seconds"])
    best_row = int(history["val_loss"].idxmin()) if np.isfinite(best) else len(history) - 1
    history.attrs["best_epoch"] = int(history["epoch"][best_row])
    history.attrs["stopped_early"] = len(history) < int(epochs)
    _emit(log, f"{model.name}: best epoch {history.attrs['best_epoch']} (val_loss {history['val_loss'][best_row]:.4f},"
               f" val_accuracy {history['val_accuracy'][best_row]:.3f}); its weights are restored")
    return model, history


def predict_logits(model, x, batch_size: int = 256) -> np.ndarray:
    """Logits [examples, classes] in inference mode (dropout off), batch by batch."""
    x = np.asarray(x, np.float32)
    out = [np.asarray(model(x[i:i + batch_size], training=False)) for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, int(model.output.shape[-1])), np.float32)


def evaluate(model, x, y, class_names, batch_size: int = 256) -> dict:
    """Accuracy overall and per class, and the confusion matrix (rows: true class, columns: predicted)."""
    y = np.asarray(y, np.int64)
    class_names = list(class_names)
    predicted = predict_logits(model, x, batch_size).argmax(axis=1)
    confusion = np.zeros((len(class_names), len(class_names)), np.int64)
    np.add.at(confusion, (y, predicted), 1)
    per_class, per_class_n = {}, {}
    for index, name in enumerate(class_names):
        n = int(confusion[index].sum())
        per_class_n[name] = n
        per_class[name] = float(confusion[index, index] / n) if n else float("nan")
    return {"accuracy": float(np.mean(predicted == y)) if len(y) else float("nan"), "n": int(len(y)),
            "per_class": per_class, "per_class_n": per_class_n, "confusion": confusion.tolist(),
            "class_names": class_names}


def accuracy_table(results: dict):
    """Long table from {model name: :func:`evaluate` result}: one row per model and class, plus a row
    with class ``"all"``; columns model, class, n, correct, accuracy."""
    import pandas as pd

    rows = []
    for name, result in results.items():
        for cls in result["class_names"]:
            n = result["per_class_n"][cls]
            accuracy = result["per_class"][cls]
            rows.append({"model": name, "class": cls, "n": n,
                         "correct": int(round(accuracy * n)) if n else 0, "accuracy": accuracy})
        rows.append({"model": name, "class": "all", "n": result["n"],
                     "correct": int(round(result["accuracy"] * result["n"])) if result["n"] else 0,
                     "accuracy": result["accuracy"]})
    return pd.DataFrame(rows, columns=["model", "class", "n", "correct", "accuracy"])


def _description(model) -> dict:
    return {"arch": model.name, "input_shape": [int(v) for v in model.input.shape[1:]],
            "n_classes": int(model.output.shape[-1]), "params": int(model.count_params())}


def save_weights(model, path) -> Path:
    """Write the weights to ``path`` (must end in ``.weights.h5``) atomically: a temporary file in the same
    folder, renamed over ``path`` only once complete. The architecture, input shape, class count and
    parameter count go into the file's ``audioprobe_classifier`` attribute (JSON)."""
    import h5py

    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"weights file {path} must end in {WEIGHTS_SUFFIX}")
    check_inside_results(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:-len(WEIGHTS_SUFFIX)]}.", suffix=".part" + WEIGHTS_SUFFIX,
                               dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():  # Keras' own numpy 2 copy-keyword deprecation, once per variable
            warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                                    category=DeprecationWarning)
            model.save_weights(tmp, overwrite=True)
        with h5py.File(tmp, "a") as handle:
            handle.attrs[_ATTRS] = json.dumps(_description(model), sort_keys=True)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        replace_checked(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def saved_description(path) -> dict | None:
    """The ``audioprobe_classifier`` attribute of a weights file (None if it has none)."""
    from audioprobe.io.h5safe import open_h5

    with open_h5(path) as handle:
        value = handle.attrs.get(_ATTRS)
    if value is None:
        return None
    return json.loads(value.decode() if isinstance(value, bytes) else value)


def load_classifier(path, arch: str, input_shape: tuple[int, int], n_classes: int, **build_kwargs):
    """Build ``arch`` with ``build_kwargs`` (as when it was trained) and load its weights from ``path``.

    Fails if the file records a different architecture, input shape, class count or parameter count, or
    if any layer's weights do not fit (Keras checks every variable's shape)."""
    from audioprobe.metamers.architectures import build_classifier

    path = Path(path)
    if not path.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"weights file {path} must end in {WEIGHTS_SUFFIX}")
    if not path.exists():
        raise FileNotFoundError(path)
    build_kwargs.pop("normalization_data", None)  # the adapted statistics are in the weights file
    model = build_classifier(arch, tuple(input_shape), int(n_classes), **build_kwargs)
    stored = saved_description(path)
    if stored is not None:
        expected = _description(model)
        different = [key for key in expected if stored.get(key) != expected[key]]
        if different:
            raise ValueError(f"{path} holds weights for {stored}, not for {expected} ({', '.join(different)} differ)")
    model.load_weights(str(path))
    return model
