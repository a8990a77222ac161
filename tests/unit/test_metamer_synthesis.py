"""Batched metamer synthesis and validation on a small differentiable model the test builds."""

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require

tf = require("tensorflow")

from audioprobe.metamers import architectures, synthesis, validation


def small_model(seed=0):
    """log |STFT| -> a 3x3 conv with ReLU -> mean over time and a linear read-out."""
    rng = np.random.default_rng(seed)
    kernel = tf.constant(rng.standard_normal((3, 3, 1, 4)).astype(np.float32) * 0.3)
    readout = tf.constant(rng.standard_normal((4 * 33, 3)).astype(np.float32))

    def forward(waveforms, relu_gradient="true"):
        spectrum = tf.abs(tf.signal.stft(waveforms, 64, 32))
        relu = architectures.fake_relu if relu_gradient == "fake" else tf.nn.relu
        conv = relu(tf.nn.conv2d(spectrum[..., None], kernel, 1, "SAME"))
        logits = tf.reshape(tf.reduce_mean(conv, axis=1), [tf.shape(waveforms)[0], -1]) @ readout
        return {"spectrum": spectrum, "conv": conv, "logits": logits}

    return forward


def tones(count=3, samples=2048):
    t = np.arange(samples) / 8000
    return np.stack([0.1 * np.sin(2 * np.pi * f * t) * np.hanning(samples) for f in (300, 900, 2100)[:count]])


def test_pink_noise_is_pink_seeded_and_scaled():
    noise = synthesis.pink_noise(np.random.default_rng(0), 4, 8192, rms=0.01)
    np.testing.assert_allclose(np.sqrt(np.mean(noise ** 2, axis=1)), 0.01, rtol=1e-5)
    np.testing.assert_array_equal(noise, synthesis.pink_noise(np.random.default_rng(0), 4, 8192, rms=0.01))
    power = np.abs(np.fft.rfft(noise, axis=1)) ** 2
    low, high = power[:, 90:110].mean(), power[:, 900:1100].mean()
    assert 6 < low / high < 15  # 1/f: about 10x more power a decade lower


def test_synthesis_matches_each_layer_batched_over_sounds_and_layers():
    forward = small_model()
    targets = tones()
    settings = synthesis.Settings(iterations=300, learning_rate=0.01, decay_steps=100, log_every=1, seed=1)
    metamers, curve = synthesis.synthesise(forward, targets, ["spectrum", "conv"], settings)
    assert metamers.shape == (2, 3, 2048) and curve.shape == (300, 2, 3)
    assert (curve[-1] < 0.1 * curve[0]).all()  # every row's loss fell by more than 10x
    natural = forward(tf.constant(targets.astype(np.float32)))
    for index, layer in enumerate(["spectrum", "conv"]):
        made = forward(tf.constant(metamers[index]))[layer].numpy()
        for sound in range(3):
            matched = validation.similarity(made[sound], natural[layer].numpy()[sound])
            other = validation.similarity(made[sound], natural[layer].numpy()[(sound + 1) % 3])
            assert matched["pearson"] > 0.9 and matched["pearson"] > other["pearson"]
    # A metamer is not a copy of its target: the waveforms stay far apart while the layer matches.
    assert np.corrcoef(metamers[1, 0], targets[0])[0, 1] < 0.5


def test_synthesis_is_reproducible():
    forward = small_model()
    settings = synthesis.Settings(iterations=20, learning_rate=0.01, log_every=10, seed=3)
    a, _ = synthesis.synthesise(forward, tones(2), ["conv"], settings)
    b, _ = synthesis.synthesise(forward, tones(2), ["conv"], settings)
    np.testing.assert_array_equal(a, b)


def test_a_diverging_row_is_kept_and_flagged_not_fatal():
    def forward(waveforms, relu_gradient="true"):
        square = waveforms ** 2
        # row 0's activations explode to Inf; row 1 stays finite
        scale = tf.constant([[1e38], [1.0]], tf.float32)
        return {"layer": square * scale * 10}

    settings = synthesis.Settings(iterations=5, learning_rate=0.01, log_every=5, seed=0)
    metamers, curve = synthesis.synthesise(forward, tones(2, 256), ["layer"], settings)
    assert not np.isfinite(curve[-1][0, 0]) and np.isfinite(curve[-1][0, 1])
    # the diverged row is kept (same shape, its samples not finite), the other row is untouched by it
    assert metamers.shape == (1, 2, 256)
    assert not np.isfinite(metamers[0, 0]).all() and np.isfinite(metamers[0, 1]).all()
    table = validation.validate(np.array([[np.nan], [1.0]]), np.array([[1.0], [1.0]]), np.array([0, 1]),
                                np.array([0, 1]), {"spearman": 0, "pearson": 0, "snr_db": 0})
    assert table.loc[0, "diverged"] and not table.loc[0, "passed"] and "diverged" in table.loc[0, "reason"]


