"""The synthetic datasets: deterministic, and shaped by physics rather than by random labels."""

import numpy as np
import pytest
from scipy import signal

from audioprobe.datasets import commands_synth, maas_synth
from audioprobe.datasets.generate import generate_commands_synth, generate_maas_synth

RATE = 16000


def recording(material, action, take=1, seed=1, seconds=3.0):
    return maas_synth.recording(material, action, take, seed=seed, seconds=seconds, sample_rate=RATE)


def test_recordings_are_reproducible_and_seeded():
    np.testing.assert_array_equal(recording("wood", "tapping"), recording("wood", "tapping"))
    assert not np.array_equal(recording("wood", "tapping"), recording("wood", "tapping", seed=2))
    assert not np.array_equal(recording("wood", "tapping", take=1), recording("wood", "tapping", take=2))
    sound = recording("glass", "destructing")
    assert sound.dtype == np.float32 and 0 < np.abs(sound).max() <= 1 and np.isfinite(sound).all()


def decay_seconds(material):
    """Time for a struck resonator's envelope to fall 40 dB below its peak."""
    impulse = np.zeros(2 * RATE)
    impulse[10] = 1.0
    rng = np.random.default_rng(0)
    response = maas_synth.resonate(impulse, maas_synth.MATERIALS[material], rng, RATE)
    envelope = np.abs(signal.hilbert(response))
    below = np.flatnonzero(envelope < envelope.max() * 10 ** (-40 / 20))
    return below[below > np.argmax(envelope)][0] / RATE


def test_materials_ring_as_their_physics_says():
    decays = {m: decay_seconds(m) for m in maas_synth.MATERIALS}
    assert decays["metal"] > decays["glass"] > decays["plastic"] > decays["wood"] > decays["cardboard"]


def centroid(x):
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(x.shape[0], 1 / RATE)
    return (spectrum * freqs).sum() / spectrum.sum()


def test_glass_is_brighter_than_cardboard_for_every_action():
    for action in maas_synth.ACTIONS:
        assert centroid(recording("glass", action)) > centroid(recording("cardboard", action)), action


def envelope(x, hop=160):
    frames = np.abs(x[: x.shape[0] // hop * hop]).reshape(-1, hop)
    return frames.max(axis=1)


def test_actions_have_their_temporal_signatures():
    taps, rubs, whirl = (envelope(recording("wood", a, seconds=6.0)) for a in ("tapping", "rubbing", "whirling"))
    # Tapping is sparse (mostly quiet between impacts); rubbing is continuous.
    assert np.mean(taps < 0.1 * taps.max()) > 2 * np.mean(rubs < 0.1 * rubs.max())
    # Whirling swells at the rotation rate, 1 to 4 Hz.
    spectrum = np.abs(np.fft.rfft(whirl - whirl.mean()))
    freqs = np.fft.rfftfreq(whirl.shape[0], 160 / RATE)
    assert 0.9 <= freqs[np.argmax(spectrum[1:]) + 1] <= 4.5


def test_material_and_action_are_decodable_across_takes():
    """Nearest-centroid decoding on held-out takes beats chance by far: the labels live in the sound."""
    def features(x):
        _, _, spec = signal.spectrogram(x, RATE, nperseg=512)
        env = envelope(x)
        modulation = np.abs(np.fft.rfft(env / env.max() - np.mean(env / env.max())))[1:41]
        sparseness = [np.mean(env < q * env.max()) for q in (0.05, 0.1, 0.3)]
        return np.concatenate([np.log(spec.mean(axis=1) + 1e-9), np.log(modulation + 1e-6), sparseness])

    rows = [(m, a, t, features(recording(m, a, take=t, seconds=2.0)))
            for m in maas_synth.MATERIALS for a in maas_synth.ACTIONS for t in (1, 2, 3)]
    x = np.stack([r[3] for r in rows])
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    for factor, chance in ((0, 1 / 6), (1, 1 / 4)):
        labels = [r[factor] for r in rows]
        train = [i for i, r in enumerate(rows) if r[2] != 3]
        test = [i for i, r in enumerate(rows) if r[2] == 3]
        centroids = {c: x[[i for i in train if labels[i] == c]].mean(0) for c in set(labels)}
        guesses = [min(centroids, key=lambda c: np.linalg.norm(x[i] - centroids[c])) for i in test]
        accuracy = np.mean([g == labels[i] for g, i in zip(guesses, test)])
        assert accuracy > 2.5 * chance, (factor, accuracy)


def test_generated_folder_is_latentaudio_named(tmp_path):
    settings = {"seed": 1, "takes": 2, "recording_seconds": 1.0, "sample_rate": RATE,
                "materials": ["wood", "metal"], "actions": ["tapping"]}
    written = generate_maas_synth(tmp_path, settings)
    assert sorted(written) == ["MT_01.wav", "MT_02.wav", "WT_01.wav", "WT_02.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(written)


@pytest.fixture
def espeak():
    try:
        return commands_synth.espeak_binary()
    except RuntimeError as err:
        pytest.fail(str(err))


def test_keywords_are_spoken_reproducibly_in_speech_commands_layout(tmp_path, espeak):
    settings = {"seed": 3, "words": ["yes", "stop"], "per_word": 3, "voices": commands_synth.DEFAULT_VOICES,
                "variants": commands_synth.DEFAULT_VARIANTS, "pitch": [30, 70], "rate": [130, 210],
                "snr_db": [20, 30], "sample_rate": RATE, "clip_seconds": 1.0}
    written = generate_commands_synth(tmp_path / "a", settings)
    again = generate_commands_synth(tmp_path / "b", settings)
    assert written == again and len(written) == 6
    for name in written:
        word, file = name.split("/")
        assert word in ("yes", "stop") and "_nohash_" in file
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    clip, speaker = commands_synth.utterance("yes", 0, seed=3, voices=["en-us"], variants=["m3"],
                                              pitch_range=[50, 50], rate_range=[170, 170],
                                              snr_db_range=[30, 30], sample_rate=RATE)
    assert clip.shape == (RATE,) and speaker == "en-us+m3"
    # Speech is louder than the noise floor somewhere in the second.
    env = envelope(clip)
    assert env.max() > 5 * np.median(env)


def test_missing_espeak_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        commands_synth.espeak_binary()
