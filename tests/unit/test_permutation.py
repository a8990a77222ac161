"""The permuted-weights control (models.<name>.permute_weights): each learned tensor's values shuffled, fixed
statistics kept, seeded, and recorded in the checksum; for PyTorch, Keras and YAMNet."""

import numpy as np
import pytest

from audioprobe.models import load
from audioprobe.models.permutation import permuted_all
from tests.conftest import noise_clips, require

torch = require("torch")
tf = require("tensorflow")
keras = require("keras")

from tests.unit.test_torch_module import NET  # noqa: E402


def assert_shuffled(before: np.ndarray, after: np.ndarray) -> None:
    """The same values in the same shape, not in the same places (unless they are all one value, as a bias
    initialised to zeros)."""
    assert after.shape == before.shape
    np.testing.assert_array_equal(np.sort(after, axis=None), np.sort(before, axis=None))
    assert np.unique(before).size == 1 or not np.array_equal(after, before)


def test_permuting_keeps_each_tensors_values_and_is_seeded():
    tensors = [np.arange(12.0).reshape(3, 4), np.arange(5.0)]
    first, again, other = permuted_all(tensors, 3), permuted_all(tensors, 3), permuted_all(tensors, 4)
    for before, after in zip(tensors, first):
        assert_shuffled(before, after)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


NORM_NET = """
class NormNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, 9, stride=4)
        self.norm = torch.nn.BatchNorm1d(4)
        self.act = torch.nn.ReLU()
        self.head = torch.nn.Linear(4, 3)

    def forward(self, waveforms):
        return self.head(self.act(self.norm(self.conv(waveforms[:, None, :]))).mean(dim=2))
"""


@pytest.fixture
def torch_config(tmp_path):
    (tmp_path / "net.py").write_text(NET + NORM_NET)
    namespace = {}
    exec(compile(NET + NORM_NET, "net.py", "exec"), namespace)
    torch.manual_seed(0)
    net = namespace["NormNet"]()
    with torch.no_grad():
        for tensor in (net.norm.weight, net.norm.bias, net.norm.running_mean, net.norm.running_var):
            tensor.copy_(torch.rand(4) + 0.5)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    return {"kind": "torch_module", "module": f"{tmp_path / 'net.py'}:NormNet", "weights": str(tmp_path / "net.pt"),
            "layers": ["act", "head"], "sample_rate": 8000, "min_samples": 64, "scores": "softmax"}


def test_a_permuted_torch_module_shuffles_its_parameters_and_keeps_its_running_statistics(torch_config):
    original = load("net", torch_config, torch_config["weights"])
    control = load("net", {**torch_config, "permute_weights": 7}, torch_config["weights"])
    before = dict(original.module.named_parameters())
    for name, parameter in control.module.named_parameters():
        assert_shuffled(before[name].numpy(), parameter.numpy())
    for name in ("norm.running_mean", "norm.running_var"):
        np.testing.assert_array_equal(control.module.get_buffer(name).numpy(), original.module.get_buffer(name).numpy())
    clips = noise_clips(samples=400)
    assert not np.allclose(control.activations(clips, ["head"])["head"], original.activations(clips, ["head"])["head"])
    again = load("net", {**torch_config, "permute_weights": 7}, torch_config["weights"])
    np.testing.assert_array_equal(again.activations(clips, ["head"])["head"], control.activations(clips, ["head"])["head"])
    assert control.weights_sha256 == original.weights_sha256 + "+permuted:7"


def test_a_permuted_keras_model_shuffles_its_weights_and_keeps_its_moving_statistics(tmp_path):
    keras.utils.set_random_seed(0)
    waveform = keras.Input(shape=(None,), name="waveform")
    x = keras.layers.Conv1D(4, 9, strides=4, name="conv")(keras.layers.Reshape((-1, 1))(waveform))
    x = keras.layers.ReLU(name="act")(keras.layers.BatchNormalization(name="norm")(x))
    model = keras.Model(waveform, keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D()(x)))
    model.get_layer("norm").set_weights([np.random.default_rng(i).uniform(0.5, 1.5, 4) for i in range(4)])
    model.save(tmp_path / "mine.keras")
    config = {"kind": "keras_model", "file": str(tmp_path / "mine.keras"), "layers": ["act", "head"],
              "sample_rate": 8000, "min_samples": 64, "scores": "softmax"}
    original = load("mine", config, config["file"])
    control = load("mine", {**config, "permute_weights": 2}, config["file"])
    for before, after in zip(original.model.weights, control.model.weights):
        name = before.path
        if "moving_" in name:
            np.testing.assert_array_equal(after.numpy(), before.numpy())
        else:
            assert_shuffled(before.numpy(), after.numpy())
    clips = noise_clips(samples=400)
    assert not np.allclose(control.activations(clips, ["head"])["head"], original.activations(clips, ["head"])["head"])
    assert control.weights_sha256.endswith("+permuted:2")


def test_a_permuted_yamnet_shuffles_its_kernels_and_refuses_the_tflite_arithmetic(yamnet_tflite):
    config = {"kind": "yamnet", "weights": str(yamnet_tflite)}
    original = load("yamnet", config, str(yamnet_tflite))
    control = load("yamnet", {**config, "permute_weights": 0}, str(yamnet_tflite))
    for layer_before, layer_after in zip(original._params, control._params):
        for part in layer_before:
            for before, after in zip(layer_before[part], layer_after[part]):
                assert_shuffled(before.numpy(), after.numpy())
    clips = noise_clips(clips=2, samples=15600)
    layers = ["layer1", "layer14"]
    ours, theirs = control.activations(clips, layers), original.activations(clips, layers)
    assert all(not np.allclose(ours[layer], theirs[layer]) for layer in layers)
    assert control.weights_sha256 == original.weights_sha256 + "+permuted:0"
    with pytest.raises(ValueError, match="permute_weights needs numerics: float"):
        load("yamnet", {**config, "numerics": "tflite", "permute_weights": 0}, str(yamnet_tflite))