def test_similarity_measures():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    scores = validation.similarity(a + 0.1, a)
    assert scores["spearman"] == pytest.approx(1.0) and scores["pearson"] == pytest.approx(1.0)
    assert scores["snr_db"] == pytest.approx(20 * np.log10(np.linalg.norm(a) / 0.2))  # 20 log10, not 10
    assert validation.similarity(-a, a)["spearman"] == pytest.approx(-1.0)


def test_validation_needs_the_prediction_and_the_null():
    rng = np.random.default_rng(0)
    natural = rng.standard_normal((50, 20))
    null = validation.null_distribution(natural, 500, rng)
    assert len(null) == 500 and null["pearson"].abs().max() < 0.9
    limits = validation.thresholds(null, "max")
    assert limits["pearson"] == null["pearson"].max()
    assert validation.thresholds(null, "q0.5")["pearson"] == pytest.approx(null["pearson"].median())
    close = natural[:3] + 0.05 * rng.standard_normal((3, 20))
    table = validation.validate(close, natural[:3], np.array([1, 2, 0]), np.array([1, 2, 2]), limits)
    assert table["passed"].tolist() == [True, True, False]
    assert table.loc[2, "reason"] == "prediction differs"
    far = rng.standard_normal((3, 20))
    table = validation.validate(far, natural[:3], np.zeros(3), np.zeros(3), limits)
    assert not table["passed"].any() and table["reason"].str.contains("within null").all()
    with pytest.raises(ValueError, match="null_threshold"):
        validation.thresholds(null, "median")


def test_pass_rates_count_every_metamer():
    table = pd.DataFrame({"model": ["a"] * 4, "layer": ["l1", "l1", "l2", "l2"], "passed": [True, False, True, True],
                          "prediction_match": [True, True, True, False], "diverged": [False, True, False, False],
                          "spearman": [0.9, np.nan, 0.8, 0.7]})
    rates = validation.pass_rates(table).set_index("layer")
    assert rates.loc["l1", "pass_rate"] == 0.5 and rates.loc["l1", "metamers"] == 2 and rates.loc["l1", "diverged"] == 1
    assert rates.loc["l2", "pass_rate"] == 1.0


def test_a_saturated_correlation_null_is_matched_not_beaten():
    natural = np.array([[0.0, 1.0, 2.0], [5.0, 1.0, 0.0]])
    limits = {"spearman": 1.0, "pearson": 0.999, "snr_db": 10.0}
    same_order = natural * 1.0001
    table = validation.validate(same_order, natural, np.zeros(2), np.zeros(2), limits)
    assert table["spearman_beats_null"].all() and table["passed"].all()
    table = validation.validate(natural[::-1], natural, np.zeros(2), np.zeros(2), limits)
    assert not table["spearman_beats_null"].any()


def gated_model(threshold=1.0, calls=None):
    """One ReLU layer, max(|STFT| - threshold, 0): off everywhere for quiet noise, on at a loud tone's bin."""
    def forward(waveforms, relu_gradient="true"):
        if calls is not None:
            calls.append(relu_gradient)
        pre = tf.abs(tf.signal.stft(waveforms, 64, 32)) - threshold
        return {"gate": (architectures.fake_relu if relu_gradient == "fake" else tf.nn.relu)(pre)}

    return forward


def test_synthesis_reads_the_matched_relu_as_settings_say():
    """From noise that leaves every unit of the matched ReLU off, the true gradient is zero everywhere (the
    waveform never moves), while the FakeReLU's identity gradient pulls the units the target has on."""
    targets = 3 * tones(2)  # peak bin magnitude ~5, well above the threshold of 1
    start = synthesis.pink_noise(np.random.default_rng(4), 2, 2048, 0.01)
    assert (gated_model()(tf.constant(start))["gate"].numpy() == 0).all()
    assert (gated_model()(tf.constant(targets.astype(np.float32)))["gate"].numpy() > 0).any()
    results = {}
    for mode in ("true", "fake"):
        calls = []
        settings = synthesis.Settings(iterations=60, learning_rate=0.01, log_every=60, seed=4, relu_gradient=mode)
        results[mode] = synthesis.synthesise(gated_model(calls=calls), targets, ["gate"], settings)
        assert set(calls) == {"true", mode}  # the targets' pass, then the loss with the configured gradient
    metamers, curve = results["true"]
    np.testing.assert_array_equal(metamers[0], start)
    metamers, curve = results["fake"]
    assert np.abs(metamers[0] - start).max() > 0 and (curve[-1] < 0.8).all()  # normalised loss starts at 1
    with pytest.raises(ValueError, match="relu_gradient"):
        synthesis.synthesise(gated_model(), targets, ["gate"], synthesis.Settings(iterations=1, relu_gradient="leaky"))


