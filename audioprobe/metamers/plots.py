"""Figures of Study 2: natural sounds next to their metamers, layer by layer."""

from __future__ import annotations

import numpy as np

from audioprobe.plots import plt, save_figure


def representation(net, waves: np.ndarray) -> tuple[np.ndarray, str]:
    """The network's own input representation when it has one (e.g. a cochleagram), else a log spectrogram
    (400-sample Hann frames every 160 samples, in NumPy so that it needs no framework)."""
    waves = np.nan_to_num(waves).astype(np.float32)
    frontend = getattr(net, "frontend", None)
    if frontend is not None:
        import tensorflow as tf

        return np.asarray(frontend(tf.constant(waves))), type(frontend).__name__
    frames = np.lib.stride_tricks.sliding_window_view(waves, 400, axis=1)[:, ::160]
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(401)[:-1].astype(np.float32), 512, axis=-1))
    return np.log(spectrum + 1e-4).transpose(0, 2, 1), "log spectrogram"


def plot_metamers(made: dict, net, path, title: str, sounds: int = 2) -> None:
    """Rows: target sounds; columns: the natural sound, then its metamer at each layer."""
    layers = made["layers"]
    count = min(sounds, len(made["clip_id"]))
    figure, axes = plt.subplots(count, len(layers) + 1, figsize=(2.2 * (len(layers) + 1), 2.0 * count),
                                squeeze=False, constrained_layout=True)
    natural, kind = representation(net, made["targets"][:count])
    for row in range(count):
        images = [natural[row]] + [representation(net, made["metamers"][i, row:row + 1])[0][0] for i in range(len(layers))]
        low, high = np.percentile(natural[row], [1, 99.5])
        for column, (image, name) in enumerate(zip(images, ["natural", *layers])):
            axis = axes[row, column]
            axis.imshow(image, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="magma")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=8)
            if column == 0:
                axis.set_ylabel(f"{made['word'][row]}\n{made['clip_id'][row][-14:]}", fontsize=7)
    figure.suptitle(f"{title}: {kind} of natural sounds and their metamers")
    save_figure(figure, path)
