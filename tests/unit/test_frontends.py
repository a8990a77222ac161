"""Metamer front ends: the ERB filterbank, the TensorFlow cochleagram against its numpy/scipy reference, and
the |STFT| of the TensorFlow tutorial."""

import inspect

import numpy as np
import pytest
from scipy.signal import chirp

from tests.conftest import require

tf = require("tensorflow")

from audioprobe.metamers import frontends as fe
from audioprobe.metamers.frontends import (
    Cochleagram,
    StftMagnitude,
    build_frontend,
    cochleagram_reference,
    decimated_kernel,
    end_corrections,
    envelope_strides,
    erb_cos_filters,
    hz_to_erb,
    sinc_kaiser_kernel,
)

SR = 16000
SAMPLES = 8000  # half a second keeps the per-channel reference quick

# the 2019-like setting: another rate and stride, a shorter kernel, 'SAME', doubled envelopes, a large scale,
# another power, and an odd length (no Nyquist bin)
OTHER = {"sample_rate": 20000, "n": 40, "sample_factor": 2, "low_hz": 20.0, "high_hz": 8000.0, "env_sr": 400,
         "kernel_taps": 501, "padding": "SAME", "power": 0.5, "scale": 796.87, "double_positive": True}
OTHER_SAMPLES = 9999
# the default run's front end (config.yaml: metamers.frontend)
SMALL = {"n": 40, "sample_factor": 1}
INPUT_RATE = {"envelope_oversampling": None}  # Feather et al.'s computation, all envelopes at the input rate
# What the reduced envelope rate (the default) may differ from the reference by, as a fraction of the clip's
# peak, on noise, chirps and speech: about twice the largest error measured on the signals below (4.6e-3
# before compression, 5.4e-3 after it where audible, 1.5e-2 in near-silent bins). Steady tones stay within the
# input rate's tolerance (test_reduced_rate_is_exact_for_steady_tones).
REDUCED_LINEAR, REDUCED_AUDIBLE, REDUCED_ANY = 1e-2, 1e-2, 3e-2


def _rms(x, level=0.1):
    return x / np.sqrt(np.mean(x ** 2)) * level


def _speech_like(samples, rate):
    """Three voiced 'syllables': harmonic bursts (24 harmonics, 1/k) with a gliding f0 and a smooth envelope,
    separated by silence."""
    t = np.arange(samples) / rate
    out = np.zeros(samples)
    for start, length, f0 in [(0.05, 0.12, 120.0), (0.2, 0.1, 180.0), (0.33, 0.12, 140.0)]:
        inside = (t >= start) & (t < start + length)
        local = t[inside] - start
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * local / length)) / rate
        out[inside] = np.sin(np.pi * local / length) ** 2 * sum(np.sin(k * phase) / k for k in range(1, 25))
    return out


def _signals(samples, rate):
    t = np.arange(samples) / rate
    rng = np.random.default_rng(0)
    clips = [np.sin(2 * np.pi * 1000.0 * t), chirp(t, 100.0, t[-1], 0.35 * rate, method="logarithmic"),
             rng.standard_normal(samples), _speech_like(samples, rate)]
    return np.stack([_rms(c) for c in clips]).astype(np.float32)


NAMES = ["tone", "chirp", "noise", "speech"]


def _tone_complex(samples, rate, freqs=(250.0, 500.0, 1000.0, 2000.0, 4000.0)):
    """Octave-spaced tones on exact rFFT bins: each channel's subband holds at most one tone, so every envelope
    is constant (and the reduced rate exact)."""
    t = np.arange(samples) / rate
    return _rms(sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs)))[None].astype(np.float32)


# the reduced rate's settings: the default run's front end on one-second clips, and the two of ``case``
# (an even length here, since 9,999 samples share no divisor with the stride and so stay at the input rate)
REDUCED_CASES = {"small": (SMALL, 16000, SR), "default": ({}, SAMPLES, SR), "other": (OTHER, 10000, 20000)}


@pytest.fixture(scope="module")
def default_coch():
    return Cochleagram()


