"""Differentiable input representations for metamer synthesis: a cochleagram and an |STFT| front end.

Both run in TensorFlow on a batch of waveforms ``[batch, samples]`` (float32) and let gradients flow back to
the waveform, which is what metamer optimisation needs.

:class:`Cochleagram` follows the 2023 recipe of Feather et al. (chcochleagram, ``cochleagram_1``), see
``shared/reference/metamers.md`` section 1:

    rFFT -> multiply by half-cosine ERB filters (:func:`erb_cos_filters`) -> drop the negative frequencies and
    take the complex inverse FFT (the analytic signal) -> magnitude (Hilbert envelope) -> sinc x Kaiser
    low-pass, downsampled to ``env_sr`` by a strided convolution -> ReLU -> scale -> power 0.3 whose
    gradient is clipped.

By default it computes each channel's envelope at a reduced rate (a few times its bandwidth) instead of the
input rate, several times faster and not exact: see "Reduced envelope rate" in :class:`Cochleagram`;
``envelope_oversampling=None`` is Feather et al.'s input-rate computation.

:func:`cochleagram_reference` computes the same chain channel by channel with numpy/scipy (through
``scipy.signal.hilbert`` and a dot product per frame), and is what the tests hold the TensorFlow version to.

:class:`StftMagnitude` is the front end of TensorFlow's "simple audio recognition" tutorial.

:func:`build_frontend` makes either from a config dict such as ``{"kind": "cochleagram", "env_sr": 200}``.

TensorFlow is imported lazily, so :func:`erb_cos_filters` and :func:`cochleagram_reference` work without it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from audioprobe.models.base import fake_relu

ERB_Q = 9.265  # Glasberg & Moore: ear quality factor
ERB_MIN_BW = 24.7  # Glasberg & Moore: minimum bandwidth, Hz

PADDINGS = ("VALID", "SAME")
#: the default envelope rate is at least this many times each channel's bandwidth (Cochleagram)
DEFAULT_ENVELOPE_OVERSAMPLING = 4.0
#: ... and at least this many times env_sr, however narrow the channel
MIN_ENVELOPE_RATE_FACTOR = 8
#: the reduced rate's inverse FFTs run on a multiple of this many rows (see _aligned_ifft)
FFT_ROW_MULTIPLE = 32


# ---------------------------------------------------------------------------------------------------------
# ERB half-cosine filterbank


def hz_to_erb(hz):
    """ERB-number (Cams) of a frequency in Hz: 9.265 * ln(1 + f / (24.7 * 9.265))."""
    return ERB_Q * np.log1p(np.asarray(hz, dtype=np.float64) / (ERB_MIN_BW * ERB_Q))


def erb_to_hz(erb):
    """Inverse of :func:`hz_to_erb`."""
    return ERB_MIN_BW * ERB_Q * np.expm1(np.asarray(erb, dtype=np.float64) / ERB_Q)


def _check_band(sample_rate, n, low_hz, high_hz, sample_factor) -> None:
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if int(sample_factor) != sample_factor or sample_factor < 1:
        raise ValueError(f"sample_factor must be a positive integer, got {sample_factor}")
    if not 0 <= low_hz < high_hz:
        raise ValueError(f"need 0 <= low_hz < high_hz, got low_hz={low_hz}, high_hz={high_hz}")
    if high_hz > sample_rate / 2:
        raise ValueError(f"high_hz={high_hz} is above the Nyquist frequency {sample_rate / 2} "
                         f"(sample_rate={sample_rate})")


def _default_high_hz(sample_rate):
    return min(10000.0, sample_rate / 2)


def _erb_layout(n, low_hz, high_hz, sample_factor):
    """Band-pass peak positions on the ERB-number scale, and the spacing between neighbours.

    ``sample_factor * (n + 1) - 1`` peaks split [erb(low_hz), erb(high_hz)] into equal steps; the two ends are
    not peaks themselves.
    """
    n_bandpass = sample_factor * (n + 1) - 1
    lo, hi = hz_to_erb(low_hz), hz_to_erb(high_hz)
    spacing = (hi - lo) / (n_bandpass + 1)
    peaks = lo + spacing * np.arange(1, n_bandpass + 1)
    return peaks, spacing


def erb_centres(n, low_hz, high_hz, sample_factor):
    """The channel centre frequencies of :func:`erb_cos_filters`, in Hz, without building the filters.

    Band-pass channels are centred at their peaks; the low-pass (high-pass) edge channels are given the
    lower (upper) edge of the band-pass filter they complement, as pycochleagram does. They increase
    monotonically; the top edge centres can lie above ``high_hz`` (and above Nyquist).
    """
    peaks, spacing = _erb_layout(n, low_hz, high_hz, sample_factor)
    reach = sample_factor * spacing
    centres_erb = np.concatenate([peaks[:sample_factor] - reach, peaks, peaks[-sample_factor:] + reach])
    return erb_to_hz(centres_erb)


def erb_cos_filters(n_freqs, sample_rate, n=50, low_hz=50.0, high_hz=None, sample_factor=4, *,
                    signal_length=None):
    """Half-cosine filters on the ERB-number scale, sampled on rFFT bins (pycochleagram's
    ``make_erb_cos_filters_nx``, written from its description).

    Args:
        n_freqs: number of rFFT bins the filters are sampled on.
        sample_rate: in Hz.
        n: band-pass filters at ``sample_factor`` 1.
        low_hz, high_hz: the band covered by the band-pass filters; ``high_hz`` must not exceed Nyquist
            (None: min(10000, sample_rate / 2), as in :class:`Cochleagram`).
        sample_factor: 1, 2 or 4 in practice: ``sample_factor * (n + 1) - 1`` band-pass filters, each
            spanning +-``sample_factor`` ERB spacings (neighbouring peaks are one spacing apart), so
            ``2 * sample_factor`` of them overlap at any frequency. ``sample_factor`` low-pass filters and as
            many high-pass filters close the two ends. n=50, sample_factor=4 gives 203 + 4 + 4 = 211.
        signal_length: the length of the signal whose rFFT the bins are (bin k is k * sample_rate /
            signal_length; n_freqs must be signal_length // 2 + 1). By default the bins are spaced evenly
            from 0 to sample_rate / 2, which is exact for even lengths.

    Returns:
        (filters, centre_hz): filters float64 [channels, n_freqs] in the order low-pass, band-pass (rising),
        high-pass; centre_hz [channels], see :func:`erb_centres`.

    A band-pass filter peaking at ERB-number c is cos(pi * (e - c) / (2 * sample_factor * spacing)) for
    ERB-numbers e within c +- sample_factor * spacing, 0 outside. Band-pass filters i, i + sample_factor,
    i + 2 * sample_factor, ... tile the axis like cos and sin, so their squares sum to 1; low-pass filter i is
    sqrt(1 - f_i^2) below the peak of band-pass filter i, and high-pass filter i is sqrt(1 - f^2) above the
    peak of the i-th band-pass filter from the top. Every one of the ``sample_factor`` chains therefore has
    squared responses summing to 1 from 0 Hz to Nyquist, and all filters are divided by
    sqrt(sample_factor) so that the squared responses of all channels sum to 1 at every bin.
    """
    high_hz = _default_high_hz(sample_rate) if high_hz is None else float(high_hz)
    _check_band(sample_rate, n, low_hz, high_hz, sample_factor)
    n, sample_factor = int(n), int(sample_factor)
    if signal_length is None:
        freqs = np.linspace(0.0, sample_rate / 2, n_freqs)
    else:
        if n_freqs != signal_length // 2 + 1:
            raise ValueError(f"a signal of {signal_length} samples has {signal_length // 2 + 1} rFFT bins, "
                             f"not {n_freqs}")
        freqs = np.arange(n_freqs) * (sample_rate / signal_length)
    bin_erb = hz_to_erb(freqs)

    peaks, spacing = _erb_layout(n, low_hz, high_hz, sample_factor)
    reach = sample_factor * spacing
    bandpass = np.zeros((len(peaks), n_freqs))
    for i, peak in enumerate(peaks):
        inside = (bin_erb > peak - reach) & (bin_erb < peak + reach)
        bandpass[i, inside] = np.cos(np.pi / 2 * (bin_erb[inside] - peak) / reach)

    lowpass = np.zeros((sample_factor, n_freqs))
    highpass = np.zeros((sample_factor, n_freqs))
    for i in range(sample_factor):
        below = freqs < erb_to_hz(peaks[i])
        lowpass[i, below] = np.sqrt(np.clip(1.0 - bandpass[i, below] ** 2, 0.0, None))
        # high-pass channel sample_factor - 1 - i complements band-pass filter len(peaks) - 1 - i, so the
        # high-pass channels come out in rising order
        top = len(peaks) - sample_factor + i
        above = freqs > erb_to_hz(peaks[top])
        highpass[i, above] = np.sqrt(np.clip(1.0 - bandpass[top, above] ** 2, 0.0, None))

    filters = np.concatenate([lowpass, bandpass, highpass]) / np.sqrt(sample_factor)
    return filters, erb_centres(n, low_hz, high_hz, sample_factor)


# ---------------------------------------------------------------------------------------------------------
# Shared pieces of the cochleagram chain


def sinc_kaiser_kernel(sample_rate, env_sr, taps=1001, beta=5.0):
    """The envelope low-pass: sinc(t / D) / D times a Kaiser(beta) window, D = sample_rate // env_sr.

    The cutoff is env_sr / 2 and the DC gain is close to 1 (it is not renormalised). The taps sit at
    t = -(taps - 1) / 2 ... (taps - 1) / 2, i.e. symmetric about the middle tap. chcochleagram samples at
    arange(-taps / 2, taps // 2), half a sample off (metamers.md, "quirks"); we do not copy that, since no
    published checkpoint has to be matched here.
    """
    factor = _downsample_factor(sample_rate, env_sr)
    t = np.arange(taps) - (taps - 1) / 2
    return np.sinc(t / factor) / factor * np.kaiser(taps, beta)


def _downsample_factor(sample_rate, env_sr) -> int:
    if env_sr <= 0 or sample_rate % env_sr:
        raise ValueError(f"sample_rate ({sample_rate}) must be a positive integer multiple of env_sr ({env_sr})")
    return int(sample_rate // env_sr)


def _frames_and_left_pad(samples, factor, taps, padding):
    """Frames of the strided low-pass and the zeros padded before the envelope (TensorFlow conventions)."""
    if padding == "VALID":
        if samples < taps:
            raise ValueError(f"'VALID' downsampling needs at least kernel_taps={taps} samples, got {samples}")
        return (samples - taps) // factor + 1, 0
    frames = -(-samples // factor)
    return frames, max((frames - 1) * factor + taps - samples, 0) // 2


def filter_support(filters):
    """First nonzero bin and number of bins from the first to the last nonzero one, per filter (1 for an
    all-zero filter)."""
    nonzero = np.asarray(filters) != 0
    first = nonzero.argmax(axis=1)
    last = nonzero.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1)
    return first, np.where(nonzero.any(axis=1), last - first + 1, 1)


def envelope_strides(filters, sample_rate, samples, factor, oversampling, min_rate):
    """Every how many input samples each channel's envelope is computed: the largest common divisor d of
    ``samples`` and the low-pass stride ``factor`` that keeps the envelope rate sample_rate / d at or above
    both ``oversampling`` times the channel's bandwidth (its filter's support) and ``min_rate``; 1 (the
    input rate) if none does. ``oversampling`` None: 1 for every channel."""
    _, width = filter_support(filters)
    if oversampling is None:
        return np.ones(len(width), dtype=int)
    bandwidth = width * sample_rate / samples
    divisors = [d for d in range(1, factor + 1) if factor % d == 0 and samples % d == 0]
    return np.array([max(d for d in divisors if sample_rate / d >= max(oversampling * hz, min_rate) or d == 1)
                     for hz in bandwidth])


def end_corrections(kernel, stride, left, frames, factor, samples):
    """[2, frames]: per frame, what the low-pass on every ``stride``-th sample (:func:`decimated_kernel`) of a
    constant envelope misses against the low-pass at the input rate, near the clip's start (row 0) and end
    (row 1). Frames whose window lies inside the clip miss nothing (the decimated kernel keeps the DC gain);
    with ``left`` zeros padded before the clip, the first and last frames reach past its ends."""
    kernel = np.asarray(kernel, dtype=np.float64)
    phase = left % stride
    positions = np.arange(frames)[:, None] * factor - left + np.arange(len(kernel))  # input sample under each tap
    inside = (positions >= 0) & (positions < samples)
    missed = inside @ kernel - inside[:, phase::stride] @ decimated_kernel(kernel, stride, phase)
    early = np.arange(frames) < frames / 2
    return np.stack([np.where(early, missed, 0.0), np.where(early, 0.0, missed)])


def decimated_kernel(kernel, stride, phase):
    """The low-pass for an envelope sampled every ``stride`` samples: taps ``phase``, ``phase + stride``, ...,
    rescaled to the full kernel's DC gain (so a constant envelope comes out as at the input rate)."""
    taps = np.asarray(kernel, dtype=np.float64)[phase::stride]
    return taps * (np.sum(kernel) / np.sum(taps))


# ---------------------------------------------------------------------------------------------------------
# TensorFlow cochleagram


def _clipped_power(x, power, clip):
    """x ** power, whose backward pass uses power * x ** (power - 1) clipped to [-clip, clip] (None: no clip)."""
    import tensorflow as tf

    @tf.custom_gradient
    def forward(x):
        def backward(dy):
            slope = power * tf.pow(x, power - 1.0)
            if clip is not None:
                slope = tf.clip_by_value(slope, -clip, clip)
            return dy * slope

        return tf.pow(x, power), backward

    return forward(x)


def _magnitude(z):
    """|z| of a complex tensor, with TensorFlow's gradient for tf.abs (z * upstream / |z|, 0 where z = 0)
    computed in real arithmetic: XLA's complex division made that gradient the slowest step."""
    import tensorflow as tf

    @tf.custom_gradient
    def forward(z):
        magnitude = tf.abs(z)

        def backward(dy):
            ratio = tf.math.divide_no_nan(dy, magnitude)
            return tf.complex(tf.math.real(z) * ratio, tf.math.imag(z) * ratio)

        return magnitude, backward

    return forward(z)


@dataclass(frozen=True)
class _Band:
    """Channels whose envelopes are computed every ``stride`` input samples, and the constants that takes.

    ``bins`` is None for the input-rate chain of every channel at once (the spectrum padded to the full
    length); otherwise [channels, samples / stride] rFFT bins from each channel's first one (clipped at
    Nyquist, where ``weights`` is 0)."""
    stride: int
    left: int  # zeros before the (reduced) envelope
    bins: object
    weights: object  # complex [channels, bins]: the filters on those bins
    polyphase: object  # [factor / stride, blocks]: the (decimated) low-pass split into its phases
    ends: object = None  # [2, frames]: what the low-pass misses at the clip's start and end (None: nothing)


@dataclass(frozen=True)
class _Plan:
    frames: int
    bands: tuple
    order: object  # channel order of the concatenated bands -> rising channels (None: already rising)


class Cochleagram:
    """A differentiable cochleagram in TensorFlow: ``[batch, samples]`` float32 -> ``[batch, channels, frames]``.

    Args:
        sample_rate: of the input, Hz. Must be a multiple of ``env_sr``.
        n, sample_factor, low_hz: of the ERB filterbank (:func:`erb_cos_filters`); 50, 4, 50 Hz is the 2023
            recipe (211 channels).
        high_hz: top of the band-pass range. None means min(10000, sample_rate / 2): 10 kHz as in the 2023
            recipe (which runs at 20 kHz, so there it is Nyquist) and Nyquist at lower rates, e.g. 8 kHz for
            16 kHz audio. Values above Nyquist are an error, not silently clamped.
        env_sr: sample rate of the envelopes (frames per second), 200 Hz.
        kernel_taps: length of the sinc x Kaiser(5) low-pass (:func:`sinc_kaiser_kernel`), cutoff env_sr / 2,
            applied with stride sample_rate // env_sr.
        padding: 'VALID' (default) or 'SAME', with TensorFlow's meaning. 'VALID' is the 2023 recipe (no
            padding: 40,000 samples at 20 kHz -> 390 frames, 16,000 at 16 kHz -> 188) and keeps
            zero-padding artefacts out of the edge frames; 'SAME' is the 2019 recipe: ceil(samples / stride)
            frames, 400 for 2 s at 20 kHz, 200 for 1 s at 16 kHz.
        power: compression exponent (0.3).
        grad_clip: the compression's derivative power * x ** (power - 1) is clipped to +-grad_clip in the
            backward pass (5 as in chcochleagram; the 2019 TF code used 1). None: no clipping.
        offset: added before the power so its derivative is finite at 0 (1e-8). It is in the forward pass
            too (as in chcochleagram), so silence maps to offset ** power (about 0.004), not 0.
        scale: multiplies the envelopes before the offset and power (1; the 2019 recipe used 796.87).
            chcochleagram multiplies after adding the offset; the two agree at scale 1.
        double_positive: False (default) keeps the original's analytic signal: the negative frequencies are
            dropped but the positive ones are not doubled, so envelopes come out at half amplitude (exactly
            half, apart from the DC and Nyquist bins). True doubles the bins strictly between DC and Nyquist,
            giving the textbook analytic signal (scipy.signal.hilbert) and full-amplitude envelopes.
        fake_relu: False (default): a plain ReLU, whose gradient is 0 where the low-passed envelope is
            negative. True: chcochleagram's FakeReLU, the identity in the backward pass. The forward pass is
            the same either way.
        dtype: 'float32' (default) or 'float64' (slower; for checking the chain against
            :func:`cochleagram_reference` beyond float32 rounding).
        jit_compile: run the chain as one XLA-compiled function (default True). XLA's CPU FFT is about 3x
            faster than TensorFlow's own FFT kernel for lengths like 16,000 or 40,000, and it fuses the
            filter multiply, magnitude and their gradients. The compiled function is traced once per input
            shape.
        envelope_oversampling: compute each channel's envelope at a reduced rate: sample_rate / d for the
            largest d dividing both the clip length and the low-pass stride that keeps the rate at or above
            this many times the channel's bandwidth (its filter's support) and at or above
            ``MIN_ENVELOPE_RATE_FACTOR`` x ``env_sr`` (:func:`envelope_strides`). 4 (default); None: every
            envelope at the input rate, Feather et al.'s computation. See "Reduced envelope rate" below.

    The envelope is ``tf.abs`` of the analytic signal, whose gradient TensorFlow defines as 0 where the signal
    is exactly 0 (chcochleagram instead floors |z|^2 at 1e-16). So an all-zero input has a finite, zero
    gradient. Filters are built for each input length on first use and cached.

    Float32 rounding leaves the envelopes with an absolute error of about 1e-7 of their peak. The power
    compression magnifies that where an envelope is near zero (x ** 0.3 is steep there): channels with
    essentially no energy can differ from a float64 computation by ~1e-3 of the output's peak.

    With the 2023 settings (scale 1, half-amplitude envelopes) and input at RMS 0.1, nearly all envelope
    values are below 0.018, where 0.3 * x ** -0.7 exceeds 5: the clip binds almost everywhere, so the
    backward pass treats the compression as a gain of 5 (times ``scale``) rather than as x ** 0.3.

    Reduced envelope rate: a channel's analytic signal has no energy outside its filter's support, so its
    value every d-th input sample is exactly an inverse FFT of length samples / d of the band shifted to 0
    Hz (a complex baseband signal with the same magnitude), when that length covers the band. The envelope
    |z| is thus sampled exactly, and the low-pass runs on every d-th sample with its taps decimated to match
    (:func:`decimated_kernel`, the DC gain kept; with 'SAME' padding, :func:`end_corrections` for the frames
    that reach past the clip's ends). That step is not exact: |z| is not band-limited (|z|^2 is, to twice
    the band, but the square root has a kink wherever z passes near 0), so the part of its spectrum above
    sample_rate / (2 d) folds into the low-pass band. Steady tones (constant envelopes) come out as at the
    input rate, to float32 rounding. Noise and speech do not: with the default settings (n 40,
    sample_factor 1, 16 kHz, one-second clips) the envelopes before compression differ from
    :func:`cochleagram_reference` by up to 2e-3 of the clip's peak for white noise, 5e-4 for pink noise and
    2e-3 for espeak-ng keywords (up to 4e-3 of a channel's own peak), and the compressed output by up to
    3.3e-3 of its peak wherever the envelope is above 1e-4 of its peak (up to 1e-2 in near-silent bins,
    where x ** 0.3 is steep); the input rate holds to 3e-7. The error falls roughly as (bandwidth / envelope
    rate)^2, so a larger ``envelope_oversampling`` trades speed for accuracy. Its output and gradient are the
    same bytes from call to call and with 1, 2 or 4 intra-op threads (see :func:`_aligned_ifft`).

    Cost: at the input rate the chain computes every channel's analytic signal at full length (an FFT of
    [batch, channels, samples]), forward and backward; the compiled path keeps that complex array from the
    forward pass for the backward one: 211 x 16,000 x 8 bytes = 27 MB per one-second 16 kHz clip. The reduced
    rate computes about a sixth of those samples for the default front end (strides 2 to 10, channel by
    channel), and its forward and backward pass take about a fifth of the input rate's time. XLA compiles
    once per input shape (a second or two for each pass; a few seconds at the reduced rate).

    Attributes: ``channels`` (int), ``centre_hz`` (float64 [channels]), ``high_hz`` (the value used),
    ``kernel`` (float64 [kernel_taps]), ``factor`` (the downsampling stride).
    """

    def __init__(self, sample_rate=16000, n=50, sample_factor=4, low_hz=50.0, high_hz=None, env_sr=200,
                 kernel_taps=1001, padding="VALID", power=0.3, grad_clip=5.0, offset=1e-8, scale=1.0,
                 double_positive=False, fake_relu=False, dtype="float32", jit_compile=True,
                 envelope_oversampling=DEFAULT_ENVELOPE_OVERSAMPLING):
        high_hz = _default_high_hz(sample_rate) if high_hz is None else float(high_hz)
        _check_band(sample_rate, n, low_hz, high_hz, sample_factor)
        padding = str(padding).upper()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if int(kernel_taps) != kernel_taps or kernel_taps < 1:
            raise ValueError(f"kernel_taps must be a positive integer, got {kernel_taps}")
        if scale <= 0 or offset < 0 or power <= 0:
            raise ValueError(f"need scale > 0, offset >= 0 and power > 0, got {scale}, {offset}, {power}")
        if grad_clip is not None and grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {grad_clip}")
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        if envelope_oversampling is not None and not envelope_oversampling >= 1:
            raise ValueError(f"envelope_oversampling must be at least 1 or None, got {envelope_oversampling}")
        self.sample_rate = int(sample_rate)
        self.n, self.sample_factor = int(n), int(sample_factor)
        self.low_hz, self.high_hz = float(low_hz), high_hz
        self.env_sr, self.kernel_taps, self.padding = env_sr, int(kernel_taps), padding
        self.power, self.grad_clip, self.offset, self.scale = float(power), grad_clip, float(offset), float(scale)
        self.double_positive, self.fake_relu = bool(double_positive), bool(fake_relu)
        self.dtype = dtype
        self.jit_compile = bool(jit_compile)
        self.envelope_oversampling = None if envelope_oversampling is None else float(envelope_oversampling)

        self.factor = _downsample_factor(self.sample_rate, env_sr)
        self.kernel = sinc_kaiser_kernel(self.sample_rate, env_sr, self.kernel_taps)
        self.centre_hz = erb_centres(self.n, self.low_hz, self.high_hz, self.sample_factor)
        self.channels = len(self.centre_hz)
        self._plans, self._chains = {}, {}

    def output_shape(self, samples: int) -> tuple[int, int]:
        """(channels, frames) for clips of ``samples`` samples."""
        frames, _ = _frames_and_left_pad(samples, self.factor, self.kernel_taps, self.padding)
        return self.channels, frames

    def _filters(self, samples):
        """float64 [channels, samples // 2 + 1] filters on the rFFT bins, doubled where double_positive says."""
        filters, _ = erb_cos_filters(samples // 2 + 1, self.sample_rate, self.n, self.low_hz, self.high_hz,
                                     self.sample_factor, signal_length=samples)
        if self.double_positive:
            filters[:, 1:(samples + 1) // 2] *= 2  # every bin that has a negative-frequency twin
        return filters

    def envelope_strides(self, samples) -> np.ndarray:
        """Every how many input samples each channel's envelope is computed (1: the input rate)."""
        return envelope_strides(self._filters(samples), self.sample_rate, samples, self.factor,
                                self.envelope_oversampling, MIN_ENVELOPE_RATE_FACTOR * self.env_sr)

    def _plan(self, samples) -> _Plan:
        """The bands of channels and their constants for clips of ``samples`` samples (built once)."""
        if samples not in self._plans:
            frames, left = _frames_and_left_pad(samples, self.factor, self.kernel_taps, self.padding)
            filters = self._filters(samples)
            if self.envelope_oversampling is None:
                bands = [self._band(samples, 1, left, None, filters)]
                order = None
            else:
                strides = self.envelope_strides(samples)
                first, _ = filter_support(filters)
                bands, order = [], []
                for stride in sorted(set(strides), reverse=True):  # narrow (low) channels first
                    channels = np.flatnonzero(strides == stride)
                    bins = first[channels, None] + np.arange(samples // stride)
                    inside = bins < filters.shape[1]
                    bins = np.minimum(bins, filters.shape[1] - 1)
                    weights = np.where(inside, np.take_along_axis(filters[channels], bins, axis=1), 0.0)
                    bands.append(self._band(samples, stride, left, bins, weights))
                    order.extend(channels)
                order = None if order == sorted(order) else np.argsort(order)
            self._plans[samples] = _Plan(frames, tuple(bands), self._constant(order, "int32"))
        return self._plans[samples]

    def _band(self, samples, stride, left, bins, weights) -> _Band:
        """The constants of channels computed every ``stride`` samples: their filter ``weights`` on ``bins``
        (None: all bins), the low-pass decimated to their grid, and the end corrections 'SAME' needs."""
        kernel = decimated_kernel(self.kernel, stride, left % stride) / stride  # 1 / stride: see _analytic
        factor = self.factor // stride
        blocks = -(-len(kernel) // factor)
        padded = np.zeros(blocks * factor)
        padded[:len(kernel)] = kernel
        ends = None
        if stride > 1 and left:  # 'SAME': the clip's ends fall inside frames
            frames = self.output_shape(samples)[1]
            ends = end_corrections(self.kernel, stride, left, frames, self.factor, samples) / stride
        complex_dtype = "complex64" if self.dtype == "float32" else "complex128"
        return _Band(stride, left // stride, self._constant(bins, "int32"), self._constant(weights, complex_dtype),
                     self._constant(padded.reshape(blocks, factor).T, self.dtype), self._constant(ends, self.dtype))

    @staticmethod
    def _constant(value, dtype):
        import tensorflow as tf

        if value is None:
            return None
        with tf.init_scope():  # an eager constant, which any tf.function may capture
            return tf.constant(np.asarray(value).astype(dtype))

    def _input(self, waveforms):
        import tensorflow as tf

        x = tf.convert_to_tensor(waveforms)
        if x.shape.rank != 2 or x.shape[-1] is None:
            raise ValueError(f"waveforms must be [batch, samples] with a known length, got shape {x.shape}")
        return tf.cast(x, self.dtype), int(x.shape[-1])

    @staticmethod
    def _analytic(x, plan):
        """Every band's analytic signals, complex [batch, channels, samples / stride] per band. Linear in x.

        At stride 1 the one-sided filtered spectrum is padded to the full length. At stride d each channel's
        band (its bins from the first nonzero one) is inverse-transformed at length samples / d, which gives
        the analytic signal every d-th sample times d and a phase that |.| drops (the 1 / d is in the
        low-pass kernel)."""
        import tensorflow as tf

        samples = x.shape[-1]
        spectrum = tf.signal.rfft(x)  # [batch, bins]
        analytic = []
        for band in plan.bands:
            if band.bins is None:
                subbands = spectrum[:, None, :] * band.weights
                subbands = tf.pad(subbands, [[0, 0], [0, 0], [0, samples - spectrum.shape[-1]]])
                analytic.append(tf.signal.ifft(subbands))
            else:
                analytic.append(_aligned_ifft(tf.gather(spectrum, band.bins, axis=1) * band.weights))
        return analytic

    def envelopes(self, waveforms):
        """The Hilbert envelopes at the input rate, [batch, channels, samples] (no low-pass, not compiled)."""
        import tensorflow as tf

        x, samples = self._input(waveforms)
        filters = self._constant(self._filters(samples), "complex64" if self.dtype == "float32" else "complex128")
        plan = _Plan(0, (_Band(1, 0, None, filters, None),), None)
        return tf.abs(self._analytic(x, plan)[0])

    def _from_analytic(self, analytic, plan):
        """Magnitude, low-pass and downsampling, ReLU, scale and compression: -> [batch, channels, frames]."""
        import tensorflow as tf

        low = []
        for z, band in zip(analytic, plan.bands):
            envelope = _magnitude(z)
            part = _lowpass(envelope, band.polyphase, band.left, plan.frames)
            if band.ends is not None:
                part += envelope[..., :1] * band.ends[0] + envelope[..., -1:] * band.ends[1]
            low.append(part)
        low = low[0] if len(low) == 1 else tf.concat(low, axis=1)
        if plan.order is not None:
            low = tf.gather(low, plan.order, axis=1)
        rectified = fake_relu(low) if self.fake_relu else tf.nn.relu(low)
        return _clipped_power(self.scale * rectified + self.offset, self.power, self.grad_clip)

    def _chain(self, samples):
        """x -> cochleagram for clips of ``samples`` samples: TensorFlow's own differentiation of the chain,
        or (jit_compile) an XLA-compiled forward pass that keeps the analytic signals and an XLA-compiled
        backward pass from them, joined by a custom gradient (so the backward pass is compiled too when the
        caller runs eagerly or in a tf.function without XLA)."""
        import tensorflow as tf

        if samples in self._chains:
            return self._chains[samples]
        plan = self._plan(samples)

        def forward(x):
            analytic = self._analytic(x, plan)
            return self._from_analytic(analytic, plan), analytic

        def backward(x, analytic, upstream):
            with tf.GradientTape() as tape:
                tape.watch(analytic)
                out = self._from_analytic(analytic, plan)
            d_analytic = tape.gradient(out, analytic, output_gradients=upstream)
            # x -> analytic is linear, so its gradient needs no forward values: XLA drops the recomputation
            with tf.GradientTape() as tape:
                tape.watch(x)
                again = self._analytic(x, plan)
            return tape.gradient(again, x, output_gradients=d_analytic)

        if not self.jit_compile:
            def chain(x):
                return forward(x)[0]
        else:
            forward_xla = tf.function(forward, jit_compile=True)
            backward_xla = tf.function(backward, jit_compile=True)

            @tf.custom_gradient
            def chain(x):
                out, analytic = forward_xla(x)
                return out, lambda upstream: backward_xla(x, analytic, upstream)

        self._chains[samples] = chain
        return chain

    def __call__(self, waveforms):
        """[batch, samples] -> [batch, channels, frames], in ``dtype``."""
        x, samples = self._input(waveforms)
        self.output_shape(samples)  # raises for clips too short for 'VALID'
        return self._chain(samples)(x)


def _aligned_ifft(subbands):
    """tf.signal.ifft of [batch, channels, n], on rows padded with zeros to a multiple of FFT_ROW_MULTIPLE.

    Why: XLA's CPU FFT (DUCC) transforms short rows a SIMD vector's width at a time and the rest one by one,
    with other rounding, and splits the rows among as many threads as it gets: the whole intra-op pool when
    XLA runs the FFT on the calling thread, one thread when it runs it on a pool thread (DUCC's adapter to
    the pool), as it does when several bands' FFTs are ready at once. Which rows fell in a SIMD group
    therefore changed from call to call, and with it the last bits of the envelopes and gradients. With a
    multiple of 32 rows every share of 1, 2 or 4 threads is whole SIMD groups of up to 8 complex64 (AVX), so
    each row comes out the same however it was split. The gradient, an FFT of the same rows, is padded alike."""
    import tensorflow as tf

    channels, n = subbands.shape[1:]
    rows = tf.reshape(subbands, [-1, n])
    count = tf.shape(rows)[0]
    padded = tf.pad(rows, [[0, tf.math.floormod(-count, FFT_ROW_MULTIPLE)], [0, 0]])
    return tf.reshape(tf.signal.ifft(padded)[:count], [-1, channels, n])


def _lowpass(envelope, polyphase, left, frames):
    """The strided low-pass of [batch, channels, n] envelopes -> [batch, channels, frames].

    ``polyphase`` [stride, blocks] is the kernel split into its phases: column k holds taps k * stride ...
    (k + 1) * stride - 1 (zero-padded at the end). With the envelope (after ``left`` zeros) reshaped to rows
    of ``stride`` samples, the strided convolution becomes one matrix product followed by summing ``blocks``
    shifted diagonals; a stride-D convolution with a single channel is several times slower on CPU.
    """
    import tensorflow as tf

    channels, samples = envelope.shape[1], envelope.shape[-1]
    stride, blocks = polyphase.shape
    rows = frames - 1 + blocks
    needed = rows * stride  # samples the low-pass reads (the padded kernel tail is 0)
    flat = tf.reshape(envelope, [-1, samples])
    right = needed - left - samples
    if left or right > 0:
        flat = tf.pad(flat, [[0, 0], [left, max(right, 0)]])
    if right < 0:
        flat = flat[:, :needed]
    # row t of the reshaped envelope holds samples t * stride ... (t + 1) * stride - 1, so frame f is
    # sum_k <row f + k, column k of the kernel>
    partial = tf.reshape(tf.reshape(flat, [-1, stride]) @ polyphase, [-1, rows, blocks])
    low = tf.add_n([partial[:, k:k + frames, k] for k in range(blocks)])
    return tf.reshape(low, [-1, channels, frames])


def cochleagram_reference(waveforms, sample_rate=16000, n=50, sample_factor=4, low_hz=50.0, high_hz=None,
                          env_sr=200, kernel_taps=1001, padding="VALID", power=0.3, grad_clip=5.0, offset=1e-8,
                          scale=1.0, double_positive=False, fake_relu=False, dtype="float32", jit_compile=True,
                          envelope_oversampling=DEFAULT_ENVELOPE_OVERSAMPLING):
    """The :class:`Cochleagram` chain in float64 numpy/scipy, one clip and one channel at a time.

    Same arguments; ``grad_clip`` and ``fake_relu`` only change gradients and ``jit_compile`` only speed, so
    they are accepted and unused, and the computation is always float64 whatever ``dtype`` says. The envelopes
    are always computed at the input rate, Feather et al.'s computation, whatever ``envelope_oversampling``
    says: the reference is what the reduced rate approximates.
    ``waveforms`` is [batch, samples] or [samples]; returns float64 [batch, channels, frames] (or
    [channels, frames]).

    Independent of the TensorFlow path where it can be: each subband is made real with ``np.fft.irfft``, its
    analytic signal comes from ``scipy.signal.hilbert``, the non-doubled variant is derived from it (half of
    it, plus half the DC and Nyquist terms), and each frame is the kernel's dot product with its window of the
    explicitly padded envelope.
    """
    from scipy import signal

    del grad_clip, fake_relu, dtype, jit_compile, envelope_oversampling
    high_hz = _default_high_hz(sample_rate) if high_hz is None else float(high_hz)
    padding = str(padding).upper()
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    x = np.asarray(waveforms, dtype=np.float64)
    single = x.ndim == 1
    x = np.atleast_2d(x)
    samples = x.shape[-1]
    n_freqs = samples // 2 + 1
    filters, _ = erb_cos_filters(n_freqs, sample_rate, n, low_hz, high_hz, sample_factor,
                                 signal_length=samples)
    factor = _downsample_factor(sample_rate, env_sr)
    t = np.arange(kernel_taps) - (kernel_taps - 1) / 2
    kernel = np.sinc(t / factor) / factor * signal.windows.kaiser(kernel_taps, 5.0)
    frames, left = _frames_and_left_pad(samples, factor, kernel_taps, padding)
    alternating = (-1.0) ** np.arange(samples)

    out = np.zeros((len(x), len(filters), frames))
    for b, clip in enumerate(x):
        spectrum = np.fft.rfft(clip)
        for c, response in enumerate(filters):
            band = spectrum * response
            analytic = signal.hilbert(np.fft.irfft(band, n=samples))
            if not double_positive:
                edges = band[0].real + (band[-1].real * alternating if samples % 2 == 0 else 0.0)
                analytic = 0.5 * (analytic + edges / samples)
            envelope = np.abs(analytic)
            if padding == "SAME":
                right = max((frames - 1) * factor + kernel_taps - samples - left, 0)
                envelope = np.concatenate([np.zeros(left), envelope, np.zeros(right)])
            # frame f is the kernel's dot product with samples f * factor ... f * factor + kernel_taps - 1
            windows = np.lib.stride_tricks.sliding_window_view(envelope, kernel_taps)[::factor][:frames]
            out[b, c] = np.maximum(windows @ kernel, 0.0)
    out = (scale * out + offset) ** power
    return out[0] if single else out


# ---------------------------------------------------------------------------------------------------------
# |STFT| (TensorFlow simple-audio tutorial)


class StftMagnitude:
    """|STFT| as in TensorFlow's simple-audio tutorial: ``[batch, samples]`` -> ``[batch, frames, bins]``.

    ``tf.signal.stft`` with frame_length 255, frame_step 128, fft_length 256 (frames zero-padded to 256), its
    default ``hann_window`` and no end padding: 16,000 samples -> [124, 129]. TensorFlow's "periodic" Hann
    is only periodic for even lengths, so at 255 it is the symmetric one, 0.5 - 0.5 cos(2 pi k / 254).
    Linear magnitude, no log, no channel axis (the tutorial adds ``[..., None]`` before its model).

    Gradient caveat: TensorFlow's gradient of |z| is z / |z| with 0/0 taken as 0, so wherever a bin is
    exactly zero (e.g. the frames of a zero-padded clip) the gradient is zero and those frames get no
    update during metamer synthesis.
    """

    def __init__(self, frame_length=255, frame_step=128, fft_length=256):
        if not 0 < frame_length <= fft_length or frame_step <= 0:
            raise ValueError(f"need 0 < frame_length <= fft_length and frame_step > 0, got "
                             f"{frame_length}, {frame_step}, {fft_length}")
        self.frame_length, self.frame_step, self.fft_length = int(frame_length), int(frame_step), int(fft_length)
        self.bins = self.fft_length // 2 + 1

    def output_shape(self, samples: int) -> tuple[int, int]:
        """(frames, bins) for clips of ``samples`` samples."""
        if samples < self.frame_length:
            raise ValueError(f"need at least frame_length={self.frame_length} samples, got {samples}")
        return 1 + (samples - self.frame_length) // self.frame_step, self.bins

    def __call__(self, waveforms):
        import tensorflow as tf

        x = tf.convert_to_tensor(waveforms, dtype=tf.float32)
        return tf.abs(tf.signal.stft(x, frame_length=self.frame_length, frame_step=self.frame_step,
                                     fft_length=self.fft_length))


# ---------------------------------------------------------------------------------------------------------

FRONTENDS = {"cochleagram": Cochleagram, "stft": StftMagnitude}


def frontend_parameters(kind: str) -> list[str]:
    """The parameter names a front-end kind accepts (besides ``kind``)."""
    if kind not in FRONTENDS:
        raise ValueError(f"front end kind {kind!r} is unknown; known kinds: {', '.join(FRONTENDS)}")
    return [name for name in inspect.signature(FRONTENDS[kind].__init__).parameters if name != "self"]


def build_frontend(config: dict):
    """A front end from ``{"kind": "cochleagram" | "stft", **parameters}``; ValueError names bad keys."""
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"front end config needs a 'kind' ({' or '.join(FRONTENDS)}), got {config!r}")
    params = dict(config)
    kind = params.pop("kind")
    allowed = frontend_parameters(kind)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for front end {kind!r}; "
                         f"allowed: {', '.join(allowed)}")
    return FRONTENDS[kind](**params)


__all__ = ["Cochleagram", "StftMagnitude", "build_frontend", "cochleagram_reference", "erb_centres",
           "erb_cos_filters", "erb_to_hz", "frontend_parameters", "hz_to_erb", "sinc_kaiser_kernel"]
