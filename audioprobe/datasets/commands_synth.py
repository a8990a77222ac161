"""commands-synth: spoken keywords from espeak-ng (offline stand-in for mini Speech Commands).

Each utterance draws a voice (accent), a variant (speaker character), pitch and speaking rate from a
generator seeded by (seed, word, index); it is placed at a random point of a one-second canvas, scaled
to a random level and mixed with noise at a random SNR. Files follow the Speech Commands layout
``<word>/<speaker>_nohash_<n>.wav`` where the speaker is the voice+variant, so splits by speaker work.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from audioprobe.io import audio

DEFAULT_VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc"]
DEFAULT_VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt3"]


def espeak_binary() -> str:
    binary = shutil.which("espeak-ng")
    if not binary:
        raise RuntimeError("commands-synth needs espeak-ng: install it (Debian: apt-get install espeak-ng), "
                           "or use a folder of recorded keywords instead (datasets.<name>.kind: folder)")
    return binary


def speak(word: str, voice: str, variant: str, pitch: int, rate: int) -> tuple[np.ndarray, int]:
    """Raw espeak-ng output for one word: float32 mono and its sample rate."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "word.wav"
        command = [espeak_binary(), "-v", f"{voice}+{variant}", "-p", str(pitch), "-s", str(rate), "-w", str(wav),
                   word]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wav.exists():
            raise RuntimeError(f"espeak-ng failed for {' '.join(command)}: {result.stderr.strip()}")
        data, sample_rate = audio.read(wav)
    return audio.to_mono(data), sample_rate


def utterance(word: str, index: int, *, seed: int, voices, variants, pitch_range, rate_range, snr_db_range,
              sample_rate: int, seconds: float = 1.0) -> tuple[np.ndarray, str]:
    """One keyword clip and its speaker name."""
    rng = np.random.default_rng([seed, _word_key(word), index])
    voice = voices[rng.integers(len(voices))]
    variant = variants[rng.integers(len(variants))]
    pitch = int(rng.integers(pitch_range[0], pitch_range[1] + 1))
    rate = int(rng.integers(rate_range[0], rate_range[1] + 1))
    spoken, spoken_rate = speak(word, voice, variant, pitch, rate)
    spoken = _trim_silence(audio.resample(spoken, spoken_rate, sample_rate))
    canvas = np.zeros(int(round(seconds * sample_rate)), dtype=np.float32)
    spoken = spoken[: canvas.shape[0]]
    start = int(rng.integers(0, canvas.shape[0] - spoken.shape[0] + 1))
    canvas[start:start + spoken.shape[0]] = spoken / (np.max(np.abs(spoken)) + 1e-12)
    noise = rng.standard_normal(canvas.shape[0]).astype(np.float32)
    speech_power = np.mean(spoken.astype(np.float64) ** 2) / (np.max(np.abs(spoken)) ** 2 + 1e-12)
    noise *= np.sqrt(speech_power) * 10 ** (-rng.uniform(*snr_db_range) / 20)
    mixed = canvas + noise
    level = 10 ** (rng.uniform(-18, -2) / 20)
    speaker = f"{voice}+{variant}".replace("_", "-")
    return (mixed / (np.max(np.abs(mixed)) + 1e-12) * level).astype(np.float32), speaker


def _word_key(word: str) -> int:
    return int.from_bytes(word.encode()[:8].ljust(8, b"\0"), "little")


def _trim_silence(x: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) > threshold * (np.max(np.abs(x)) + 1e-12))
    return x[loud[0]: loud[-1] + 1] if loud.size else x
