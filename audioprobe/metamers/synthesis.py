"""Metamer synthesis: noise optimised until a layer's activations match those of a natural sound.

Every (sound, layer) pair is one row of a single batch: one forward pass computes all requested layers
for all rows, and each row's loss reads only its own layer, so many sounds and layers are optimised
together. Following Feather et al. (2019) and Lu: the waveform starts as seeded pink noise, Adam with a
learning rate of 1e-3 decaying by 0.95 every 1,000 steps, no clipping of the waveform; Lu ran 1,500
iterations (Feather et al. 15,000), the default here.

Matched ReLUs: with ``relu_gradient="fake"`` (the default, as Feather et al.) a matched layer that is a
ReLU output is read through a FakeReLU (ReLU forward, identity gradient), so units that are off in the
metamer but on in the target still get a gradient; ``"true"`` uses the ReLU's own gradient (zero where
the pre-activation is negative). The network's ``forward`` applies it: synthesis calls
``forward(waveforms, relu_gradient=...)`` in its loss, and ``forward(waveforms)`` (true ReLUs) for the
targets, whose values are the same either way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from audioprobe.models.base import RELU_GRADIENTS

log = logging.getLogger(__name__)
LOSSES = ("normalized", "sum_squares")


def pink_noise(rng: np.random.Generator, rows: int, samples: int, rms: float = 0.01) -> np.ndarray:
    """Noise with a 1/f power spectrum (1/sqrt(f) amplitude), zero mean, scaled to ``rms``."""
    spectrum = np.fft.rfft(rng.standard_normal((rows, samples)), axis=1)
    frequency = np.arange(spectrum.shape[1])
    spectrum[:, 1:] /= np.sqrt(frequency[1:])
    spectrum[:, 0] = 0
    noise = np.fft.irfft(spectrum, samples, axis=1)
    noise -= noise.mean(axis=1, keepdims=True)
    return (noise * rms / np.sqrt(np.mean(noise ** 2, axis=1, keepdims=True))).astype(np.float32)


@dataclass
class Settings:
    iterations: int = 1500
    learning_rate: float = 1e-3
    decay_rate: float = 0.95
    decay_steps: int = 1000
    init_rms: float = 0.01
    loss: str = "normalized"
    relu_gradient: str = "fake"
    seed: int = 0
    log_every: int = 250


FRAMEWORKS = ("tensorflow", "torch")
ADAM_EPSILON = 1e-7  # Keras's default, which the PyTorch path uses too


def synthesise(forward, targets: np.ndarray, layers: list[str], settings: Settings,
               log: logging.Logger = log, framework: str = "tensorflow") -> tuple[np.ndarray, np.ndarray]:
    """Metamers for every target sound at every layer.

    ``forward(waveforms, relu_gradient="true")`` maps a waveform batch [rows, samples] (a tensor of
    ``framework``, tensorflow or torch) to {layer: activations}; it must be differentiable, and the loss calls
    it with ``relu_gradient=settings.relu_gradient`` (see the module docstring). Returns metamers [len(layers),
    sounds, samples] and the loss curve [checkpoints, len(layers), sounds] (checkpoints every ``log_every``
    steps, plus the last). A row whose loss diverges keeps NaN values; rows do not interact, so the others are
    unaffected. Both frameworks run the same algorithm: Adam (epsilon 1e-7) with the learning rate decaying
    smoothly by ``decay_rate`` every ``decay_steps`` (Keras adds epsilon before Adam's bias correction of the
    second moment and PyTorch after it, which differs only where gradients are near epsilon).
    """
    if settings.loss not in LOSSES:
        raise ValueError(f"metamers.synthesis.loss must be one of {', '.join(LOSSES)}, not {settings.loss!r}")
    if settings.relu_gradient not in RELU_GRADIENTS:
        raise ValueError(f"metamers.synthesis.relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, "
                         f"not {settings.relu_gradient!r}")
    if framework not in FRAMEWORKS:
        raise ValueError(f"cannot synthesise metamers in {framework!r}; audioprobe knows {', '.join(FRAMEWORKS)}")
    targets = np.asarray(targets, np.float32)
    run = _synthesise_torch if framework == "torch" else _synthesise_tensorflow
    return run(forward, targets, layers, settings, log)


class _Rows:
    """Which layer each optimised row matches: rows are (layer, sound) pairs, layer-major."""

    def __init__(self, layers: list[str], sounds: int):
        self.layers, self.sounds = layers, sounds
        self.count = len(layers) * sounds
        self.layer_of_row = np.repeat(np.arange(len(layers)), sounds)

    def mask(self, index: int) -> np.ndarray:
        return (self.layer_of_row == index).astype(np.float32)

    def checkpoint(self, iteration: int, values: np.ndarray, settings: Settings, curve: list, started: float,
                   log: logging.Logger) -> None:
        diverged = ~np.isfinite(values)
        if diverged.any():  # rows are independent: the others go on; validation flags these
            log.warning("step %d: loss is NaN/Inf for %d of %d rows (layers %s)", iteration, diverged.sum(),
                        self.count, sorted({self.layers[self.layer_of_row[i]] for i in np.flatnonzero(diverged)}))
        curve.append(values.reshape(len(self.layers), self.sounds))
        log.info("step %d/%d: median loss per layer %s (%.1f s)", iteration, settings.iterations,
                 ", ".join(f"{layer} {np.median(v):.3g}" for layer, v in zip(self.layers, curve[-1])),
                 time.monotonic() - started)


def _synthesise_torch(forward, targets, layers, settings, log):
    import torch

    sounds, samples = targets.shape
    rows = _Rows(layers, sounds)
    torch.manual_seed(settings.seed)
    with torch.no_grad():
        reference = forward(torch.as_tensor(targets))
    wanted = {layer: reference[layer].detach().repeat(len(layers), *[1] * (reference[layer].dim() - 1))
              for layer in layers}
    masks = {layer: torch.as_tensor(rows.mask(i)) for i, layer in enumerate(layers)}
    norms = {layer: (wanted[layer].reshape(rows.count, -1) ** 2).sum(dim=1).clamp(min=1e-12) for layer in layers}
    waveform = torch.nn.Parameter(torch.as_tensor(pink_noise(np.random.default_rng(settings.seed), rows.count,
                                                             samples, settings.init_rms)))
    optimiser = torch.optim.Adam([waveform], lr=settings.learning_rate, eps=ADAM_EPSILON)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: settings.decay_rate ** (step / settings.decay_steps))
    curve, started = [], time.monotonic()
    for iteration in range(1, settings.iterations + 1):
        outputs = forward(waveform, relu_gradient=settings.relu_gradient)
        losses = torch.zeros(rows.count)
        for layer in layers:
            error = ((outputs[layer] - wanted[layer]).reshape(rows.count, -1) ** 2).sum(dim=1)
            if settings.loss == "normalized":
                error = error / norms[layer]
            losses = losses + masks[layer] * error
        optimiser.zero_grad()
        losses.sum().backward()
        optimiser.step()
        schedule.step()
        if iteration % settings.log_every == 0 or iteration == settings.iterations:
            rows.checkpoint(iteration, losses.detach().numpy().copy(), settings, curve, started, log)
    return waveform.detach().numpy().reshape(len(layers), sounds, samples), np.stack(curve)


def _synthesise_tensorflow(forward, targets, layers, settings, log):
    import tensorflow as tf

    sounds, samples = targets.shape
    rows_of = _Rows(layers, sounds)
    rows = rows_of.count
    tf.keras.utils.set_random_seed(settings.seed)
    reference = forward(tf.constant(targets))
    wanted = {layer: tf.constant(np.tile(reference[layer].numpy(), (len(layers), *[1] * (reference[layer].ndim - 1))))
              for layer in layers}
    masks = {layer: tf.constant(rows_of.mask(i)) for i, layer in enumerate(layers)}
    norms = {layer: tf.maximum(tf.reduce_sum(tf.reshape(wanted[layer], [rows, -1]) ** 2, axis=1), 1e-12)
             for layer in layers}
    noise = pink_noise(np.random.default_rng(settings.seed), rows, samples, settings.init_rms)
    waveform = tf.Variable(noise)
    schedule = tf.keras.optimizers.schedules.ExponentialDecay(settings.learning_rate, settings.decay_steps,
                                                              settings.decay_rate)
    optimiser = tf.keras.optimizers.Adam(schedule)

    def row_losses(x):
        outputs = forward(x, relu_gradient=settings.relu_gradient)
        total = tf.zeros([rows])
        for layer in layers:
            error = tf.reduce_sum(tf.reshape(outputs[layer] - wanted[layer], [rows, -1]) ** 2, axis=1)
            if settings.loss == "normalized":
                error = error / norms[layer]
            total += masks[layer] * error
        return total

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            losses = row_losses(waveform)
            total = tf.reduce_sum(losses)
        optimiser.apply_gradients([(tape.gradient(total, waveform), waveform)])
        return losses

    curve, started = [], time.monotonic()
    for iteration in range(1, settings.iterations + 1):
        losses = step()
        if iteration % settings.log_every == 0 or iteration == settings.iterations:
            rows_of.checkpoint(iteration, losses.numpy(), settings, curve, started, log)
    return waveform.numpy().reshape(len(layers), sounds, samples), np.stack(curve)
