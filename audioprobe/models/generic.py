"""What the two generic adapters share (PyTorch modules through hooks, Keras models through their graph):
layer shapes from one probe pass per clip length, checked channel masks, and continuing a network from a
layer by running it on a placeholder input with the layer's output replaced, once checked that the layer is
a cut (no path from the input goes around it)."""

from __future__ import annotations

import numpy as np

from audioprobe.models.base import CUT_TOLERANCE, SCORES, ModelAdapter, scores_of


class GenericAdapter(ModelAdapter):
    """Subclasses set ``_key`` (the config key errors name) and implement ``_continue_numpy(layer, acts, masks,
    seed)``: the outputs as NumPy arrays, continued from ``layer``'s activations on a placeholder input (zeros
    for ``seed`` None, else seeded noise), ``masks`` being {layer: 0/1 vector}. ``graph_errors`` are the
    framework's errors for a forward pass that cannot run."""

    graph_errors: tuple[type[BaseException], ...] = ()

    def _start(self, key: str, scores: str) -> None:
        if scores not in SCORES:
            raise ValueError(f"{key}.scores: {scores!r} is not one of {', '.join(SCORES)}")
        self._key, self._scores, self.scores = key, scores, scores
        self._checked_cuts: set[str] = set()
        self._shapes: dict[int, dict[str, tuple[int, ...]]] = {}

    def layer_shape(self, layer: str, clip_samples: int) -> tuple[int, ...]:
        """From one probe pass of a silent clip over every layer, kept per clip length."""
        self.check_layers([layer])
        if clip_samples not in self._shapes:
            probe = np.zeros((1, max(clip_samples, self.min_samples)), np.float32)
            self._shapes[clip_samples] = {name: tuple(value.shape[1:])
                                          for name, value in self.activations(probe, self.layers()).items()}
        return self._shapes[clip_samples][layer]

    def forward_from(self, layer: str, activations: np.ndarray,
                     channel_masks: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """The outputs with ``layer``'s output replaced by ``activations`` [clips, patches, time, freq,
        channel] and the channels ``channel_masks`` zero switched off in ``layer`` and later layers."""
        self.check_layers([layer])
        masks = self._checked_masks(layer, channel_masks or {})
        acts = np.asarray(activations, dtype=np.float32)
        if layer == self.head_layer and acts.shape[2:4] == (1, 1):
            return self._from_logits(acts * masks.get(layer, np.float32(1)))
        self._check_cut(layer, acts[:1])
        return self._continue_numpy(layer, acts, masks, None)

    def _from_logits(self, logits: np.ndarray) -> dict[str, np.ndarray]:
        """Continued from the head, whose activations are the logits (one vector per patch), the network has
        nothing left to run: the outputs are the logits and their scores (the embedding, the head's input, is
        not known)."""
        logits = logits.reshape(*logits.shape[:2], -1)
        return {"logits": logits, "scores": scores_of(logits, self._scores)}

    def _checked_masks(self, layer: str, channel_masks: dict) -> dict[str, np.ndarray]:
        self.check_layers(list(channel_masks))
        order = self.layers()
        early = [name for name in channel_masks if order.index(name) < order.index(layer)]
        if early:
            raise ValueError(f"cannot mask {early[0]} when continuing from the later layer {layer}")
        return {name: np.asarray(mask, dtype=np.float32) for name, mask in channel_masks.items()}

    def _check_cut(self, layer: str, acts: np.ndarray) -> None:
        """Once per layer: the outputs must not depend on the input except through ``layer`` (a skip connection
        around it would carry the placeholder's activations), so two different placeholders must agree."""
        if layer in self._checked_cuts:
            return
        try:
            quiet = self._continue_numpy(layer, acts, {}, None)["logits"]
            noisy = self._continue_numpy(layer, acts, {}, 0)["logits"]
        except self.graph_errors as err:
            raise ValueError(self._not_a_cut(layer, f"the forward failed: {err}")) from err
        difference = float(np.abs(quiet - noisy).max())
        if difference > CUT_TOLERANCE * max(1.0, float(np.abs(quiet).max())):
            raise ValueError(self._not_a_cut(layer, f"two placeholder inputs changed the logits by {difference:.3g}"))
        self._checked_cuts.add(layer)

    def _not_a_cut(self, layer: str, why: str) -> str:
        return (f"{self._key}: the network cannot be continued from {layer!r} ({why}): something after it reads "
                "the input by another path (a skip connection around it). Continue from a layer at a block "
                "boundary, one that every path from the input passes through.")
