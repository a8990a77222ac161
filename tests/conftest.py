import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUDIOPROBE_SHARED", REPO.parent / "shared"))


def shared_path(*parts) -> Path:
    """A file under ../shared/: tests that need it fail in CI when it is missing, and skip elsewhere."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        message = f"{path} is missing (set AUDIOPROBE_SHARED to the shared folder)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def yamnet_tflite() -> Path:
    return shared_path("models", "yamnet", "yamnet.tflite")


@pytest.fixture
def write_wav(tmp_path):
    def write(name, data, rate=16000, subtype="PCM_16"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.asarray(data), rate, subtype=subtype)
        return path

    return write


def tone(seconds=1.0, rate=16000, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)
