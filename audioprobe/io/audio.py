"""Reading, checking and normalising audio files.

Every file that enters a manifest passes through :func:`load_checked`, which either returns a mono
float32 signal at the requested sample rate or raises :class:`BadAudio` saying what is wrong with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
MIN_SAMPLE_RATE = 1000


class BadAudio(ValueError):
    """A file that cannot become a clip. ``reason`` is a short machine-friendly tag."""

    def __init__(self, path, reason: str, detail: str):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}: {detail}")


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def probe(path) -> AudioInfo:
    """Header information without decoding the whole file."""
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types for unreadable input
        raise BadAudio(path, "unreadable", str(err).strip() or type(err).__name__) from err
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))


def read(path, start: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` (or a span of it) to float32 of shape [frames, channels]."""
    info = probe(path)
    first = int(round(start * info.sample_rate))
    count = -1 if duration is None else int(round(duration * info.sample_rate))
    try:
        with sf.SoundFile(str(path)) as handle:
            if first:
                handle.seek(first)
            data = handle.read(frames=count, dtype="float32", always_2d=True)
    except Exception as err:
        raise BadAudio(path, "unreadable", str(err).strip() or type(err).__name__) from err
    return data, info.sample_rate


def to_mono(data: np.ndarray) -> np.ndarray:
    """Average all channels: right for stereo pairs and multichannel arrays alike."""
    if data.ndim == 1:
        return data
    return data.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(signal: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return signal.astype(np.float32, copy=False)
    return soxr.resample(signal, source_rate, target_rate, quality="HQ").astype(np.float32)


def check_signal(path, data: np.ndarray, sample_rate: int, min_seconds: float) -> None:
    """Raise :class:`BadAudio` for signals no analysis should see."""
    if sample_rate < MIN_SAMPLE_RATE:
        raise BadAudio(path, "bad_sample_rate", f"{sample_rate} Hz is below {MIN_SAMPLE_RATE} Hz")
    if data.ndim != 2 or data.shape[1] < 1:
        raise BadAudio(path, "no_channels", f"decoded array has shape {data.shape}")
    if data.shape[0] == 0:
        raise BadAudio(path, "empty", "the file holds no samples")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise BadAudio(path, "non_finite", f"{bad} NaN or Inf samples")
    seconds = data.shape[0] / sample_rate
    if seconds < min_seconds:
        raise BadAudio(path, "too_short", f"{seconds:.3f} s is shorter than min_seconds={min_seconds}")


def load_checked(path, target_rate: int, min_seconds: float = 0.0, start: float = 0.0,
                 duration: float | None = None) -> np.ndarray:
    """Mono float32 at ``target_rate``; raises :class:`BadAudio` for unusable input."""
    data, rate = read(path, start, duration)
    check_signal(path, data, rate, min_seconds)
    return resample(to_mono(data), rate, target_rate)


def fit_length(signal: np.ndarray, samples: int) -> np.ndarray:
    """Crop or zero-pad at the end to exactly ``samples``."""
    if signal.shape[0] >= samples:
        return signal[:samples]
    return np.pad(signal, (0, samples - signal.shape[0]))


def write_wav(path, signal: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM WAV, written to a temporary name and renamed when complete."""
    from audioprobe.io.atomic import atomic_path

    clipped = np.clip(np.asarray(signal, dtype=np.float64), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(tmp, clipped, sample_rate, subtype="PCM_16", format="WAV")


def is_audio_file(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS
