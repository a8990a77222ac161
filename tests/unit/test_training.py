"""Training the Study 2 classifiers on a small synthetic task; seeding, early stopping, saving, loading."""

import logging
import re

import numpy as np
import pytest

from tests.conftest import require

tf = require("tensorflow")

from audioprobe.metamers import architectures as A  # noqa: E402
from audioprobe.metamers import training as T  # noqa: E402

SHAPE = (64, 100)
NAMES = ["low_slow", "high_slow", "low_fast"]
SETTINGS = dict(batch_size=32, learning_rate=1e-3, patience=2)
EPOCHS = 4


def synthetic(n, seed):
    """Three classes of [freq, time] patterns: a band (centre jittered by +-3 rows) at low or high
    frequency, amplitude-modulated slowly (period 50 frames) or fast (period 12), in Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    rng.shuffle(y)
    rows, frames = np.arange(SHAPE[0])[:, None], np.arange(SHAPE[1])[None, :]
    x = np.empty((n, *SHAPE), np.float32)
    for i, label in enumerate(y):
        centre = (46 if label == 1 else 14) + rng.integers(-3, 4)
        period = 12 if label == 2 else 50
        band = np.exp(-0.5 * ((rows - centre) / 3.0) ** 2)
        modulation = 0.5 + 0.5 * np.sin(2 * np.pi * frames / period + rng.uniform(0, 2 * np.pi))
        x[i] = band * modulation + 0.3 * rng.standard_normal(SHAPE)
    return x, y.astype(np.int64)


@pytest.fixture(scope="module")
def data():
    return {"train": synthetic(240, 0), "val": synthetic(90, 1), "test": synthetic(90, 2)}


@pytest.fixture(scope="module")
def trained(data):
    """Each architecture trained once (shared by the tests below)."""
    x, y = data["train"]
    out = {}
    for arch in A.ARCHS:
        model = A.build_classifier(arch, SHAPE, 3, seed=0, normalization_data=x)
        out[arch] = T.train_classifier(model, x, y, *data["val"], epochs=EPOCHS, seed=0, **SETTINGS)
    return out


@pytest.mark.parametrize("arch", A.ARCHS)
def test_every_architecture_learns(trained, data, arch):
    model, history = trained[arch]
    assert list(history.columns[:5]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert list(history["epoch"]) == list(range(1, len(history) + 1))
    assert history["val_accuracy"].max() > 0.8  # chance is 1/3
    result = T.evaluate(model, *data["test"], NAMES)
    assert result["n"] == 90 and result["accuracy"] > 0.8
    assert sum(result["per_class_n"].values()) == 90
    assert np.trace(np.array(result["confusion"])) == round(result["accuracy"] * 90)


def test_accuracy_table(trained, data):
    results = {arch: T.evaluate(model, *data["test"], NAMES) for arch, (model, _) in trained.items()}
    table = T.accuracy_table(results)
    assert len(table) == len(A.ARCHS) * (len(NAMES) + 1)
    overall = table[table["class"] == "all"].set_index("model")["accuracy"]
    assert overall.to_dict() == {arch: results[arch]["accuracy"] for arch in A.ARCHS}


def test_same_seed_same_history_and_weights(trained, data, caplog):
    """Built and trained again with the fixture's seed: identical history and weights; another seed differs."""
    columns = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    first, history = trained["fc_frequency"]
    runs = []
    for seed in (0, 1):
        model = A.build_classifier("fc_frequency", SHAPE, 3, seed=seed, normalization_data=data["train"][0])
        with caplog.at_level(logging.INFO, logger="audioprobe.metamers.training"):
            runs.append(T.train_classifier(model, *data["train"], *data["val"], epochs=EPOCHS if seed == 0 else 1,
                                           seed=seed, **SETTINGS))
    (again, history_again), (_, other) = runs
    assert history[columns].equals(history_again[columns])
    for wa, wb in zip(first.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not history[columns].head(1).equals(other[columns])
    messages = [record.getMessage() for record in caplog.records]
    assert sum(re.search(r" epoch \d+/\d+: loss ", m) is not None for m in messages) == EPOCHS + 1  # per epoch
    assert sum("best epoch" in m for m in messages) == 2


def test_early_stopping_restores_best_epoch(data):
    """Unlearnable validation labels: val_loss soon rises, training stops, and the weights returned are
    those of the epoch with the lowest val_loss."""
    x, y = data["train"]
    x_val, _ = data["val"]
    y_val = np.random.default_rng(3).integers(0, 3, len(x_val))
    model = A.build_classifier("fc_frequency", SHAPE, 3, seed=0, normalization_data=x)
    lines = []
    model, history = T.train_classifier(model, x, y, x_val, y_val, epochs=12, batch_size=32, learning_rate=3e-3,
                                        patience=1, seed=0, log=lines.append)
    best = history.attrs["best_epoch"]
    assert history.attrs["stopped_early"] and len(history) < 12
    assert best == history["epoch"][history["val_loss"].idxmin()] and best < len(history)
    logits = T.predict_logits(model, x_val)
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y_val, logits).numpy()
    assert loss == pytest.approx(history["val_loss"][best - 1], rel=1e-4)
    assert len(lines) == len(history) + 1 and lines[0].startswith("fc_frequency epoch 1/12: loss")


@pytest.mark.parametrize("arch", A.ARCHS)
def test_save_and_load_give_identical_logits(trained, data, tmp_path, arch):
    model = trained[arch][0]
    path = T.save_weights(model, tmp_path / "weights" / f"{arch}.weights.h5")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind
    assert T.saved_description(path) == {"arch": arch, "input_shape": list(SHAPE), "n_classes": 3,
                                         "params": model.count_params()}
    loaded = T.load_classifier(path, arch, SHAPE, 3)  # no normalization data: the statistics are in the file
    x = data["test"][0]
    np.testing.assert_array_equal(T.predict_logits(loaded, x), T.predict_logits(model, x))
    np.testing.assert_array_equal(loaded.get_layer("normalize").get_weights()[0],
                                  model.get_layer("normalize").get_weights()[0])