@pytest.fixture(scope="module", params=["default", "other"])
def case(request):
    """Signals, settings, and the float64 reference both compressed and linear (power 1, offset 0)."""
    params, samples, rate = ({}, SAMPLES, SR) if request.param == "default" else (OTHER, OTHER_SAMPLES, 20000)
    x = _signals(samples, rate)
    linear = {**params, "power": 1.0, "offset": 0.0}
    return {"name": request.param, "params": params, "x": x, "reference": cochleagram_reference(x, **params),
            "linear": linear, "reference_linear": cochleagram_reference(x, **linear)}


# ---------------------------------------------------------------------------------------------------------
# filterbank


def test_erb_scale():
    assert hz_to_erb(1000.0) == pytest.approx(15.57, abs=0.01)  # Glasberg & Moore: ~15.6 Cams at 1 kHz
    erb = np.linspace(0, 40, 9)
    np.testing.assert_allclose(hz_to_erb(fe.erb_to_hz(erb)), erb, atol=1e-12)


@pytest.mark.parametrize("n, factor, channels", [(50, 4, 211), (50, 1, 52), (40, 2, 85)])
def test_filterbank_channels_tiling_and_centres(n, factor, channels):
    filters, centres = erb_cos_filters(8001, SR, n=n, low_hz=50.0, high_hz=8000.0, sample_factor=factor)
    assert filters.shape == (channels, 8001) and filters.dtype == np.float64
    assert len(centres) == channels and np.all(np.diff(centres) > 0)
    bandpass = factor * (n + 1) - 1
    assert channels == bandpass + 2 * factor
    # squared responses sum to 1 at every bin, from DC to Nyquist (the passband and the edge filters)
    np.testing.assert_allclose((filters ** 2).sum(axis=0), 1.0, atol=1e-9)
    assert filters.min() >= 0 and filters.max() == pytest.approx(1 / np.sqrt(factor), abs=1e-3)

    freqs_erb = hz_to_erb(np.linspace(0, SR / 2, 8001))
    peaks_erb = hz_to_erb(centres[factor:-factor])
    spacing = np.diff(peaks_erb).mean()
    np.testing.assert_allclose(np.diff(peaks_erb), spacing, rtol=1e-9)
    for filt, peak in zip(filters[factor:-factor], peaks_erb):
        support = freqs_erb[filt > 0]
        # each band-pass filter spans +-sample_factor spacings around its peak, where it is largest
        assert support.min() > peak - factor * spacing - 1e-9 and support.max() < peak + factor * spacing + 1e-9
        assert abs(freqs_erb[np.argmax(filt)] - peak) < 0.1 * spacing
    if factor == 4 and n == 50:
        assert spacing == pytest.approx((hz_to_erb(8000.0) - hz_to_erb(50.0)) / 204)


def test_filterbank_on_odd_length_bins():
    filters, _ = erb_cos_filters(4000, SR, signal_length=7999)
    np.testing.assert_allclose((filters ** 2).sum(axis=0), 1.0, atol=1e-9)
    with pytest.raises(ValueError, match="rFFT bins"):
        erb_cos_filters(4001, SR, signal_length=7999)


def test_band_limits_are_checked():
    with pytest.raises(ValueError, match="Nyquist"):
        Cochleagram(sample_rate=16000, high_hz=10000)
    with pytest.raises(ValueError, match="multiple of env_sr"):
        Cochleagram(sample_rate=16000, env_sr=300)
    assert Cochleagram(sample_rate=16000).high_hz == 8000.0
    assert Cochleagram(sample_rate=20000, jit_compile=False).high_hz == 10000.0


# ---------------------------------------------------------------------------------------------------------
# cochleagram vs the numpy/scipy reference


def test_reference_and_class_take_the_same_parameters():
    ours = inspect.signature(Cochleagram.__init__).parameters
    ref = inspect.signature(cochleagram_reference).parameters
    shared = [p for p in ours if p != "self"]
    assert shared == [p for p in ref if p != "waveforms"]
    assert all(ours[p].default == ref[p].default for p in shared)


def test_float64_cochleagram_is_the_reference(case):
    """Same chain, another code path: the FFT-domain analytic signal under XLA against scipy.signal.hilbert
    and per-frame dot products (envelopes at the input rate, as the reference computes them)."""
    got = Cochleagram(**case["params"], **INPUT_RATE, dtype="float64")(case["x"]).numpy()
    ref = case["reference"]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-10 * ref.max()


