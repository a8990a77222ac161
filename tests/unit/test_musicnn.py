"""musicnn (Pons and Serra 2019) rebuilt in TensorFlow 2 from the TF1 checkpoints in musicnn's wheel, checked
against musicnn's own TF1 graph (models.py, run in a subprocess), librosa's front end and its tags."""

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require, shared_path

tf = require("tensorflow")
keras = require("keras")
librosa = require("librosa")

from audioprobe.models import musicnn  # noqa: E402
from audioprobe.models.weights import package_file  # noqa: E402

SR = musicnn.SAMPLE_RATE
GRAPH_CHECKPOINTS = musicnn.CHECKPOINTS  # MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg

# musicnn's own graph, in TF1 mode. models.py is executed by path with its one import of the package,
# ``from musicnn import configuration``, answered by configuration.py (also executed by path), so the package
# itself (whose extractor pins TF1-era code) is never imported. tf.compat.v1.layers needs tf_keras in TF 2.16+,
# hence TF_USE_LEGACY_KERAS=1 in the subprocess' environment.
TF1_GRAPH = textwrap.dedent("""
    import importlib.util, json, sys, types
    import numpy as np
    import tensorflow as tf

    folder, inputs, outputs = sys.argv[1:4]
    def by_path(name, path):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    configuration = by_path("musicnn_configuration", folder + "/configuration.py")
    sys.modules["musicnn"] = types.SimpleNamespace(configuration=configuration)
    models = by_path("musicnn_models", folder + "/models.py")
    del sys.modules["musicnn"]
    tf.compat.v1.disable_eager_execution()
    feeds = dict(np.load(inputs))
    results = {}
    for checkpoint in json.loads(sys.argv[4]):
        tf.compat.v1.reset_default_graph()
        with tf.name_scope("model"):  # as musicnn's extractor builds it
            x = tf.compat.v1.placeholder(tf.float32, [None, 187, configuration.N_MELS])
            is_training = tf.compat.v1.placeholder(tf.bool)
            out = models.define_model(x, is_training, checkpoint, 50)
        names = (["logits", "pool1", "pool2", "pool3", "pool4", "pool5"] if "vgg" in checkpoint else
                 ["logits", "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"])
        with tf.compat.v1.Session() as session:
            tf.compat.v1.train.Saver().restore(session, folder + "/" + checkpoint + "/")
            for feed, patches in feeds.items():
                values = session.run(list(out), {x: patches, is_training: False})
                results.update({checkpoint + "/" + feed + "/" + name: value for name, value in zip(names, values)})
    np.savez(outputs, **results)
""")


def extractor_patches(audio: np.ndarray, float16: bool = True) -> np.ndarray:
    """musicnn's extractor.batch_data on a loaded clip: librosa's mel spectrogram, cast to float16 (as the
    extractor does; ``float16=False`` keeps float32), log10(10000 x + 1), non-overlapping 187-frame patches."""
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=256, n_fft=512, n_mels=96).T
    mel = mel.astype(np.float16 if float16 else np.float32)
    logmel = np.log10(10000 * mel + 1)
    starts = range(0, logmel.shape[0] - 187 + 1, 187)
    return np.stack([logmel[start:start + 187] for start in starts]).astype(np.float32)


def real_clips() -> list[np.ndarray]:
    """Two real recordings at 16 kHz (4.4 s and 5 s, one patch each), loaded as musicnn's extractor loads a
    file (librosa.load); quiet enough that the extractor's float16 mel spectrogram does not overflow."""
    roll = shared_path("data", "materials_roll", "data", "07_12_2017_recordings", "screws_4.wav")
    rain = shared_path("data", "esc10", "ogg", "002 - Rain", "1-17367-A.ogg")
    return [librosa.load(path, sr=SR)[0] for path in (roll, rain)]