def test_load_refuses_other_models(trained, tmp_path):
    path = T.save_weights(trained["conv2d"][0], tmp_path / "conv2d.weights.h5")
    with pytest.raises(ValueError, match="arch"):
        T.load_classifier(path, "local_frequency", SHAPE, 3)
    with pytest.raises(ValueError, match="params"):
        T.load_classifier(path, "conv2d", SHAPE, 3, width=16)
    with pytest.raises(ValueError, match="n_classes"):
        T.load_classifier(path, "conv2d", SHAPE, 8)
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        T.save_weights(trained["conv2d"][0], tmp_path / "conv2d.h5")


def test_keyword_networks_never_early_stop_on_test_clips():
    from audioprobe.metamers.keyword_models import validation_mask

    masks = {"train": np.array([True, True, False, False]), "val": np.array([False, False, True, False]),
             "test": np.array([False, False, False, True])}
    np.testing.assert_array_equal(validation_mask(masks), masks["val"])
    with pytest.raises(ValueError, match="metamers.split.val_fraction"):
        validation_mask({**masks, "val": np.zeros(4, bool)})


def keyword_set(folder, speakers=8, per_word=6):
    """Two "words" (a 0.3-s tone burst near 400 Hz or near 2.4 kHz at a random time in one second of noise),
    spoken by eight "voices" that shift every frequency by 0.8 to 1.2; waveforms.h5 and split.csv as the
    workflow writes them, split by voice: s0-s4 train, s5 validation, s6 and s7 (the highest voices, outside
    the training range) test."""
    import h5py
    import pandas as pd

    from audioprobe.io.store import STRING

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    waves, clip_id, word, group = [], [], [], []
    for speaker in range(speakers):
        shift = 0.8 + 0.4 * speaker / (speakers - 1)
        for name, frequency in (("low", 400.0), ("high", 2400.0)):
            for index in range(per_word):
                start = rng.uniform(0.1, 0.6)
                burst = ((t > start) & (t < start + 0.3)) * np.sin(2 * np.pi * frequency * shift * t + rng.uniform(0, 6.3))
                x = burst + 0.3 * rng.standard_normal(t.size)
                waves.append((0.1 * x / np.abs(x).max()).astype(np.float32))
                clip_id.append(f"{name}_s{speaker}_{index}")
                word.append(name)
                group.append(f"s{speaker}")
    with h5py.File(folder / "waveforms.h5", "w") as file:
        file.create_dataset("waveforms", data=np.stack(waves))
        for key, values in (("clip_id", clip_id), ("word", word), ("group", group)):
            file.create_dataset(key, data=np.array(values, dtype=object), dtype=STRING)
        file.create_dataset("silent", data=np.zeros(len(clip_id), bool))
        file.create_dataset("clipped", data=np.zeros(len(clip_id), bool))
        file.attrs["complete"] = True
    split = {"s5": "val", "s6": "test", "s7": "test"}
    pd.DataFrame({"clip_id": clip_id, "group": group, "split": [split.get(g, "train") for g in group]}).to_csv(
        folder / "split.csv", index=False)
    return np.stack(waves), np.array(word), np.array(group)


def test_a_keyword_network_recognises_held_out_voices(tmp_path, monkeypatch):
    """The training step as the workflow runs it (front end, conv2d, early stopping on the validation voice)
    on a task a few epochs learn: accuracy on the two held-out voices is far above chance (1/2), on exactly
    the 24 test clips (not the 60 training or 12 validation ones), and the saved network, loaded as
    synthesis loads it, names the right word for every test clip. The tiny workflow run cannot show this:
    3 epochs on 10 training clips stay at chance (tests/test_study2.py)."""
    import json

    from audioprobe.metamers.keyword_models import train_keyword_model_step
    from audioprobe.metamers.networks import load_network

    waves, word, group = keyword_set(tmp_path)
    # each workflow job sets its thread count in a fresh process; here TensorFlow is already running
    monkeypatch.setattr(tf.config.threading, "set_intra_op_parallelism_threads", lambda threads: None)
    model = {"arch": "conv2d", "frontend": {"kind": "cochleagram", "n": 10, "sample_factor": 1, "kernel_taps": 161},
             "groups": 8, "sizes": "seed"}
    training = {"epochs": 5, "batch_size": 8, "learning_rate": 1e-3, "patience": 6, "seed": 0}
    weights, evaluation_json = tmp_path / "conv2d.weights.h5", tmp_path / "evaluation.json"
    train_keyword_model_step(waveforms_path=tmp_path / "waveforms.h5", split_path=tmp_path / "split.csv",
                             weights_h5=weights, history_csv=tmp_path / "history.csv", evaluation_json=evaluation_json,
                             model=model, training=training, threads=1)
    evaluation = json.loads(evaluation_json.read_text())
    test = evaluation["test"]
    assert test["n"] == 24 and test["per_class_n"] == {"high": 12, "low": 12}
    assert test["accuracy"] >= 0.9  # chance is 0.5; 22 of 24 right has a Wilson lower bound of 0.74
    assert min(test["per_class"].values()) >= 0.75
    held_out = np.isin(group, ["s6", "s7"])
    net = load_network({**model, "kind": "keyword"}, 16000, 1, weights_path=weights,
                       evaluation_path=evaluation_json)
    predicted = np.array(evaluation["class_names"])[net.predict(waves[held_out])]
    assert np.mean(predicted == word[held_out]) == test["accuracy"]