@pytest.mark.parametrize("envelope_oversampling", [4.0, None], ids=["reduced rate", "input rate"])
def test_synthesis_through_the_cochleagram(envelope_oversampling):
    """Input-representation metamers through the compiled cochleagram and its custom gradient, inside
    synthesise's traced step, with the envelopes at the reduced rate (the default) and at the input rate."""
    from audioprobe.metamers.frontends import Cochleagram

    coch = Cochleagram(n=40, sample_factor=1, envelope_oversampling=envelope_oversampling)

    def forward(waveforms, relu_gradient="true"):
        return {"cochleagram": coch(waveforms)}

    targets = 0.1 * np.stack([np.sin(2 * np.pi * f * np.arange(4000) / 16000) for f in (440.0, 1500.0)])
    settings = synthesis.Settings(iterations=60, learning_rate=0.003, log_every=10, seed=0)
    metamers, curve = synthesis.synthesise(forward, targets, ["cochleagram"], settings)
    assert metamers.shape == (1, 2, 4000) and np.isfinite(metamers).all()
    assert (curve[0] > 0.5).all() and (curve[-1] < 0.4).all()  # the normalised loss starts near 1


def test_default_settings_are_the_methods():
    settings = synthesis.Settings()
    assert (settings.iterations, settings.learning_rate, settings.decay_rate, settings.decay_steps,
            settings.relu_gradient) == (1500, 1e-3, 0.95, 1000, "fake")  # Lu's 1,500; Feather et al.'s FakeReLU


def test_yamnet_matched_layer_relu_gradient(yamnet_tflite):
    """YAMNet's metamer layers end in a ReLU: 'fake' reads it through a FakeReLU (same values, gradient
    through the units that are off), 'true' gives those units no gradient."""
    from audioprobe.models import yamnet_weights
    from audioprobe.models.yamnet import Yamnet

    model = Yamnet(yamnet_weights.load_weights(str(yamnet_tflite)), numerics="float")
    waves = tf.constant(synthesis.pink_noise(np.random.default_rng(0), 1, 15600, 0.1))
    values, grads = {}, {}
    for mode in ("true", "fake"):
        forward = model.differentiable(["layer2"], relu_gradient=mode)
        with tf.GradientTape() as tape:
            tape.watch(waves)
            out = forward(waves)["layer2"]
            off = tf.cast(tf.equal(out, 0.0), tf.float32)
            loss = tf.reduce_sum(out * tf.stop_gradient(off))
        values[mode], grads[mode] = out.numpy(), tape.gradient(loss, waves).numpy()
    np.testing.assert_array_equal(values["fake"], values["true"])
    assert 0 < (values["true"] == 0).mean() < 1
    assert np.abs(grads["true"]).max() == 0 and np.abs(grads["fake"]).max() > 0


def test_the_pytorch_path_takes_the_same_steps_as_the_tensorflow_path():
    """One algorithm in two frameworks: on the same network (a ReLU of a linear map of the waveform, written in
    each), the metamers and loss curves of the two paths agree."""
    torch = require("torch")
    rng = np.random.default_rng(3)
    weights = rng.standard_normal((256, 16)).astype(np.float32) * 0.2
    targets = rng.standard_normal((2, 256)).astype(np.float32) * 0.1

    def tf_forward(waveforms, relu_gradient="true"):
        linear = waveforms @ tf.constant(weights)
        return {"linear": linear, "relu": tf.nn.relu(linear)}

    def torch_forward(waveforms, relu_gradient="true"):
        linear = waveforms @ torch.as_tensor(weights)
        return {"linear": linear, "relu": torch.relu(linear)}

    settings = synthesis.Settings(iterations=60, learning_rate=1e-2, decay_steps=20, log_every=20,
                                  relu_gradient="true")
    made_tf, curve_tf = synthesis.synthesise(tf_forward, targets, ["linear", "relu"], settings)
    made_torch, curve_torch = synthesis.synthesise(torch_forward, targets, ["linear", "relu"], settings,
                                                   framework="torch")
    assert curve_torch[-1, 0].max() < 0.1 * curve_torch[0, 0].max()  # it optimises (the linear rows)
    # Adam adds epsilon before (Keras) or after (PyTorch) its bias correction: it shows only in the few samples
    # whose gradient is near zero (ReLU rows with units off), by about 1e-4
    np.testing.assert_allclose(made_torch, made_tf, atol=5e-4)
    assert np.median(np.abs(made_torch - made_tf)) < 1e-6
    np.testing.assert_allclose(curve_torch, curve_tf, rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match="cannot synthesise metamers in 'jax'"):
        synthesis.synthesise(torch_forward, targets, ["linear"], settings, framework="jax")
