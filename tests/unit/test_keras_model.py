"""The generic Keras family (kind: keras_model): a user's functional model saved as a .keras file."""

import numpy as np
import pytest

from tests.conftest import noise_clips as waveforms
from tests.conftest import assert_head_continuation_is_the_graphs, require

tf = require("tensorflow")
keras = require("keras")

from audioprobe.models import load, registry  # noqa: E402


def tiny_model(skip: bool = False):
    keras.utils.set_random_seed(0)
    waveform = keras.Input(shape=(None,), name="waveform")
    x = keras.layers.Reshape((-1, 1))(waveform)
    first = keras.layers.ReLU(name="act1")(keras.layers.Conv1D(4, 9, strides=4, name="conv1")(x))
    second = keras.layers.ReLU(name="act2")(keras.layers.Conv1D(6, 5, strides=2, name="conv2")(first))
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(second)
    if skip:
        pooled = keras.layers.Add(name="skip")([pooled, keras.layers.GlobalAveragePooling1D()(
            keras.layers.Dense(6)(first))])
    logits = keras.layers.Dense(3, name="head")(pooled)
    return keras.Model(waveform, logits)


@pytest.fixture
def saved_model(tmp_path):
    model = tiny_model()
    model.save(tmp_path / "mine.keras")
    config = {"kind": "keras_model", "file": str(tmp_path / "mine.keras"), "layers": ["act1", "act2", "head"],
              "sample_rate": 8000, "min_samples": 64, "scores": "softmax"}
    return model, config


def test_activations_and_forward_from_any_layer_give_the_models_own_numbers(saved_model):
    model, config = saved_model
    adapter = load("mine", config, config["file"])
    x = waveforms()
    acts = adapter.activations(x, ["act1", "act2", "head"])
    act1 = keras.Model(model.input, model.get_layer("act1").output)(x).numpy()
    logits = model(x).numpy()
    assert acts["act1"].shape == (3, 1, act1.shape[1], 1, 4)  # [items, time, channel] -> canonical axes
    np.testing.assert_allclose(acts["act1"][:, 0, :, 0, :], act1, atol=1e-6)
    np.testing.assert_allclose(acts["head"][:, 0, 0, 0], logits, atol=1e-5)
    for layer in ("act1", "act2"):
        out = adapter.forward_from(layer, acts[layer])
        np.testing.assert_allclose(out["logits"][:, 0], logits, atol=1e-5)
        np.testing.assert_allclose(out["scores"][:, 0], tf.nn.softmax(logits).numpy(), atol=1e-6)
        assert out["embedding"].shape == (3, 1, 6)
    assert adapter.layer_shape("act2", 800) == acts["act2"].shape[1:]


def test_continuing_from_the_head_is_its_logits_masked_as_the_graph_masks_them(saved_model):
    _, config = saved_model
    adapter = load("mine", config, config["file"])
    assert adapter.head_layer == "head"
    assert_head_continuation_is_the_graphs(adapter, np.array([1, 0, 1], np.float32))


def test_a_channel_mask_equals_removing_the_channels_filter(saved_model):
    model, config = saved_model
    adapter = load("mine", config, config["file"])
    x = waveforms()
    mask = np.ones(6, np.float32)
    mask[[0, 5]] = 0
    masked = adapter.forward_from("act1", adapter.activations(x, ["act1"])["act1"], {"act2": mask})["logits"]
    kernel, bias = model.get_layer("conv2").get_weights()
    kernel[..., [0, 5]] = 0
    bias[[0, 5]] = 0
    model.get_layer("conv2").set_weights([kernel, bias])
    np.testing.assert_allclose(masked[:, 0], model(x).numpy(), atol=1e-5)


def test_a_layer_that_a_skip_connection_bypasses_is_refused(tmp_path):
    tiny_model(skip=True).save(tmp_path / "skip.keras")
    config = {"kind": "keras_model", "file": str(tmp_path / "skip.keras"), "layers": ["act1", "act2", "head"],
              "sample_rate": 8000, "min_samples": 64}
    adapter = load("mine", config, config["file"])
    x = waveforms()
    adapter.forward_from("act1", adapter.activations(x, ["act1"])["act1"])  # every path passes act1
    with pytest.raises(ValueError, match="cannot be continued from 'act2'.*skip connection"):
        adapter.forward_from("act2", adapter.activations(x, ["act2"])["act2"])


def test_gradients_flow_through_the_differentiable_forward(saved_model):
    _, config = saved_model
    adapter = load("mine", config, config["file"])
    x = tf.constant(waveforms(clips=1))
    grads = {}
    for mode in ("true", "fake"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(adapter.differentiable(["act1"], relu_gradient=mode)(x)["act1"])
        grads[mode] = tape.gradient(total, x).numpy()
        assert np.abs(grads[mode]).sum() > 0
    assert not np.allclose(grads["true"], grads["fake"])  # the FakeReLU passes gradient where units are off


def test_the_registry_checks_the_file_before_any_job(saved_model, tmp_path):
    _, config = saved_model
    spec = registry.spec_of("keras_model")
    assert spec.framework == "tensorflow" and spec.weights_problem("mine", config) is None
    problem = spec.weights_problem("mine", {**config, "file": str(tmp_path / "missing.keras")})
    assert "models.mine.file" in problem and "does not exist" in problem
