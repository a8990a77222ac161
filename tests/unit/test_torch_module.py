"""The generic PyTorch family (kind: torch_module): a user's module saved as a state dict, through hooks."""

import textwrap

import numpy as np
import pytest

from tests.conftest import noise_clips as waveforms
from tests.conftest import assert_head_continuation_is_the_graphs, require

torch = require("torch")

from audioprobe.models import load, registry  # noqa: E402
from audioprobe.models.torch_module import Framing, from_canonical, to_canonical  # noqa: E402

NET = textwrap.dedent("""
    import torch


    class TinyNet(torch.nn.Module):
        def __init__(self, classes=3, width=4):
            super().__init__()
            self.conv1 = torch.nn.Conv1d(1, width, 9, stride=4)
            self.act1 = torch.nn.ReLU()
            self.conv2 = torch.nn.Conv1d(width, 6, 5, stride=2)
            self.act2 = torch.nn.ReLU()
            self.head = torch.nn.Linear(6, classes)

        def forward(self, waveforms):
            x = self.act2(self.conv2(self.act1(self.conv1(waveforms[:, None, :]))))
            return self.head(x.mean(dim=2))


    class SkipNet(TinyNet):
        def forward(self, waveforms):
            first = self.act1(self.conv1(waveforms[:, None, :]))
            x = self.act2(self.conv2(first))
            return self.head(x.mean(dim=2) + first.mean(dim=(1, 2))[:, None])
    """)


@pytest.fixture
def saved_net(tmp_path):
    """A module file and its saved state dict, as a user would bring them."""
    (tmp_path / "net.py").write_text(NET)
    torch.manual_seed(0)
    namespace = {}
    exec(compile(NET, "net.py", "exec"), namespace)
    net = namespace["TinyNet"](classes=3)
    torch.save(net.state_dict(), tmp_path / "net.pt")
    config = {"kind": "torch_module", "module": f"{tmp_path / 'net.py'}:TinyNet", "arguments": {"classes": 3},
              "weights": str(tmp_path / "net.pt"), "layers": ["act1", "act2", "head"], "sample_rate": 8000,
              "min_samples": 64, "scores": "softmax"}
    return net, config


def test_activations_are_the_modules_own_outputs_in_canonical_axes(saved_net):
    net, config = saved_net
    adapter = load("mine", config, config["weights"])
    x = waveforms()
    acts = adapter.activations(x, ["act1", "act2", "head"])
    with torch.no_grad():
        act1 = net.act1(net.conv1(torch.as_tensor(x)[:, None, :]))
        logits = net(torch.as_tensor(x))
    # Conv1d's [items, channel, time] becomes [clips, patch, time, freq, channel]
    assert acts["act1"].shape == (3, 1, act1.shape[2], 1, 4)
    np.testing.assert_allclose(acts["act1"][:, 0, :, 0, :], act1.numpy().transpose(0, 2, 1), atol=1e-6)
    np.testing.assert_allclose(acts["head"][:, 0, 0, 0, :], logits.numpy(), atol=1e-6)
    assert adapter.layer_shape("act2", 800) == acts["act2"].shape[1:]
    assert len(adapter.weights_sha256) == 64


def test_a_clip_shorter_than_the_minimum_is_zero_padded_at_its_end(saved_net):
    net, config = saved_net
    adapter = load("mine", config, config["weights"])
    short = waveforms(samples=40)
    padded = np.pad(short, ((0, 0), (0, config["min_samples"] - 40)))
    np.testing.assert_array_equal(adapter.activations(short, ["head"])["head"],
                                  adapter.activations(padded, ["head"])["head"])
    with torch.no_grad():
        logits = net(torch.as_tensor(padded))
    np.testing.assert_allclose(adapter.activations(short, ["head"])["head"][:, 0, 0, 0], logits.numpy(), atol=1e-6)


def test_forward_from_any_layer_gives_the_modules_logits(saved_net):
    net, config = saved_net
    adapter = load("mine", config, config["weights"])
    x = waveforms()
    with torch.no_grad():
        logits = net(torch.as_tensor(x)).numpy()
    for layer in ("act1", "act2"):
        out = adapter.forward_from(layer, adapter.activations(x, [layer])[layer])
        np.testing.assert_allclose(out["logits"][:, 0], logits, atol=1e-5)
        np.testing.assert_allclose(out["scores"][:, 0], torch.softmax(torch.as_tensor(logits), -1).numpy(),
                                   atol=1e-6)
        assert out["embedding"].shape == (3, 1, 6)


def test_continuing_from_the_head_is_its_logits_masked_as_the_graph_masks_them(saved_net):
    _, config = saved_net
    adapter = load("mine", config, config["weights"])
    assert adapter.head_layer == "head"
    assert_head_continuation_is_the_graphs(adapter, np.array([0, 1, 1], np.float32))