def test_float32_cochleagram_matches_reference(case):
    x, ref, linear_ref = case["x"], case["reference"], case["reference_linear"]
    got = Cochleagram(**case["params"], **INPUT_RATE)(x)
    assert got.dtype == tf.float32
    got = got.numpy()
    linear = Cochleagram(**case["linear"], **INPUT_RATE)(x).numpy()
    for i, name in enumerate(NAMES):
        scale = ref[i].max()
        # before compression float32 holds to a few 1e-7 of the peak
        assert np.abs(linear[i] - linear_ref[i]).max() <= 1e-5 * linear_ref[i].max(), name
        # after it, to 1e-4 of the output scale wherever the envelope is above 1e-4 of its peak...
        audible = linear_ref[i] >= 1e-4 * linear_ref[i].max()
        assert audible.mean() > 0.03, name
        assert np.abs(got[i] - ref[i])[audible].max() <= 1e-4 * scale, name
        # ...while near-silent bins carry float32 rounding through x ** power's steep start (documented)
        assert np.abs(got[i] - ref[i]).max() <= 5e-3 * scale, name


def test_pure_tone_peaks_in_the_nearest_channel(default_coch):
    tones = np.array([300.0, 1000.0, 2500.0, 5000.0])
    t = np.arange(SAMPLES) / SR
    x = (0.1 * np.sin(2 * np.pi * tones[:, None] * t)).astype(np.float32)
    profile = default_coch(x).numpy().mean(axis=-1)
    nearest = np.abs(hz_to_erb(default_coch.centre_hz)[None] - hz_to_erb(tones)[:, None]).argmin(axis=1)
    np.testing.assert_array_equal(profile.argmax(axis=1), nearest)
    assert np.array_equal(nearest, np.abs(default_coch.centre_hz[None] - tones[:, None]).argmin(axis=1))


# ---------------------------------------------------------------------------------------------------------
# the reduced envelope rate (the default)


def _reference_pair(params, x):
    linear = {**params, "power": 1.0, "offset": 0.0}
    return (cochleagram_reference(x, **params), cochleagram_reference(x, **linear),
            Cochleagram(**params)(x).numpy(), Cochleagram(**linear)(x).numpy())


def _check_within(got, ref, linear, linear_ref, *, linear_tol, audible_tol, any_tol, name):
    """The tolerance checks of test_float32_cochleagram_matches_reference, with the given bounds."""
    assert np.abs(linear - linear_ref).max() <= linear_tol * linear_ref.max(), name
    audible = linear_ref >= 1e-4 * linear_ref.max()
    assert np.abs(got - ref)[audible].max() <= audible_tol * ref.max(), name
    assert np.abs(got - ref).max() <= any_tol * ref.max(), name


@pytest.mark.parametrize("setting", list(REDUCED_CASES))
def test_reduced_rate_is_exact_for_steady_tones(setting):
    """Constant envelopes are band-limited, so the reduced rate meets the input rate's own tolerance, also at the
    clip's ends under 'SAME' padding (end_corrections)."""
    params, samples, rate = REDUCED_CASES[setting]
    coch = Cochleagram(**params)
    assert coch.envelope_strides(samples).max() > 1  # the reduced rate is really in use
    x = _tone_complex(samples, rate)
    ref, linear_ref, got, linear = _reference_pair(params, x)
    _check_within(got[0], ref[0], linear[0], linear_ref[0], linear_tol=1e-5, audible_tol=1e-4, any_tol=5e-3,
                  name=setting)


@pytest.mark.parametrize("setting", list(REDUCED_CASES))
def test_reduced_rate_error_is_bounded(setting):
    """Noise, a chirp and speech: |z| is not band-limited (it has a kink wherever the analytic signal passes
    near 0), so its low-pass from every d-th sample picks up aliases; they stay within REDUCED_*."""
    params, samples, rate = REDUCED_CASES[setting]
    x = _signals(samples, rate)
    ref, linear_ref, got, linear = _reference_pair(params, x)
    for i, name in enumerate(NAMES):
        _check_within(got[i], ref[i], linear[i], linear_ref[i], linear_tol=REDUCED_LINEAR,
                      audible_tol=REDUCED_AUDIBLE, any_tol=REDUCED_ANY, name=f"{setting} {name}")
    assert np.abs(linear - linear_ref).max() > 1e-5 * linear_ref.max()  # the bound is not vacuous


