"""A PyTorch module as an audioprobe model (``kind: torch_module``), and the adapter CREPE's entry reuses.

The module takes a waveform batch ``[items, samples]`` (float32, at the declared sample rate) and returns its
logits. Everything comes from hooks on named submodules, so any module works without changes:

- ``activations``: one forward pass with a forward hook on each requested layer;
- ``forward_from(layer, acts)``: the full forward on a placeholder input, with a hook that replaces the
  layer's output by ``acts`` (no graph surgery); it is exact when everything after the layer depends on the
  input only through the layer (a chain, as in CREPE), which is checked once per layer;
- channel masks: hooks multiplying a layer's output by a 0/1 vector along its channel axis;
- ``differentiable``: the same hooks on tensors that keep their graph.

With ``frame_samples`` set, each clip is cut into frames (every ``hop_samples``, padded by half a frame on
both sides, as CREPE does), each frame an item of the batch and a patch of the stored layer; otherwise the
whole clip is one item. A layer's output is stored over the axes patch, time, freq, channel: ``layouts``
says which of its axes after the batch are channel (c), time (t) and freq (f), in the module's order.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audioprobe.models.base import RELU_GRADIENTS, check_layout
from audioprobe.models.generic import GenericAdapter

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pt", ".pth")
DEFAULT_LAYOUTS = {1: "c", 2: "ct", 3: "cft"}  # by the number of axes after the batch: Linear, Conv1d, Conv2d


# --- what the registry reads without torch --------------------------------------------------------------------

def layer_paths(model_config: dict) -> dict[str, str]:
    """layer name -> submodule path: ``layers`` is a list of submodule paths or a {name: path} mapping."""
    layers = model_config["layers"]
    return dict(layers) if isinstance(layers, dict) else {path: path for path in layers}


def layer_names(model_config: dict) -> list[str]:
    return list(layer_paths(model_config))


def min_samples(model_config: dict) -> int:
    return int(model_config.get("min_samples") or model_config.get("frame_samples") or 1)


# --- framing -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Framing:
    """Clips cut into frames of ``frame_samples`` every ``hop_samples``, centred (padded by half a frame on
    both sides), each frame optionally normalised to zero mean and unit standard deviation (CREPE)."""
    frame_samples: int
    hop_samples: int
    normalise: bool = False

    def patches(self, clip_samples: int) -> int:
        return 1 + clip_samples // self.hop_samples

    def frames(self, waveforms):
        """[clips, samples] tensor -> [clips * patches, frame_samples] tensor."""
        import torch.nn.functional as F

        half = self.frame_samples // 2
        padded = F.pad(waveforms, (half, half))
        frames = padded.unfold(1, self.frame_samples, self.hop_samples)[:, :self.patches(waveforms.shape[1])]
        frames = frames.reshape(-1, self.frame_samples)
        if self.normalise:
            frames = frames - frames.mean(dim=1, keepdim=True)
            frames = frames / frames.std(dim=1, keepdim=True).clamp(min=1e-10)
        return frames


# --- layouts -------------------------------------------------------------------------------------------------

def to_canonical(tensor, layout: str, clips: int):
    """[clips * patches, *axes in ``layout`` order] -> [clips, patches, time, freq, channel] (sizes 1 where
    the layout has no such axis)."""
    present = [axis for axis in "tfc" if axis in layout]
    moved = tensor.permute(0, *[1 + layout.index(axis) for axis in present])
    sizes = {axis: moved.shape[1 + i] for i, axis in enumerate(present)}
    return moved.reshape(clips, -1, sizes.get("t", 1), sizes.get("f", 1), sizes["c"])


def from_canonical(tensor, layout: str):
    """The inverse of :func:`to_canonical`: [clips, patches, time, freq, channel] -> [items, *layout axes]."""
    present = [axis for axis in "tfc" if axis in layout]
    sizes = dict(zip("tfc", tensor.shape[2:]))
    items = tensor.reshape(-1, *[sizes[axis] for axis in present])
    return items.permute(0, *[1 + present.index(axis) for axis in layout])


# --- the adapter ---------------------------------------------------------------------------------------------

class TorchAdapter(GenericAdapter):
    """Any ``torch.nn.Module`` through hooks (see the module's docstring)."""

    framework = "torch"

    def __init__(self, module, *, name: str, sample_rate: int, layers: dict[str, str], layouts: dict[str, str],
                 head: str, scores: str = "softmax", framing: Framing | None = None, min_samples: int = 1,
                 weights_sha256: str = "", threads: int | None = None, config_key: str | None = None):
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.module = module.eval()  # batch norm and dropout in inference mode
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)
        self.name, self.sample_rate, self.framing = name, int(sample_rate), framing
        self.min_samples = max(int(min_samples), framing.frame_samples if framing else 1)
        self.weights_sha256 = weights_sha256
        self._start(config_key or f"models.{name}", scores)
        self.graph_errors = (RuntimeError,)
        submodules = dict(module.named_modules())
        for layer, path in {**layers, "head": head}.items():
            if path not in submodules:
                raise ValueError(f"{self._key}: the module has no submodule {path!r} (for {layer!r}); its "
                                 f"submodules are {', '.join(p for p in submodules if p)}")
        self._paths, self._layouts = dict(layers), dict(layouts)
        self._submodules, self._head, self._head_path = submodules, submodules[head], head
        self.head_layer = next((layer for layer, path in layers.items() if path == head), None)

    # --- interface -------------------------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return list(self._paths)

    def permute_weights(self, seed: int) -> None:
        """Every parameter (not the buffers: batch-norm running statistics stay), in named_parameters order."""
        from audioprobe.models.permutation import permuted_all, permuted_checksum

        parameters = [parameter for _, parameter in self.module.named_parameters()]
        values = permuted_all([parameter.detach().cpu().numpy() for parameter in parameters], seed)
        with self.torch.no_grad():
            for parameter, value in zip(parameters, values):
                parameter.copy_(self.torch.from_numpy(value))
        self.weights_sha256 = permuted_checksum(self.weights_sha256, seed)

    def layer_axes(self, layer: str) -> tuple[str, ...]:
        self.check_layers([layer])
        return ("patch", "time", "freq", "channel")

    def activations(self, waveforms: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
        layers = self.check_layers(layers)
        with self.torch.no_grad():
            waveforms = self._tensor(waveforms)
            captured = self._run(self._items(waveforms), len(waveforms), layers)
        return {layer: captured[layer].numpy() for layer in layers}

    def differentiable(self, layers: list[str], relu_gradient: str = "true"):
        """waveforms [clips, samples] (torch tensor) -> {layer: [clips, patches, time, freq, channel]} with
        their graph. With ``relu_gradient="fake"`` a layer that is an ``nn.ReLU`` passes gradients through
        unchanged (FakeReLU); other layers keep their true gradients."""
        layers = self.check_layers(layers)
        if relu_gradient not in RELU_GRADIENTS:
            raise ValueError(f"relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, not {relu_gradient!r}")

        def forward(waveforms):
            captured = self._run(self._items(waveforms), waveforms.shape[0], layers, fake_relu=relu_gradient == "fake")
            return {layer: captured[layer] for layer in layers}

        return forward

    # --- hooks -----------------------------------------------------------------------------------------------
    def _run(self, items, clips: int, layers: list[str], fake_relu: bool = False, replace: dict | None = None):
        """One forward pass over ``items`` (``clips`` clips' frames) with hooks: capture ``layers``
        (canonical), replace outputs (``replace``: {layer: function of the output}) and record the head's input
        (``_embedding``) and output (``_logits``)."""
        captured, handles = {}, []

        def capture(layer):
            def hook(submodule, inputs, output):
                if fake_relu and isinstance(submodule, self.torch.nn.ReLU):
                    output = inputs[0] + (output - inputs[0]).detach()
                if replace and layer in replace:
                    output = replace[layer](output)
                if layer in layers:
                    if layer in captured:  # a shared submodule (one nn.ReLU used after every conv) is no layer
                        raise ValueError(f"{self._key}.layers: {self._paths[layer]} runs more than once in a forward "
                                         "pass, so its output is not one layer: name a submodule that runs once")
                    captured[layer] = to_canonical(output, self._layout(layer, output), clips)
                return output
            return hook

        def head_hook(submodule, inputs, output):
            captured["_embedding"], captured["_logits"] = inputs[0], output

        try:
            for layer in set(layers) | set(replace or {}):
                handles.append(self._submodules[self._paths[layer]].register_forward_hook(capture(layer)))
            handles.append(self._head.register_forward_hook(head_hook))
            self.module(items)
        finally:
            for handle in handles:
                handle.remove()
        return captured

    def _continue_numpy(self, layer: str, acts: np.ndarray, masks: dict, seed: int | None) -> dict:
        torch = self.torch
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.no_grad():
            outputs = self._continue(layer, torch.as_tensor(acts), {name: torch.as_tensor(mask) for name, mask
                                                                   in masks.items()},
                                     self._placeholder(acts.shape[0] * acts.shape[1], generator))
        return {key: value.numpy() for key, value in outputs.items()}

    def _continue(self, layer: str, acts, masks: dict, placeholder) -> dict:
        def replace_with(output):
            # the layout comes from the output's rank; its sizes may differ (a placeholder shorter than the clip)
            substitute = from_canonical(acts, self._layout(layer, output))
            return self._masked(layer, substitute, masks)

        replace = {name: (lambda out, name=name: self._masked(name, out, masks)) for name in masks}
        replace[layer] = replace_with
        clips = acts.shape[0]
        captured = self._run(placeholder, clips, [], replace=replace)
        logits = captured["_logits"].reshape(clips, acts.shape[1], -1)
        scores = self.torch.sigmoid(logits) if self._scores == "sigmoid" else self.torch.softmax(logits, dim=-1)
        outputs = {"logits": logits, "scores": scores}
        if self._paths[layer] != self._head_path:  # continued from the head, its input (the embedding) is unknown
            outputs["embedding"] = captured["_embedding"].reshape(clips, acts.shape[1], -1)
        return outputs

    def _masked(self, layer: str, output, masks: dict):
        if layer not in masks:
            return output
        axis = 1 + self._layout(layer, output).index("c")
        shape = [1] * output.dim()
        shape[axis] = -1
        return output * masks[layer].reshape(shape)

    # --- inputs ----------------------------------------------------------------------------------------------
    def _tensor(self, waveforms: np.ndarray):
        return self.torch.as_tensor(np.asarray(waveforms, dtype=np.float32))

    def _items(self, waveforms):
        """[clips, samples] tensor -> the module's input items (a clip's frames, or the clip), a clip shorter than
        the module's minimum zero-padded at its end."""
        if waveforms.shape[1] < self.min_samples:
            waveforms = self.torch.nn.functional.pad(waveforms, (0, self.min_samples - waveforms.shape[1]))
        return self.framing.frames(waveforms) if self.framing else waveforms

    def _placeholder(self, items: int, generator=None):
        """Module inputs standing in for the audio before the replaced layer."""
        samples = self.framing.frame_samples if self.framing else self.min_samples
        if generator is None:
            return self.torch.zeros(items, samples)
        return self.torch.randn(items, samples, generator=generator)

    def _layout(self, layer: str, output) -> str:
        layout = self._layouts.get(layer) or self._default_layout(output)
        return check_layout(layout, output.dim() - 1, f"{self._key}.layouts.{layer}", DEFAULT_LAYOUTS)

    def _default_layout(self, output) -> str:
        ndim = output.dim() - 1
        if ndim not in DEFAULT_LAYOUTS:
            raise ValueError(f"{self._key}.layouts: give the layout of an output with {ndim} axes after the batch")
        return DEFAULT_LAYOUTS[ndim]


# --- building from the config --------------------------------------------------------------------------------

def import_class(target: str, config_key: str):
    """``package.module:Class`` (importable) or ``path/to/file.py:Class``."""
    where, _, attribute = target.rpartition(":")
    if not where or not attribute:
        raise ValueError(f"{config_key}: {target!r} is not 'package.module:Class' or 'path/to/file.py:Class'")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise ValueError(f"{config_key}: {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"audioprobe_user_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ValueError(f"{config_key}: cannot import {where} ({err}); install it in the rule's env or give "
                             "a file path, 'path/to/file.py:Class'") from err
    if not hasattr(module, attribute):
        raise ValueError(f"{config_key}: {where} has no {attribute!r}")
    return getattr(module, attribute)


def load_state_dict(module, path, config_key: str) -> str:
    """Load a state dict saved with ``torch.save(module.state_dict(), path)`` (``weights_only=True``: no code
    runs) into ``module``, naming any missing or unexpected key; returns the file's sha256."""
    import torch

    from audioprobe.io.download import sha256_of

    if not Path(path).is_file():
        raise FileNotFoundError(f"{config_key}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for a file that is not a state dict
        raise ValueError(f"{config_key}: {path} is not a state dict torch can load with weights_only=True "
                         f"({err}); save it with torch.save(module.state_dict(), path)") from err
    if not isinstance(state, dict):
        raise ValueError(f"{config_key}: {path} holds a {type(state).__name__}, not a state dict; save it with "
                         "torch.save(module.state_dict(), path)")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing, unexpected or mis-shaped parameters, all listed by torch
        raise ValueError(f"{config_key}: {path} does not fit the module: {err}") from err
    return sha256_of(path)


def framing_of(model_config: dict) -> Framing | None:
    if not model_config.get("frame_samples"):
        return None
    return Framing(int(model_config["frame_samples"]), int(model_config.get("hop_samples") or
                                                            model_config["frame_samples"]),
                   bool(model_config.get("normalise_frames", False)))


def build(name: str, model_config: dict, weights, threads: int | None = None) -> TorchAdapter:
    cls = import_class(model_config["module"], f"models.{name}.module")
    module = cls(**(model_config.get("arguments") or {}))
    sha256 = load_state_dict(module, weights, f"models.{name}.weights")
    paths = layer_paths(model_config)
    return TorchAdapter(module, name=name, sample_rate=model_config["sample_rate"], layers=paths,
                        layouts=model_config.get("layouts") or {}, head=model_config.get("head") or
                        list(paths.values())[-1], scores=model_config.get("scores", "softmax"),
                        framing=framing_of(model_config), min_samples=min_samples(model_config),
                        weights_sha256=sha256, threads=threads)
