"""The keyword networks: one architecture trained on the shared front end (early-stopped on the validation
speakers, tested on the test speakers), and the parameter and accuracy tables over every architecture."""

from __future__ import annotations

import json
import logging

import numpy as np

from audioprobe.io.atomic import write_csv
from audioprobe.latent.split import class_codes, split_masks
from audioprobe.metamers.waveforms import read_waveforms

log = logging.getLogger(__name__)


def representations(frontend, waveforms: np.ndarray, batch: int = 64) -> np.ndarray:
    import tensorflow as tf

    return np.concatenate([np.asarray(frontend(tf.constant(waveforms[i:i + batch])))
                           for i in range(0, len(waveforms), batch)])


def validation_mask(masks: dict) -> np.ndarray:
    """The clips that early-stop a keyword network: the validation split, never the test split."""
    if not masks["val"].any():
        raise ValueError("the keyword split has no validation speakers, and early stopping never looks at test "
                         "clips: raise metamers.split.val_fraction or add speakers")
    return masks["val"]


def train_keyword_model_step(*, waveforms_path, split_path, weights_h5, history_csv, evaluation_json, model: dict,
                             training: dict, threads: int, log: logging.Logger = log) -> None:
    import tensorflow as tf

    from audioprobe.io.atomic import write_json
    from audioprobe.metamers import architectures, frontends
    from audioprobe.metamers import training as fit

    tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
    data = read_waveforms(waveforms_path)
    labels, names = class_codes(data["word"])
    masks = split_masks(split_path, data["clip_id"])
    validation = validation_mask(masks)
    frontend = frontends.build_frontend(model["frontend"])
    reps = representations(frontend, data["waveforms"])
    log.info("%s on %s: %d train, %d validation, %d test clips, %d words", model["arch"], "x".join(map(str, reps.shape[1:])),
             masks["train"].sum(), validation.sum(), masks["test"].sum(), len(names))
    classifier = architectures.build_classifier(model["arch"], reps.shape[1:], len(names), groups=model["groups"],
                                                sizes=model["sizes"], seed=training["seed"],
                                                normalization_data=reps[masks["train"]])
    classifier, history = fit.train_classifier(
        classifier, reps[masks["train"]], labels[masks["train"]], reps[validation], labels[validation],
        epochs=training["epochs"], batch_size=training["batch_size"], learning_rate=training["learning_rate"],
        patience=training["patience"], seed=training["seed"], log=log)
    result = fit.evaluate(classifier, reps[masks["test"]], labels[masks["test"]], names)
    fit.save_weights(classifier, weights_h5)
    # Epoch times go to the log only: a wall-clock column would make two runs' tables differ.
    write_csv(history_csv, history.drop(columns="seconds"), config={**model, **training})
    write_json(evaluation_json, {"arch": model["arch"], "test": result, "class_names": names,
                                 "input_shape": list(reps.shape[1:]), "config": {**model, **training}})
    log.info("test accuracy %.3f on %d clips", result["accuracy"], result["n"])


def keyword_model_tables_step(*, weight_paths: list, evaluation_paths: list, parameters_csv, accuracy_csv,
                              architectures_used, model: dict) -> None:
    """``weight_paths`` and ``evaluation_paths``: one per architecture of ``architectures_used``, in its order."""
    from audioprobe.metamers import architectures
    from audioprobe.metamers import training as fit

    models, results = {}, {}
    for arch, weight_path, evaluation_path in zip(architectures_used, weight_paths, evaluation_paths):
        evaluation = json.loads(open(evaluation_path).read())
        models[arch] = fit.load_classifier(weight_path, arch, tuple(evaluation["input_shape"]),
                                           len(evaluation["class_names"]), groups=model["groups"],
                                           sizes=model["sizes"])
        results[arch] = evaluation["test"]
    write_csv(parameters_csv, architectures.parameter_table(models), config=model)
    write_csv(accuracy_csv, fit.accuracy_table(results), config=model)