def test_reduced_and_input_rate_paths_agree():
    x = np.concatenate([_signals(16000, SR), _tone_complex(16000, SR)])
    linear = {**SMALL, "power": 1.0, "offset": 0.0}
    fast, full = Cochleagram(**linear)(x).numpy(), Cochleagram(**linear, **INPUT_RATE)(x).numpy()
    assert fast.shape == full.shape
    peaks = full.max(axis=(1, 2))
    errors = np.abs(fast - full).max(axis=(1, 2)) / peaks
    assert errors.max() <= REDUCED_LINEAR
    assert errors[[0, -1]].max() <= 1e-5  # the steady tone and the tone complex


def test_envelope_strides():
    samples, factor = 16000, 80
    filters, _ = erb_cos_filters(samples // 2 + 1, SR, n=40, high_hz=8000.0, sample_factor=1, signal_length=samples)
    first, width = fe.filter_support(filters)
    assert np.all(filters[np.arange(len(filters)), first] > 0)
    strides = envelope_strides(filters, SR, samples, factor, oversampling=4.0, min_rate=1600)
    assert strides.max() > 1 and np.all(factor % strides == 0) and np.all(samples % strides == 0)
    rates, bandwidth = SR / strides, width * SR / samples
    assert np.all(rates >= 4.0 * bandwidth) and np.all(rates >= 1600)
    # ... and the largest such stride: the next common divisor would break one of the two
    divisors = [d for d in range(1, factor + 1) if factor % d == 0 and samples % d == 0]
    for stride, hz in zip(strides, bandwidth):
        larger = [d for d in divisors if d > stride]
        assert not larger or SR / larger[0] < max(4.0 * hz, 1600)
    more = envelope_strides(filters, SR, samples, factor, oversampling=8.0, min_rate=1600)
    assert np.all(more <= strides)
    assert np.all(envelope_strides(filters, SR, samples, factor, oversampling=None, min_rate=1600) == 1)
    # 7,999 samples share no divisor with the stride: the input rate everywhere
    odd, _ = erb_cos_filters(4000, SR, n=40, high_hz=8000.0, sample_factor=1, signal_length=7999)
    assert np.all(envelope_strides(odd, SR, 7999, factor, oversampling=4.0, min_rate=1600) == 1)
    assert np.array_equal(Cochleagram(**SMALL).envelope_strides(samples),
                          envelope_strides(filters, SR, samples, factor, fe.DEFAULT_ENVELOPE_OVERSAMPLING,
                                           fe.MIN_ENVELOPE_RATE_FACTOR * 200))


def test_decimated_kernel_and_end_corrections():
    kernel = sinc_kaiser_kernel(SR, 200)
    np.testing.assert_array_equal(decimated_kernel(kernel, 1, 0), kernel)
    for stride, phase in [(5, 0), (8, 3), (20, 19)]:
        taps = decimated_kernel(kernel, stride, phase)
        assert len(taps) == len(kernel[phase::stride])
        assert taps.sum() == pytest.approx(kernel.sum(), rel=1e-12)
    # 'VALID': every frame lies inside the clip, nothing to correct
    frames, left = fe._frames_and_left_pad(16000, 80, 1001, "VALID")
    np.testing.assert_allclose(end_corrections(kernel, 10, left, frames, 80, 16000), 0.0, atol=1e-12)
    # 'SAME': only the frames that reach past either end
    frames, left = fe._frames_and_left_pad(16000, 80, 1001, "SAME")
    ends = end_corrections(kernel, 10, left, frames, 80, 16000)
    touched = np.flatnonzero(np.abs(ends).max(axis=0) > 1e-12)
    reach = 1001 // 2 // 80 + 1
    assert touched.size and np.all((touched < reach) | (touched >= frames - reach))


def test_envelope_oversampling_is_checked():
    with pytest.raises(ValueError, match="envelope_oversampling"):
        Cochleagram(envelope_oversampling=0.5)
    assert Cochleagram(envelope_oversampling=None).envelope_strides(SAMPLES).max() == 1


# ---------------------------------------------------------------------------------------------------------
# gradients


def _input_gradient(coch, x, weights=None):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = coch(x)
        loss = tf.reduce_sum(out if weights is None else out * weights)
    return tape.gradient(loss, x).numpy()


def test_gradient_is_finite_and_nonzero(default_coch):
    x = _signals(SAMPLES, SR)
    grad = _input_gradient(default_coch, x)
    assert np.all(np.isfinite(grad))
    assert np.all(np.abs(grad).max(axis=1) > 0) and np.mean(grad != 0) > 0.9
    silent = _input_gradient(default_coch, np.zeros_like(x))
    assert np.all(np.isfinite(silent))


@pytest.mark.parametrize("rate", [{}, INPUT_RATE], ids=["reduced rate", "input rate"])
def test_compiled_gradient_matches_plain_tensorflow(rate):
    """The XLA path (forward and backward compiled separately, joined by a custom gradient) against
    TensorFlow's own differentiation of the uncompiled chain."""
    x = _signals(4000, SR)[:2]
    weights = tf.constant(np.random.default_rng(1).standard_normal((2, 211, 38)).astype(np.float32))
    compiled = _input_gradient(Cochleagram(**rate), x, weights)
    plain = _input_gradient(Cochleagram(**rate, jit_compile=False), x, weights)
    assert np.abs(compiled - plain).max() <= 1e-5 * np.abs(plain).max()


def test_compiled_gradient_matches_plain_tensorflow_with_same_padding():
    """The reduced rate's 'SAME' path (end corrections) and the default run's front end, both ways."""
    x = _signals(4000, SR)[:2]
    for params in [{**SMALL, "padding": "SAME"}, SMALL]:
        coch = Cochleagram(**params)
        assert coch.envelope_strides(4000).max() > 1
        weights = tf.constant(np.random.default_rng(1).standard_normal((2, *coch.output_shape(4000))).astype(np.float32))
        compiled = _input_gradient(coch, x, weights)
        plain = _input_gradient(Cochleagram(**params, jit_compile=False), x, weights)
        assert np.abs(compiled - plain).max() <= 1e-5 * np.abs(plain).max()


@pytest.mark.parametrize("params", [{}, INPUT_RATE, {**SMALL, "padding": "SAME"}],
                         ids=["reduced rate", "input rate", "reduced rate, small, SAME"])
def test_gradient_is_the_derivative_without_clipping(params):
    """Central differences in float64 (noise input: no envelope near 0, where x ** 0.3 is too curved): the
    custom gradient is the derivative of the forward pass it belongs to."""
    coch = Cochleagram(**params, grad_clip=None, dtype="float64")
    rng = np.random.default_rng(2)
    x = 0.1 * rng.standard_normal((1, 4000))
    weights = tf.constant(rng.standard_normal((1, *coch.output_shape(4000))))
    direction = rng.standard_normal((1, 4000))
    grad = _input_gradient(coch, x, weights)

    def loss(v):
        return float(tf.reduce_sum(coch(tf.constant(v)) * weights))

    step = 1e-6
    numeric = (loss(x + step * direction) - loss(x - step * direction)) / (2 * step)
    assert np.sum(grad * direction) == pytest.approx(numeric, rel=1e-5)


# Run in a fresh process (TensorFlow's thread count is fixed once it starts): the default run's front end on
# noise, forward and gradient under XLA, CALLS times; prints one hash of all their bytes per call.
_BYTES_OF_CALLS = """
import hashlib, sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
from audioprobe.metamers.frontends import Cochleagram
coch = Cochleagram(n=40, sample_factor=1)
x = tf.constant(np.random.default_rng(0).standard_normal((4, 8000)).astype(np.float32) * 0.1)
weights = tf.constant(np.random.default_rng(1).standard_normal((4, *coch.output_shape(8000))).astype(np.float32))
for _ in range(int(sys.argv[2])):
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = coch(x)
        loss = tf.reduce_sum(out * weights)
    grad = tape.gradient(loss, x)
    print(hashlib.sha256(out.numpy().tobytes() + grad.numpy().tobytes()).hexdigest())
"""


def test_reduced_rate_is_bitwise_reproducible():
    """Same bytes on every call, in another process and with 1 or 2 intra-op threads: the reduced rate's
    several band FFTs, run concurrently by XLA, used to split their rows among a varying number of threads
    (see _aligned_ifft), so metamers differed between runs of the same config in their last bits."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(fe.__file__).resolve().parents[2]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    calls = {2: 30, 1: 2}  # the old code differed in about one call in ten with 2 threads
    runs = {threads: subprocess.Popen([sys.executable, "-c", _BYTES_OF_CALLS, str(threads), str(count)], env=env,
                                      text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for threads, count in calls.items()}
    hashes = {}
    for threads, run in runs.items():
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-2000:]
        hashes[threads] = out.split()
        assert len(hashes[threads]) == calls[threads]
    assert len(set(hashes[2])) == 1, "calls in one process differ (2 intra-op threads)"
    assert set(hashes[2]) == set(hashes[1]), "1 and 2 intra-op threads differ"


def test_power_gradient_is_clipped():
    u = tf.constant([1e-8, 1e-4, 0.5, 2.0])
    with tf.GradientTape() as tape:
        tape.watch(u)
        y = fe._clipped_power(u, 0.3, 5.0)
    grad = tape.gradient(y, u).numpy()
    np.testing.assert_allclose(y.numpy(), u.numpy() ** 0.3, rtol=1e-6)
    np.testing.assert_allclose(grad, np.minimum(0.3 * u.numpy() ** -0.7, 5.0), rtol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# shapes


@pytest.mark.parametrize("rate", [{}, INPUT_RATE], ids=["reduced rate", "input rate"])
@pytest.mark.parametrize("padding", ["VALID", "SAME"])
@pytest.mark.parametrize("samples", [8000, 4001])
def test_output_shape(padding, samples, rate):
    coch = Cochleagram(padding=padding, jit_compile=False, **rate)
    out = coch(np.zeros((3, samples), np.float32))
    assert tuple(out.shape) == (3, *coch.output_shape(samples))
    assert coch.output_shape(samples)[0] == coch.channels == len(coch.centre_hz) == 211
    small = Cochleagram(**SMALL, padding=padding, **rate)
    assert tuple(small(np.zeros((2, samples), np.float32)).shape) == (2, *small.output_shape(samples))
    assert small.output_shape(samples)[0] == 42


def test_output_shapes_of_the_published_settings():
    assert Cochleagram().output_shape(16000) == (211, 188)
    assert Cochleagram(padding="SAME").output_shape(16000) == (211, 200)
    coch_2023 = Cochleagram(sample_rate=20000, low_hz=50, high_hz=10000)
    assert coch_2023.output_shape(40000) == (211, 390)
    assert Cochleagram(sample_rate=20000, padding="SAME").output_shape(40000) == (211, 400)
    with pytest.raises(ValueError, match="kernel_taps"):
        Cochleagram().output_shape(900)


# ---------------------------------------------------------------------------------------------------------
# |STFT|


def test_stft_magnitude_matches_numpy():
    stft = StftMagnitude()
    x = _signals(16000, SR)[:2]
    got = stft(x).numpy()
    assert got.shape == (2, 124, 129) == (2, *stft.output_shape(16000))
    # tf.signal.hann_window(periodic=True) is periodic only for even lengths: at 255 it is np.hanning(255)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(255) / 254)
    starts = np.arange(124) * 128
    frames = np.stack([x[:, s:s + 255] for s in starts], axis=1).astype(np.float64)
    expected = np.abs(np.fft.rfft(frames * window, n=256))
    assert np.abs(got - expected).max() <= 1e-5 * expected.max()


# ---------------------------------------------------------------------------------------------------------
# build_frontend


def test_build_frontend():
    coch = build_frontend({"kind": "cochleagram", "n": 30, "padding": "SAME", "jit_compile": False})
    assert isinstance(coch, Cochleagram) and coch.channels == 4 * 31 - 1 + 8 and coch.padding == "SAME"
    assert build_frontend({"kind": "cochleagram", "envelope_oversampling": None}).envelope_oversampling is None
    stft = build_frontend({"kind": "stft"})
    assert isinstance(stft, StftMagnitude) and stft.output_shape(16000) == (124, 129)
    with pytest.raises(ValueError, match="'gammatone'"):
        build_frontend({"kind": "gammatone"})
    with pytest.raises(ValueError, match="'n_channels'"):
        build_frontend({"kind": "cochleagram", "n_channels": 50})
    with pytest.raises(ValueError, match="'power'"):
        build_frontend({"kind": "stft", "power": 0.3})
    with pytest.raises(ValueError, match="kind"):
        build_frontend({"n": 50})