def test_a_channel_mask_equals_removing_the_channels_filter(saved_net):
    net, config = saved_net
    adapter = load("mine", config, config["weights"])
    x = waveforms()
    mask = np.ones(6, np.float32)
    mask[[1, 4]] = 0
    masked = adapter.forward_from("act1", adapter.activations(x, ["act1"])["act1"], {"act2": mask})["logits"]
    with torch.no_grad():
        net.conv2.weight[[1, 4]] = 0
        net.conv2.bias[[1, 4]] = 0
        expected = net(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(masked[:, 0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="cannot mask act1 when continuing from the later layer act2"):
        adapter.forward_from("act2", adapter.activations(x, ["act2"])["act2"], {"act1": np.ones(4)})


def test_a_layer_that_a_skip_connection_bypasses_is_refused(saved_net, tmp_path):
    net, config = saved_net
    config = {**config, "module": f"{tmp_path / 'net.py'}:SkipNet"}
    adapter = load("mine", config, config["weights"])
    x = waveforms()
    with pytest.raises(ValueError, match="cannot be continued from 'act2'.*skip connection"):
        adapter.forward_from("act2", adapter.activations(x, ["act2"])["act2"])


def test_gradients_flow_and_a_fake_relu_passes_them_where_the_unit_is_off(saved_net):
    _, config = saved_net
    adapter = load("mine", config, config["weights"])
    for mode, off_gradient in (("true", False), ("fake", True)):
        x = torch.as_tensor(waveforms(clips=1), dtype=torch.float32).requires_grad_(True)
        act1 = adapter.differentiable(["act1"], relu_gradient=mode)(x)["act1"]
        act1.sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0
        # with a fake ReLU every unit passes gradient, so the input gradient is the conv's, summed over all units
        grad_all = x.grad.clone()
        x.grad = None
        pre = adapter.module.conv1(x[:, None, :])
        pre.sum().backward()
        assert np.allclose(grad_all.numpy(), x.grad.numpy(), atol=1e-5) == off_gradient


def test_a_state_dict_that_does_not_fit_is_named(saved_net, tmp_path):
    _, config = saved_net
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"(?s)models.mine.weights: .*other.pt does not fit the module: .*conv1.bias"):
        load("mine", config, str(tmp_path / "other.pt"))
    with pytest.raises(ValueError, match="has no submodule 'nope'"):
        load("mine", {**config, "layers": ["act1", "nope"]}, config["weights"])


def test_the_registry_knows_a_user_module_without_loading_it(saved_net):
    _, config = saved_net
    assert registry.layer_names(config) == ["act1", "act2", "head"]
    assert registry.spec_of("torch_module").env_file == "envs/torch.yaml"
    assert registry.layer_shape(config, "act1", 800) is None  # only the loaded module knows
    assert registry.sample_rate(config) == 8000


def test_canonical_axes_round_trip_any_layout():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2 * 3, 4, 5, 1)[..., 0]  # [items, c, t]
    for layout in ("ct", "tc"):
        canonical = to_canonical(x, layout, clips=2)
        assert canonical.shape == ((2, 3, 5, 1, 4) if layout == "ct" else (2, 3, 4, 1, 5))
        assert torch.equal(from_canonical(canonical, layout), x)
    y = torch.randn(4, 3, 6, 5)
    assert torch.equal(from_canonical(to_canonical(y, "cft", clips=2), "cft"), y)


def test_frames_are_centred_and_normalised_like_torchcrepe():
    framing = Framing(frame_samples=8, hop_samples=4, normalise=True)
    x = torch.arange(20, dtype=torch.float32)[None]
    frames = framing.frames(x)
    assert frames.shape == (framing.patches(20), 8) == (6, 8)
    raw = torch.nn.functional.pad(x, (4, 4))[0, 4:12]
    np.testing.assert_allclose(frames[1], ((raw - raw.mean()) / raw.std()).numpy(), atol=1e-6)


def test_a_submodule_that_runs_twice_is_not_a_layer(tmp_path):
    (tmp_path / "shared.py").write_text(textwrap.dedent("""
        import torch


        class SharedRelu(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = torch.nn.Conv1d(1, 4, 9, stride=4)
                self.conv2 = torch.nn.Conv1d(4, 4, 5)
                self.relu = torch.nn.ReLU()
                self.head = torch.nn.Linear(4, 2)

            def forward(self, waveforms):
                x = self.relu(self.conv2(self.relu(self.conv1(waveforms[:, None, :]))))
                return self.head(x.mean(dim=2))
        """))
    namespace = {}
    exec(compile((tmp_path / "shared.py").read_text(), "shared.py", "exec"), namespace)
    torch.save(namespace["SharedRelu"]().state_dict(), tmp_path / "shared.pt")
    config = {"kind": "torch_module", "module": f"{tmp_path / 'shared.py'}:SharedRelu", "weights":
              str(tmp_path / "shared.pt"), "layers": ["relu", "head"], "sample_rate": 8000, "min_samples": 64}
    adapter = load("shared", config, config["weights"])
    with pytest.raises(ValueError, match="relu runs more than once in a forward pass"):
        adapter.activations(waveforms(), ["relu"])
    assert adapter.activations(waveforms(), ["head"])["head"].shape == (3, 1, 1, 1, 2)
