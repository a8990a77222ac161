import contextlib
import importlib
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("AUDIOPROBE_SHARED", REPO.parent / "shared"))


@contextlib.contextmanager
def deadline(seconds: int, what: str):
    """Fail instead of hanging: raise TimeoutError naming ``what`` if the block runs ``seconds`` (SIGALRM)."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: {what}")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def unavailable(message: str):
    """Something a test needs is missing: skip on a user's machine, fail in CI (CI set), where it must be there."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)


def require(module: str):
    """Import ``module`` for a test, or skip (fail in CI): ./setup.sh installs every optional framework."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        unavailable(f"{module} cannot be imported ({err}); ./setup.sh installs it")


def shared_path(*parts) -> Path:
    """A file under ../shared/: tests that need it fail in CI when it is missing, and skip elsewhere."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        unavailable(f"{path} is missing (set AUDIOPROBE_SHARED to the shared folder)")
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


def noise_clips(clips=3, samples=800, seed=1) -> np.ndarray:
    """[clips, samples] float32 Gaussian noise: inputs for a small network a test builds."""
    return np.random.default_rng(seed).standard_normal((clips, samples)).astype(np.float32)


def assert_head_continuation_is_the_graphs(adapter, head_mask: np.ndarray) -> None:
    """Continuing a generic adapter from its head (its logits, which it returns without running the graph)
    gives what the graph's own continuation gives, unmasked and with ``head_mask`` on the head."""
    head = adapter.activations(noise_clips(), [adapter.head_layer])[adapter.head_layer]
    for masks in ({}, {adapter.head_layer: head_mask}):
        out = adapter.forward_from(adapter.head_layer, head, masks)
        graph = adapter._continue_numpy(adapter.head_layer, head, masks, None)
        assert out.keys() == graph.keys() == {"logits", "scores"}
        for key in out:
            np.testing.assert_allclose(out[key], graph[key], atol=1e-6)


def unfolded_yamnet_variables(weights, seed=0) -> dict[str, np.ndarray]:
    """Unfolded variables named as in YAMNet's Keras model (as TF Hub's SavedModel has them), whose batch norm
    folds back into ``weights``."""
    from audioprobe.models.yamnet_weights import BATCHNORM_EPSILON

    rng = np.random.default_rng(seed)
    out = {}
    for index, parts in enumerate(weights.layers, start=1):
        for part, (kernel, bias) in parts.items():
            name = f"layer{index}/{'conv' if part == 'conv' else part + '_conv'}"
            channels = bias.shape[0]
            mean = rng.normal(size=channels).astype(np.float32)
            variance = rng.uniform(0.5, 2.0, channels).astype(np.float32)
            scale = 1 / np.sqrt(variance + BATCHNORM_EPSILON)
            axis = (None, None, slice(None), None) if part == "depthwise" else (None, None, None, slice(None))
            out[f"{name}/{'depthwise_kernel' if part == 'depthwise' else 'kernel'}"] = kernel / scale[axis]
            out[f"{name}/bn/beta"] = bias + mean * scale
            out[f"{name}/bn/moving_mean"], out[f"{name}/bn/moving_variance"] = mean, variance
    out["logits/kernel"], out["logits/bias"] = weights.logits
    return out


# --- finished workflow runs, shared by the whole session ------------------------------------------------------

def pytest_collection_modifyitems(items):
    """The SLURM run goes first: it mostly waits on its scheduler, so the session's local tiny runs, which it
    starts after its own, fill the cores meanwhile instead of running before it."""
    items.sort(key=lambda item: item.path.name != "test_slurm.py")  # stable: the rest keep their order


@pytest.fixture(scope="session")
def second_run(tmp_path_factory, yamnet_tflite):
    """Another clean tiny run for the determinism test, in the background with a random PYTHONHASHSEED (as
    users run it). ``tiny_run`` starts it first when the session holds a test that asks for it, so the two
    runs share the two cores. Call the fixture's value to wait for the run's folder."""
    from tests import snakemake_cli

    workdir = tmp_path_factory.mktemp("second")
    log = workdir.parent / f"{workdir.name}.log"
    process = snakemake_cli.start(workdir, log=log, hash_seed="random", weights=yamnet_tflite)

    def finished() -> Path:
        snakemake_cli.finish(process, log)
        return workdir

    yield finished
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="session")
def tiny_run(request, tmp_path_factory, yamnet_tflite) -> Path:
    """The tiny config (tests/configs/tiny.yaml, all three studies) run once per session in a fresh folder.
    Tests only read it: a test that adds or changes files works on ``copy_run(tiny_run, ...)``."""
    from tests import snakemake_cli

    if any("second_run" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("second_run")
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake_cli.run(workdir, weights=yamnet_tflite)
    return workdir


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a finished run (results and Snakemake's records) that a test may change."""
    shutil.copytree(run, destination, symlinks=True)
    return destination
