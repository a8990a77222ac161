"""The steps of Study 2 as the workflow runs them: each reads files, calls the analysis, writes files."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pandas as pd

from audioprobe.datasets.manifest import load_clip, read_manifest
from audioprobe.io.atomic import atomic_path, check_inside_results, read_csv, write_csv
from audioprobe.io.store import STRING, open_h5, read_strings
from audioprobe.latent.split import class_codes, split_masks
from audioprobe.models.base import RELU_GRADIENTS

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000


def keyword_waveforms(manifest_path, root, out_path, *, clip_seconds: float, label: str = "word",
                      log: logging.Logger = log) -> None:
    """Every clip of a keyword dataset as 16-kHz mono float32, cropped or padded to ``clip_seconds``;
    the manifest's ``label`` column names the word."""
    clips = read_manifest(manifest_path)
    if f"label_{label}" not in clips.columns:
        raise ValueError(f"{manifest_path} has no {label!r} label (metamers.label); its labels are "
                         f"{[c[6:] for c in clips.columns if c.startswith('label_')]}")
    clips = clips.assign(label_word=clips[f"label_{label}"])
    samples = int(round(clip_seconds * SAMPLE_RATE))
    waves = np.stack([load_clip(root, row, SAMPLE_RATE, samples) for _, row in clips.iterrows()])
    silent = np.flatnonzero(np.sqrt(np.mean(waves ** 2, axis=1)) < 1e-4)
    clipped = np.flatnonzero(np.mean(np.abs(waves) >= 0.999, axis=1) > 0.01)
    log.info("%d clips, %d words; %d silent, %d clipped", len(clips), clips["label_word"].nunique(), len(silent),
             len(clipped))
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("waveforms", data=waves, track_times=False)
        file.create_dataset("clip_id", data=clips["clip_id"].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("word", data=clips["label_word"].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("group", data=clips["group"].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("silent", data=np.isin(np.arange(len(clips)), silent), track_times=False)
        file.create_dataset("clipped", data=np.isin(np.arange(len(clips)), clipped), track_times=False)
        file.attrs["sample_rate"] = SAMPLE_RATE
        file.attrs["config"] = json.dumps({"clip_seconds": clip_seconds, "manifest": str(manifest_path)})
        file.attrs["complete"] = True


def read_waveforms(path) -> dict:
    with open_h5(path) as file:
        return {"waveforms": file["waveforms"][()], "silent": file["silent"][()], "clipped": file["clipped"][()],
                **{k: read_strings(file[k]) for k in ("clip_id", "word", "group")}}


def choose_targets(data: dict, split_path, *, per_word: int, seed: int) -> pd.DataFrame:
    """Test-split clips to make metamers of: ``per_word`` per word, never silent or clipped ones.

    Silent or clipped candidates are skipped and listed in the log; a word with no usable test clip is
    an error naming it.
    """
    split = read_csv(split_path).set_index("clip_id")["split"]
    table = pd.DataFrame({"index": np.arange(len(data["clip_id"])), "clip_id": data["clip_id"], "word": data["word"],
                          "silent": data["silent"], "clipped": data["clipped"]})
    table = table[table["clip_id"].map(split) == "test"]
    unusable = table[table.silent | table.clipped]
    for _, row in unusable.iterrows():
        log.warning("not a metamer target: %s is %s", row.clip_id, "silent" if row.silent else "clipped")
    usable = table[~(table.silent | table.clipped)]
    rng = np.random.default_rng(seed)
    chosen = []
    for word in sorted(set(table["word"])):
        candidates = usable[usable.word == word]
        if candidates.empty:
            raise ValueError(f"no usable test clip of the word {word!r} (all silent or clipped): check the dataset")
        chosen.append(candidates.iloc[rng.permutation(len(candidates))[:per_word]])
    return pd.concat(chosen).sort_values("index").reset_index(drop=True)


def representations(frontend, waveforms: np.ndarray, batch: int = 64) -> np.ndarray:
    import tensorflow as tf

    return np.concatenate([np.asarray(frontend(tf.constant(waveforms[i:i + batch])))
                           for i in range(0, len(waveforms), batch)])


# --- keyword networks ---------------------------------------------------------------------------------------

def validation_mask(masks: dict) -> np.ndarray:
    """The clips that early-stop a keyword network: the validation split, never the test split."""
    if not masks["val"].any():
        raise ValueError("the keyword split has no validation speakers, and early stopping never looks at test "
                         "clips: raise metamers.split.val_fraction or add speakers")
    return masks["val"]


def train_keyword_model_step(waveforms_path, split_path, outputs, *, model: dict, training: dict, threads: int,
                             log: logging.Logger = log) -> None:
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
    fit.save_weights(classifier, outputs.weights)
    # Epoch times go to the log only: a wall-clock column would make two runs' tables differ.
    write_csv(outputs.history, history.drop(columns="seconds"), config={**model, **training})
    write_json(outputs.evaluation, {"arch": model["arch"], "test": result, "class_names": names,
                                    "input_shape": list(reps.shape[1:]), "config": {**model, **training}})
    log.info("test accuracy %.3f on %d clips", result["accuracy"], result["n"])


def keyword_model_tables_step(weights, evaluations, waveforms_path, outputs, *, architectures_used, model: dict):
    from audioprobe.metamers import architectures
    from audioprobe.metamers import training as fit

    models, results = {}, {}
    for arch, weight_path, evaluation_path in zip(architectures_used, weights, evaluations):
        evaluation = json.loads(open(evaluation_path).read())
        models[arch] = fit.load_classifier(weight_path, arch, tuple(evaluation["input_shape"]),
                                           len(evaluation["class_names"]), groups=model["groups"],
                                           sizes=model["sizes"])
        results[arch] = evaluation["test"]
    write_csv(outputs.parameters, architectures.parameter_table(models), config=model)
    write_csv(outputs.accuracy, fit.accuracy_table(results), config=model)


class KeywordNetwork:
    """Front end + trained classifier: waveforms -> every metamer layer in one differentiable pass, its
    matched ReLUs read with their true gradient or through a FakeReLU (``relu_gradient``)."""

    framework = "tensorflow"

    def __init__(self, settings: dict, weights_path, evaluation: dict, samples: int):
        from audioprobe.metamers import architectures, frontends
        from audioprobe.metamers import training as fit

        self.frontend = frontends.build_frontend(settings["frontend"])
        shape = self.frontend.output_shape(samples)
        self.classifier = fit.load_classifier(weights_path, settings["arch"], shape, len(evaluation["class_names"]),
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


def load_network(settings: dict, inputs, samples: int, threads: int):
    """The network a metamer rule works on, from its settings and the rule's inputs."""
    if settings["kind"] == "keyword":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(max(1, threads))
        evaluation = json.loads(open(inputs.evaluation).read())
        return KeywordNetwork(settings, inputs.weights, evaluation, samples)
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


# --- synthesis and validation -----------------------------------------------------------------------------------

def synthesise_step(inputs, out_path, *, network: dict, synthesis_settings: dict, targets: dict, threads: int,
                    log: logging.Logger = log) -> None:
    from audioprobe.metamers.synthesis import Settings, synthesise

    data = read_waveforms(inputs.waveforms)
    chosen = choose_targets(data, inputs.split, per_word=targets["per_word"], seed=targets["seed"])
    waves = data["waveforms"][chosen["index"].to_numpy()]
    net = load_network(network, inputs, waves.shape[1], threads)
    log.info("%d target sounds x %d layers (%s) in one batch", len(chosen), len(net.layers), ", ".join(net.layers))
    metamers, curve = synthesise(net.forward, waves, net.layers, Settings(**synthesis_settings), log=log,
                                 framework=net.framework)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("metamers", data=metamers, track_times=False)
        file.create_dataset("loss", data=curve, track_times=False)
        file.create_dataset("targets", data=waves, track_times=False)
        for key in ("clip_id", "word"):
            file.create_dataset(key, data=chosen[key].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("layers", data=np.array(net.layers, dtype=object), dtype=STRING, track_times=False)
        file.attrs["config"] = json.dumps({"network": network, "synthesis": synthesis_settings, "targets": targets},
                                          sort_keys=True, default=str)
        file.attrs["complete"] = True


def read_metamers(path) -> dict:
    with open_h5(path) as file:
        strings = {k: read_strings(file[k]) for k in ("clip_id", "word", "layers")}
        return {"metamers": file["metamers"][()], "loss": file["loss"][()], "targets": file["targets"][()],
                **strings}


def layer_activations(net, waves: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    parts: dict[str, list] = {layer: [] for layer in net.layers}
    for start in range(0, len(waves), batch):
        chunk = np.nan_to_num(waves[start:start + batch])  # diverged metamers are flagged, not propagated
        for layer, value in net.forward(as_tensor(chunk, net.framework)).items():
            parts[layer].append(as_array(value))
    return {layer: np.concatenate(values) for layer, values in parts.items()}


def validate_step(inputs, outputs, *, network: dict, null: dict, net_name: str, threads: int,
                  log: logging.Logger = log) -> None:
    from audioprobe.metamers import validation
    from audioprobe.metamers.plots import plot_metamers

    made = read_metamers(inputs.metamers)
    data = read_waveforms(inputs.waveforms)
    net = load_network(network, inputs, made["targets"].shape[1], threads)
    natural = layer_activations(net, made["targets"])
    natural_prediction = net.predict(made["targets"])
    pool = data["waveforms"][~(data["silent"] | data["clipped"])]
    pool_acts = layer_activations(net, pool[np.random.default_rng(null["seed"]).permutation(len(pool))[:200]])
    rng = np.random.default_rng(null["seed"])
    tables, nulls = [], []
    for index, layer in enumerate(made["layers"]):
        nulled = validation.null_distribution(pool_acts[layer].reshape(len(pool_acts[layer]), -1), null["pairs"], rng)
        limits = validation.thresholds(nulled, null["threshold"])
        nulls.append(nulled.assign(layer=layer))
        metamers = made["metamers"][index]
        acts = layer_activations(net, metamers)[layer]
        acts[~np.isfinite(metamers).all(axis=1)] = np.nan
        table = validation.validate(acts, natural[layer], net.predict(np.nan_to_num(metamers)), natural_prediction,
                                    limits)
        table.insert(0, "clip_id", made["clip_id"])
        table.insert(1, "word", made["word"])
        table.insert(0, "layer", layer)
        table.insert(0, "model", net_name)
        table["final_loss"] = made["loss"][-1, index]
        for measure, value in limits.items():
            table[f"null_{measure}"] = value
        tables.append(table)
        log.info("%s: %d of %d metamers pass", layer, table["passed"].sum(), len(table))
    table = pd.concat(tables, ignore_index=True)
    write_wav_folder(outputs.wavs, made)
    table["wav"] = [f"{layer}/{clip}.wav" if not diverged else "" for layer, clip, diverged in
                    zip(table["layer"], table["clip_id"], table["diverged"])]
    record = {"network": network, "null": null}
    write_csv(outputs.null, pd.concat(nulls, ignore_index=True), config=record)
    plot_metamers(made, net, outputs.figure, title=net_name)
    write_csv(outputs.validation, table, config=record)


def write_wav_folder(folder, made: dict) -> None:
    """The targets (``natural/<clip>.wav``) and every metamer that did not diverge (``<layer>/<clip>.wav``) of
    ``made`` (see :func:`read_metamers`) as a folder that appears whole: built in ``<folder>.part``, then
    renamed onto ``folder``, whose old contents are removed.

    Both folders are checked to be really inside ``results/`` before anything is removed or written, so a
    symbolic link in a shared results folder cannot make the removal delete, or the writes land, outside it."""
    import os
    import shutil

    from audioprobe.io.audio import write_wav

    folder = str(folder)
    tmp_folder = f"{folder}.part"
    for path in (folder, tmp_folder):  # the folders themselves, not only their parent, must stay inside
        check_inside_results(os.path.join(path, "natural"))
    shutil.rmtree(tmp_folder, ignore_errors=True)
    for i, clip in enumerate(made["clip_id"]):
        write_wav(f"{tmp_folder}/natural/{clip}.wav", made["targets"][i], SAMPLE_RATE)
        for index, layer in enumerate(made["layers"]):
            if np.isfinite(made["metamers"][index, i]).all():
                write_wav(f"{tmp_folder}/{layer}/{clip}.wav", _peak_safe(made["metamers"][index, i]), SAMPLE_RATE)
    check_inside_results(os.path.join(folder, "natural"))  # again, just before the removal and the rename
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp_folder, folder)


def _peak_safe(signal: np.ndarray) -> np.ndarray:
    """Metamers are not constrained to [-1, 1]: scale down (never up) so the 16-bit WAV does not clip."""
    peak = np.max(np.abs(signal))
    return signal / peak * 0.99 if peak > 0.99 else signal


def pass_rates_step(validations, out_path) -> None:
    from audioprobe.metamers.validation import pass_rates

    table = pd.concat([read_csv(path) for path in validations], ignore_index=True)
    write_csv(out_path, pass_rates(table), config={"validations": [str(p) for p in validations]})


def listening_package_step(validations, wav_folders, waveforms_path, out_dir, *, settings: dict) -> None:
    from pathlib import Path

    from audioprobe.metamers.listening import build_package

    rows = []
    for validation_path, folder in zip(validations, wav_folders):
        table = read_csv(validation_path)
        for _, row in table.iterrows():
            # a diverged metamer has no WAV: it stays in the design, failed, and the natural clip stands in
            wav = row.wav if isinstance(row.wav, str) and row.wav else f"natural/{row.clip_id}.wav"
            rows.append({"clip_id": row.clip_id, "word": row.word, "model": row.model, "layer": row.layer,
                         "path": str(Path(folder) / wav), "passed": bool(row.passed)})
        for clip, word in table[["clip_id", "word"]].drop_duplicates().itertuples(index=False):
            rows.append({"clip_id": clip, "word": word, "model": "natural", "layer": "natural",
                         "path": str(Path(folder) / "natural" / f"{clip}.wav"), "passed": True})
    stimuli = pd.DataFrame(rows).drop_duplicates(subset=["clip_id", "model", "layer"])
    words = sorted(set(read_waveforms(waveforms_path)["word"]))
    build_package(stimuli, out_dir, participants=settings["participants"], catch_trials=settings["catch_trials"],
                  seed=settings["seed"], words=words, overwrite=True)


def listening_analysis_step(package_dir, responses, outputs, *, architectures_used) -> None:
    from pathlib import Path

    from audioprobe.metamers import analysis

    table = analysis.read_responses(responses, Path(package_dir) / "trials.csv")
    write_csv(outputs.accuracy, analysis.accuracy_table(table), config={"responses": [str(p) for p in responses]})
    comparisons = [analysis.compare_architectures(table, a, b)
                   for i, a in enumerate(architectures_used) for b in architectures_used[i + 1:]]
    write_csv(outputs.comparison, pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame(),
              config={"architectures": list(architectures_used)})
    analysis.confusion_matrices(table, outputs.confusion)