def drum_loop(seconds=3.5, bpm=120, seed=0):
    """Kick on 1, snare on 3, closed hi-hat on every eighth note."""
    rng = np.random.default_rng(seed)
    samples, out = int(seconds * SR), np.zeros(int(seconds * SR))
    t = np.arange(int(0.25 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 * t + 100 * (1 - np.exp(-30 * t)) / 30)) * np.exp(-12 * t)
    snare = 0.6 * rng.standard_normal(len(t)) * np.exp(-20 * t)
    hat = 0.2 * np.diff(rng.standard_normal(len(t)), prepend=0) * np.exp(-80 * t)
    for step, start in enumerate(range(0, samples - len(t), int(30 / bpm * SR))):
        out[start:start + len(t)] += hat + (kick if step % 4 == 0 else 0) + (snare if step % 4 == 2 else 0)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def piano_arpeggio(seconds=3.5):
    """A C major arpeggio of decaying harmonic tones (the higher partials dying faster), one note per 0.5 s."""
    samples, out = int(seconds * SR), np.zeros(int(seconds * SR))
    t = np.arange(2 * SR) / SR
    notes = (261.63, 329.63, 392.0, 523.25, 392.0, 329.63)
    for step, start in enumerate(range(0, samples, SR // 2)):
        hz = notes[step % len(notes)]
        note = sum(np.sin(2 * np.pi * hz * k * t) * np.exp(-(1.5 + k) * t) / k ** 1.5 for k in range(1, 9))
        end = min(samples, start + len(t))
        out[start:end] += note[:end - start]
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def adapters():
    return {checkpoint: musicnn.build("musicnn", {"kind": "musicnn", "checkpoint": checkpoint}, None)
            for checkpoint in musicnn.CHECKPOINTS}


@pytest.fixture(scope="module")
def tf1_graph(tmp_path_factory):
    """musicnn's own graph on the same patches: the extractor's (float16 log-mel) patches of two real
    clips, and their float32 patches (the front end this module computes)."""
    folder = tmp_path_factory.mktemp("musicnn_tf1")
    clips = real_clips()
    feeds = {"float16": np.concatenate([extractor_patches(clip) for clip in clips]),
             "float32": np.concatenate([extractor_patches(clip, float16=False) for clip in clips])}
    np.savez(folder / "inputs.npz", **feeds)
    package = os.path.dirname(package_file("musicnn", "models.py", "test"))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", TF1_GRAPH, package, str(folder / "inputs.npz"),
                          str(folder / "outputs.npz"), json.dumps(GRAPH_CHECKPOINTS)],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, f"musicnn's TF1 graph failed:\n{run.stderr[-3000:]}"
    return clips, feeds, dict(np.load(folder / "outputs.npz"))


def reference_layers(reference: dict, checkpoint: str, feed: str) -> dict[str, np.ndarray]:
    """musicnn's features under this module's layer names ([items, *layer output])."""
    def get(name):
        return reference[f"{checkpoint}/{feed}/{name}"]

    if checkpoint.endswith("vgg"):
        layers = {f"pool{i}": get(f"pool{i}") for i in range(1, 6)}
        layers["embedding"] = layers["pool5"].reshape(len(layers["pool5"]), -1)  # the taggram's input
    else:
        layers = {"frontend": np.concatenate([get("timbral"), get("temporal")], axis=-1),
                  **{f"cnn{i}": get(f"cnn{i}")[..., 0] for i in (1, 2, 3)},  # [items, 187, 64, 1]
                  "pool": np.stack([get("max_pool"), get("mean_pool")], axis=-1).reshape(len(get("logits")), -1),
                  "penultimate": get("penultimate")}
        layers["embedding"] = layers["penultimate"]
    layers["taggram"] = get("logits")
    layers["scores"] = 1 / (1 + np.exp(-get("logits").astype(np.float64)))
    return layers


@pytest.mark.parametrize("checkpoint", GRAPH_CHECKPOINTS)
def test_the_network_equals_musicnns_own_tf1_graph_on_the_same_patches(checkpoint, adapters, tf1_graph):
    _, feeds, reference = tf1_graph
    expected = reference_layers(reference, checkpoint, "float16")
    model = adapters[checkpoint].model
    names = musicnn.LAYERS[checkpoint.split("_")[1]]
    ours = keras.Model(model.input, {name: model.get_layer(name).output for name in names})(feeds["float16"])
    differences, relative = {}, {}
    for name in names:
        assert ours[name].shape == expected[name].shape, name
        differences[name] = float(np.abs(np.asarray(ours[name]) - expected[name]).max())
        relative[name] = differences[name] / float(np.abs(expected[name]).max())
    scores = tf.sigmoid(ours["taggram"]).numpy()
    differences["scores"] = float(np.abs(scores - expected["scores"]).max())
    message = f"largest differences {differences}, relative to the layer's largest value {relative}"
    print(checkpoint, message)
    assert differences["scores"] <= 1e-6, message
    assert differences[names[-2]] <= 1e-5, message  # the penultimate layer (vgg: pool5)
    assert max(relative.values()) <= 5e-6, message  # the wide layers' values reach 10-65


@pytest.mark.parametrize("checkpoint", GRAPH_CHECKPOINTS)
def test_the_adapter_on_waveforms_equals_musicnn_on_librosas_float32_patches(checkpoint, adapters, tf1_graph):
    """End to end: the TensorFlow front end and the network on the waveforms, against musicnn's graph on
    librosa's log-mel patches (float32, see the module's docstring)."""
    clips, _, reference = tf1_graph
    expected = reference_layers(reference, checkpoint, "float32")
    adapter = adapters[checkpoint]
    hidden = "penultimate" if checkpoint.endswith("musicnn") else "pool5"
    acts = [adapter.activations(clip[None], [hidden, "taggram"]) for clip in clips]  # they differ in length
    scores = np.concatenate([tf.sigmoid(act["taggram"][0, :, 0, 0]).numpy() for act in acts])
    layer = np.concatenate([act[hidden][0] for act in acts])  # [patches, time, freq, channel]
    scores_difference = np.abs(scores - expected["scores"]).max()
    layer_difference = np.abs(layer.reshape(expected[hidden].shape) - expected[hidden]).max()
    print(checkpoint, "scores", scores_difference, hidden, layer_difference)
    assert scores.shape == expected["scores"].shape
    assert scores_difference <= 1e-5
    assert layer_difference <= 1e-4 * max(1.0, np.abs(expected[hidden]).max())


def test_the_front_end_equals_librosas_on_a_real_clip():
    audio = real_clips()[0]
    expected = np.log10(10000 * librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=256, n_fft=512,
                                                               n_mels=96).T + 1)
    ours = musicnn.log_mel(audio[None]).numpy()[0]
    assert ours.shape == expected.shape == (1 + len(audio) // 256, 96)
    difference = np.abs(ours - expected).max() / np.ptp(expected)
    assert difference < 1e-5, f"largest difference {difference:.2e} of the log-mel's range"
    assert np.array_equal(musicnn.mel_filters(), librosa.filters.mel(sr=SR, n_fft=512, n_mels=96))
    patches = musicnn.log_mel_patches(audio[None]).numpy()
    np.testing.assert_allclose(patches, extractor_patches(audio, float16=False), atol=1e-5 * np.ptp(expected))


def test_loud_audio_overflows_musicnns_float16_log_mel_but_not_this_one():
    """The stated deviation: musicnn's extractor takes the log of a float16 mel spectrogram, where
    10000 x overflows to inf above x = 6.55, as on this dog bark (peak 0.98); here it stays finite."""
    bark = librosa.load(shared_path("data", "esc10", "ogg", "001 - Dog bark", "1-100032-A.ogg"), sr=SR)[0]
    with np.errstate(over="ignore"):
        upstream = extractor_patches(bark)
    ours = musicnn.log_mel_patches(bark[None]).numpy()
    assert np.isinf(upstream).any()
    assert np.isfinite(ours).all()
    finite = np.isfinite(upstream)
    assert np.abs(ours[finite] - upstream[finite]).max() <= 2e-3 * np.abs(upstream[finite]).max()  # float16


def test_the_front_end_is_differentiable(adapters):
    forward = adapters["MTT_musicnn"].differentiable(["taggram"])
    waveform = tf.Variable(drum_loop(2.0)[None])  # shorter than a patch: the front end pads it
    with tf.GradientTape() as tape:
        logits = forward(waveform)["taggram"]
        score = tf.reduce_sum(tf.sigmoid(logits)[..., musicnn.MTT_TAGS.index("drums")])
    gradient = tape.gradient(score, waveform).numpy()
    assert logits.shape == (1, 1, 1, 1, 50)
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 0


@pytest.mark.parametrize("checkpoint", ["MTT_musicnn", "MTT_vgg"])
@pytest.mark.parametrize("seconds", [4.0, 1.5, 6.5])  # one patch (the rest dropped), padded to one, two
def test_static_layer_shapes_are_the_loaded_networks(checkpoint, seconds, adapters):
    config = {"kind": "musicnn", "checkpoint": checkpoint}
    adapter = adapters[checkpoint]
    waveform = drum_loop(seconds)[None]
    acts = adapter.activations(waveform, musicnn.layer_names(config))
    for layer in musicnn.layer_names(config):
        assert musicnn.layer_shape(config, layer, waveform.shape[1]) == acts[layer].shape[1:], layer
    assert acts["taggram"].shape[1] == {4.0: 1, 1.5: 1, 6.5: 2}[seconds]
    assert musicnn.patches_of(musicnn.MIN_SAMPLES) == 1 and musicnn.patches_of(musicnn.MIN_SAMPLES - 1) == 1
    assert musicnn.frames_of(musicnn.MIN_SAMPLES) == musicnn.PATCH_FRAMES == 187


def test_each_clips_patches_are_its_own_in_order(adapters):
    """A batch of two 7-s clips: item (clip, patch) is the network on that clip's frames 187 p ... 187 p + 186."""
    adapter = adapters["MTT_musicnn"]
    drums, piano = drum_loop(3.5), piano_arpeggio(3.5)
    waveforms = np.stack([np.concatenate([drums, piano]), np.concatenate([piano, drums])])
    acts = adapter.activations(waveforms, ["taggram"])["taggram"][:, :, 0, 0]
    spectrogram = musicnn.log_mel(waveforms).numpy()
    assert acts.shape == (2, 2, 50)
    for clip in range(2):
        for patch in range(2):
            expected = adapter.model(spectrogram[clip, 187 * patch: 187 * (patch + 1)][None]).numpy()[0]
            assert np.abs(acts[clip, patch] - expected).max() <= 1e-5
    drum_tag = musicnn.MTT_TAGS.index("drums")
    assert acts[0, 0, drum_tag] > acts[0, 1, drum_tag] and acts[1, 1, drum_tag] > acts[1, 0, drum_tag]


@pytest.mark.parametrize("checkpoint", ["MTT_musicnn", "MTT_vgg"])
def test_forward_from_a_cut_reproduces_the_taggram(checkpoint, adapters):
    adapter = adapters[checkpoint]
    waveforms = np.stack([drum_loop(4.0), piano_arpeggio(4.0)])
    cut = "penultimate" if checkpoint.endswith("musicnn") else "pool3"
    acts = adapter.activations(waveforms, [cut, "taggram"])
    full = adapter.forward_from("taggram", acts["taggram"])
    continued = adapter.forward_from(cut, acts[cut])
    assert np.abs(continued["scores"] - full["scores"]).max() <= 1e-6
    assert np.abs(continued["logits"][:, :, None, None] - acts["taggram"]).max() <= 1e-5
    if checkpoint.endswith("musicnn"):
        np.testing.assert_allclose(continued["embedding"], acts["penultimate"][:, :, 0, 0], atol=1e-6)


def test_a_mid_end_layer_read_again_by_the_back_end_cannot_be_continued_from(adapters):
    adapter = adapters["MTT_musicnn"]
    waveform = drum_loop(3.0)[None]
    acts = adapter.activations(waveform, ["frontend", "cnn2", "taggram"])
    continued = adapter.forward_from("frontend", acts["frontend"])  # every path passes the front end
    assert np.abs(continued["logits"][:, :, None, None] - acts["taggram"]).max() <= 1e-4
    with pytest.raises(ValueError, match="cannot be continued from 'cnn2'.*skip connection"):
        adapter.forward_from("cnn2", acts["cnn2"])


@pytest.mark.parametrize("checkpoint", ["MTT_musicnn", "MTT_vgg"])
def test_a_drum_loop_and_a_piano_arpeggio_get_their_tags(checkpoint, adapters):
    adapter = adapters[checkpoint]
    tags = musicnn.class_names({"checkpoint": checkpoint})
    waveforms = np.stack([drum_loop(), piano_arpeggio()])
    scores = adapter.forward_from("taggram", adapter.activations(waveforms, ["taggram"])["taggram"])["scores"][:, 0]
    top = [[tags[i] for i in np.argsort(-clip)[:5]] for clip in scores]
    message = f"top tags: drums {top[0]}, piano {top[1]}"
    assert {"drums", "beat", "beats", "techno"} & set(top[0][:3]), message
    assert "piano" in top[1], message
    drums, piano = tags.index("drums"), tags.index("piano")
    assert scores[0, drums] > 2 * scores[1, drums] and scores[1, piano] > 2 * scores[0, piano], message


def test_the_tags_are_musicnns():
    source = ast.parse(Path(package_file("musicnn", "configuration.py", "test")).read_text())
    lists = {node.targets[0].id: ast.literal_eval(node.value) for node in source.body
             if isinstance(node, ast.Assign) and node.targets[0].id.endswith("_LABELS")}
    assert musicnn.class_names({"checkpoint": "MTT_vgg"}) == lists["MTT_LABELS"]
    assert musicnn.class_names({"checkpoint": "MSD_musicnn"}) == lists["MSD_LABELS"]
    assert len(set(musicnn.MTT_TAGS)) == len(set(musicnn.MSD_TAGS)) == 50


def test_the_checkpoint_setting_is_checked(tmp_path):
    from audioprobe.io.download import WeightsChanged

    assert musicnn.weights_problem("tagger", {"kind": "musicnn", "checkpoint": "MSD_vgg"}) is None
    problem = musicnn.weights_problem("tagger", {"kind": "musicnn", "checkpoint": "MSD_musicnn_big"})
    assert "models.tagger.checkpoint" in problem and "MTT_musicnn" in problem
    assert musicnn.checkpoint_prefix("tagger", {"checkpoint": "MTT_vgg"}).endswith("/musicnn/MTT_vgg/")
    for suffix in musicnn.CHECKPOINT_FILES:
        (tmp_path / suffix).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsChanged, match="Reinstall musicnn"):
        musicnn.build("tagger", {"kind": "musicnn", "checkpoint": "MTT_vgg"}, str(tmp_path / ".index"))
