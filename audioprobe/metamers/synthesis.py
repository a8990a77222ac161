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


def synthesise(forward, targets: np.ndarray, layers: list[str], settings: Settings,
               log: logging.Logger = log) -> tuple[np.ndarray, np.ndarray]:
    """Metamers for every target sound at every layer.

    ``forward(waveforms, relu_gradient="true")`` maps a waveform batch [rows, samples] (tf tensor) to
    {layer: activations}; it must be differentiable, and the loss calls it with
    ``relu_gradient=settings.relu_gradient`` (see the module docstring). Returns metamers [len(layers), sounds, samples] and the loss curve
    [checkpoints, len(layers), sounds] (checkpoints every ``log_every`` steps, plus the last).
    A row whose loss diverges keeps NaN values; rows do not interact, so the others are unaffected.
    """
    import tensorflow as tf

    if settings.loss not in LOSSES:
        raise ValueError(f"metamers.synthesis.loss must be one of {', '.join(LOSSES)}, not {settings.loss!r}")
    if settings.relu_gradient not in RELU_GRADIENTS:
        raise ValueError(f"metamers.synthesis.relu_gradient must be one of {', '.join(RELU_GRADIENTS)}, "
                         f"not {settings.relu_gradient!r}")
    targets = np.asarray(targets, np.float32)
    sounds, samples = targets.shape
    rows = len(layers) * sounds
    layer_of_row = np.repeat(np.arange(len(layers)), sounds)
    tf.keras.utils.set_random_seed(settings.seed)
    reference = forward(tf.constant(targets))
    wanted = {layer: tf.constant(np.tile(reference[layer].numpy(), (len(layers), *[1] * (reference[layer].ndim - 1))))
              for layer in layers}
    masks = {layer: tf.constant((layer_of_row == i).astype(np.float32)) for i, layer in enumerate(layers)}
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
            values = losses.numpy()
            diverged = ~np.isfinite(values)
            if diverged.any():  # rows are independent: the others go on; validation flags these
                log.warning("step %d: loss is NaN/Inf for %d of %d rows (layers %s)", iteration, diverged.sum(),
                            rows, sorted({layers[layer_of_row[i]] for i in np.flatnonzero(diverged)}))
            curve.append(values.reshape(len(layers), sounds))
            log.info("step %d/%d: median loss per layer %s (%.1f s)", iteration, settings.iterations,
                     ", ".join(f"{layer} {np.median(v):.3g}" for layer, v in zip(layers, curve[-1])),
                     time.monotonic() - started)
    return waveform.numpy().reshape(len(layers), sounds, samples), np.stack(curve)
