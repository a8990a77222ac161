"""maas-synth: a seeded, physically motivated material x action set (offline stand-in for MaAS).

A sound is an *excitation* (the action) driving a bank of damped *modes* (the material), recorded in a
room with some noise:

- materials are modal resonators: mode frequencies (inharmonic ratios), decay times and brightness
  (how fast mode gains fall with frequency), plus how much of the contact noise passes unfiltered;
- actions are excitation signals: sparse impacts (tapping), friction noise with stick-slip
  micro-impacts (rubbing), bursts of many fractures (destructing), and a rotating, amplitude- and
  pitch-modulated air swoosh that rattles the object lightly (whirling);
- recording variation: gain, a synthetic room (exponentially decaying noise tail), a microphone tilt,
  and pink background noise at a random SNR.

Each recording draws its parameters from a generator seeded by (seed, material, action, take), so a file
does not change when others are added. Files are LatentAudio-named ``{M}{A}_{take}.wav``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from audioprobe.datasets.naming import LATENTAUDIO_ACTIONS, LATENTAUDIO_MATERIALS


@dataclass(frozen=True)
class Material:
    f0: tuple[float, float]           # range of the fundamental, Hz
    ratios: tuple[float, ...]         # mode frequency ratios
    decay: tuple[float, float]        # range of the fundamental's decay time (s, to -60 dB)
    brightness: float                 # mode gain ~ (k + 1) ** -brightness; small is bright
    contact_noise: float              # share of broadband contact noise in the output


MATERIALS = {
    "wood": Material((250, 550), (1.0, 2.57, 4.21, 6.09, 8.3), (0.04, 0.10), 1.4, 0.25),
    "metal": Material((700, 1800), (1.0, 2.76, 5.40, 8.93, 13.34), (0.6, 1.5), 0.4, 0.05),
    "glass": Material((1400, 3200), (1.0, 2.32, 4.25, 6.63, 9.4), (0.25, 0.6), 0.2, 0.04),
    "stone": Material((450, 1100), (1.0, 1.83, 2.91, 4.37, 6.0), (0.015, 0.035), 0.8, 0.45),
    "cardboard": Material((140, 380), (1.0, 1.59, 2.31, 3.12, 4.0), (0.01, 0.025), 2.0, 0.6),
    "plastic": Material((500, 1200), (1.0, 2.13, 3.44, 5.21, 7.1), (0.06, 0.16), 1.0, 0.2),
}
ACTIONS = ("tapping", "rubbing", "destructing", "whirling")
MATERIAL_CODES = {name: code for code, name in LATENTAUDIO_MATERIALS.items()}
ACTION_CODES = {name: code for code, name in LATENTAUDIO_ACTIONS.items()}


def file_name(material: str, action: str, take: int) -> str:
    return f"{MATERIAL_CODES[material]}{ACTION_CODES[action]}_{take:02d}.wav"


def recording(material: str, action: str, take: int, *, seed: int, seconds: float, sample_rate: int) -> np.ndarray:
    """One synthetic recording, float32 in [-1, 1]."""
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; maas-synth knows {', '.join(MATERIALS)}")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; maas-synth knows {', '.join(ACTIONS)}")
    rng = np.random.default_rng([seed, list(MATERIALS).index(material), ACTIONS.index(action), take])
    samples = int(round(seconds * sample_rate))
    excitation = EXCITATIONS[action](rng, samples, sample_rate)
    sound = resonate(excitation, MATERIALS[material], rng, sample_rate)
    return record(sound, rng, sample_rate)


# --- materials ------------------------------------------------------------------------------------------

def resonate(excitation: np.ndarray, material: Material, rng, sample_rate: int) -> np.ndarray:
    """Drive a bank of two-pole resonators (one per mode) with the excitation."""
    nyquist = sample_rate / 2
    f0 = rng.uniform(*material.f0)
    decay0 = rng.uniform(*material.decay)
    out = np.zeros_like(excitation)
    for k, ratio in enumerate(material.ratios):
        freq = f0 * ratio * rng.uniform(0.98, 1.02)
        if freq >= 0.95 * nyquist:
            break
        decay = decay0 / (1.0 + 0.6 * k)          # higher modes die faster
        radius = 10 ** (-3.0 / (decay * sample_rate))
        theta = 2 * np.pi * freq / sample_rate
        gain = (k + 1) ** -material.brightness * rng.uniform(0.7, 1.3)
        b, a = [1 - radius], [1, -2 * radius * np.cos(theta), radius ** 2]
        out += gain * signal.lfilter(b, a, excitation)
    out /= np.max(np.abs(out)) + 1e-12
    contact = _highpass(excitation, 1500, sample_rate)
    contact /= np.max(np.abs(contact)) + 1e-12
    return (1 - material.contact_noise) * out + material.contact_noise * contact


# --- actions ----------------------------------------------------------------------------------------------

def tapping(rng, samples: int, sample_rate: int) -> np.ndarray:
    out = np.zeros(samples)
    time = rng.uniform(0.02, 0.2)
    rate = rng.uniform(2.0, 6.0)
    while time < samples / sample_rate:
        _impulse(out, int(time * sample_rate), rng.uniform(0.5, 1.0), rng.uniform(0.3e-3, 1.5e-3), sample_rate)
        time += rng.exponential(1 / rate) * 0.6 + 0.4 / rate
    return out


def rubbing(rng, samples: int, sample_rate: int) -> np.ndarray:
    t = np.arange(samples) / sample_rate
    stroke = 0.5 * (1 - np.cos(2 * np.pi * rng.uniform(0.8, 2.5) * t + rng.uniform(0, 2 * np.pi)))
    friction = _lowpass(rng.standard_normal(samples), rng.uniform(2000, 5000), sample_rate) * stroke
    slips = np.zeros(samples)
    count = rng.poisson(rng.uniform(80, 300) * samples / sample_rate)
    positions = rng.integers(0, samples, count)
    slips[positions] = rng.uniform(0.2, 1.0, count) * stroke[positions]
    return 0.4 * friction / (np.max(np.abs(friction)) + 1e-12) + slips


def destructing(rng, samples: int, sample_rate: int) -> np.ndarray:
    out = np.zeros(samples)
    time = rng.uniform(0.0, 0.3)
    while time < samples / sample_rate:
        start = int(time * sample_rate)
        strength = rng.uniform(0.6, 1.0)
        fragments = rng.integers(15, 60)
        offsets = np.cumsum(rng.exponential(rng.uniform(2e-3, 8e-3), fragments))
        for j, offset in enumerate(offsets):
            _impulse(out, start + int(offset * sample_rate), strength * np.exp(-j / 12) * rng.uniform(0.3, 1),
                     rng.uniform(0.1e-3, 0.6e-3), sample_rate)
        burst = int(min(samples - start, 0.08 * sample_rate))
        if burst > 0:
            out[start:start + burst] += 0.3 * strength * rng.standard_normal(burst) * np.exp(
                -np.arange(burst) / (0.02 * sample_rate))
        time += rng.uniform(0.4, 1.2)
    return out


def whirling(rng, samples: int, sample_rate: int) -> np.ndarray:
    t = np.arange(samples) / sample_rate
    rotation = rng.uniform(1.0, 4.0)
    phase = 2 * np.pi * rotation * t + rng.uniform(0, 2 * np.pi)
    envelope = (0.55 + 0.45 * np.sin(phase)) ** 2
    noise = rng.standard_normal(samples)
    centre = rng.uniform(600, 1500) * (1 + 0.35 * np.sin(phase + np.pi / 2))  # Doppler-like sweep
    swoosh = _swept_bandpass(noise, centre, sample_rate) * envelope
    swoosh /= np.max(np.abs(swoosh)) + 1e-12
    rattles = np.zeros(samples)
    for peak in np.arange(rng.uniform(0, 1 / rotation), samples / sample_rate, 1 / rotation):
        _impulse(rattles, int(peak * sample_rate), rng.uniform(0.1, 0.3), 1e-3, sample_rate)
    return 0.8 * swoosh + rattles


EXCITATIONS = {"tapping": tapping, "rubbing": rubbing, "destructing": destructing, "whirling": whirling}


# --- recording ---------------------------------------------------------------------------------------------

def record(sound: np.ndarray, rng, sample_rate: int) -> np.ndarray:
    """Room, microphone tilt, background noise and gain."""
    rt60 = rng.uniform(0.1, 0.6)
    tail = int(rt60 * sample_rate)
    response = rng.standard_normal(tail) * 10 ** (-3 * np.arange(tail) / tail)
    response[0] = 1.0 / rng.uniform(0.15, 0.5)  # direct-to-reverberant ratio
    wet = signal.fftconvolve(sound, response)[: sound.shape[0]]
    tilted = wet + rng.uniform(-0.4, 0.4) * np.gradient(wet) * sample_rate / (2 * np.pi * 2000)
    tilted /= np.max(np.abs(tilted)) + 1e-12
    snr_db = rng.uniform(20, 40)
    noise = _pink(rng, sound.shape[0])
    noise *= np.sqrt(np.mean(tilted ** 2) / (np.mean(noise ** 2) + 1e-12)) * 10 ** (-snr_db / 20)
    mixed = tilted + noise
    peak = 10 ** (rng.uniform(-12, -1) / 20)
    return (mixed / (np.max(np.abs(mixed)) + 1e-12) * peak).astype(np.float32)


def _impulse(out: np.ndarray, at: int, amplitude: float, width: float, sample_rate: int) -> None:
    length = max(2, int(width * sample_rate))
    if at >= out.shape[0]:
        return
    pulse = amplitude * np.hanning(length + 2)[1:-1]
    end = min(out.shape[0], at + length)
    out[at:end] += pulse[: end - at]


def _lowpass(x, cutoff, sample_rate):
    sos = signal.butter(2, min(cutoff, 0.45 * sample_rate), "low", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def _highpass(x, cutoff, sample_rate):
    sos = signal.butter(2, min(cutoff, 0.45 * sample_rate), "high", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, x)


def _swept_bandpass(x, centre, sample_rate, q=4.0):
    """A state-variable band-pass whose centre frequency follows ``centre`` sample by sample."""
    low = band = 0.0
    out = np.empty_like(x)
    damping = 1.0 / q
    tune = 2 * np.sin(np.pi * np.minimum(centre, 0.2 * sample_rate) / sample_rate)
    for i, value in enumerate(x):
        low += tune[i] * band
        high = value - low - damping * band
        band += tune[i] * high
        out[i] = band
    return out


def _pink(rng, samples: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.arange(spectrum.shape[0])
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, samples)
