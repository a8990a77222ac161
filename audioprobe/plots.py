"""Figures, saved atomically as PNG or SVG (by the file's extension)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audioprobe.io.atomic import temporary_beside  # noqa: E402


FORMATS = (".png", ".svg")


def save_figure(figure, path) -> None:
    """Save as PNG or SVG (by extension), atomically and reproducibly: the same figure gives the same file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the figure format from {path.name!r}: end the path in {' or '.join(FORMATS)}")
    tmp = temporary_beside(path)
    metadata = {"Date": None} if suffix == ".svg" else {"Software": None}
    try:
        with matplotlib.rc_context({"svg.hashsalt": "audioprobe", "svg.fonttype": "none"}):
            figure.savefig(tmp, format=suffix[1:], dpi=150, metadata=metadata)
        os.replace(tmp, path)
    finally:
        plt.close(figure)
        if os.path.exists(tmp):
            os.unlink(tmp)


def plot_curve(curve, path, title: str) -> None:
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(curve["epoch"], curve["train_loss"], label="training")
    axis.plot(curve["epoch"], curve["val_loss"], label="validation")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss (nats per dimension)")
    axis.set_title(title)
    axis.legend()
    save_figure(figure, path)


def plot_factor_scatter(points: np.ndarray, labels: dict, factors, path, title: str) -> None:
    """Two panels of the same points (factor dimensions as axes), coloured by each factor."""
    figure, axes = plt.subplots(1, len(factors), figsize=(5 * len(factors), 4.2), sharex=True, sharey=True)
    for axis, factor in zip(np.atleast_1d(axes), factors):
        for name in sorted(set(labels[factor])):
            chosen = labels[factor] == name
            axis.scatter(points[chosen, 0], points[chosen, 1], s=9, alpha=0.7, label=name)
        axis.set_xlabel(f"{factors[0]} dimension")
        axis.set_ylabel(f"{factors[1]} dimension")
        axis.set_title(f"coloured by {factor}")
        axis.legend(fontsize=7, markerscale=1.5)
    figure.suptitle(title)
    save_figure(figure, path)


def plot_transfer(distances, statistics, path, space: str, layer: str) -> None:
    """Figure 2: mean distance to P and to Q for M, M->P and M->Q (± SE), one row per factor."""
    factors = list(dict.fromkeys(distances["factor"]))
    conditions = ["M", "M->P", "M->Q"]
    figure, axes = plt.subplots(len(factors), 2, figsize=(9, 3.6 * len(factors)), squeeze=False,
                             constrained_layout=True)
    for row, factor in enumerate(factors):
        for column, reference in enumerate(("P", "Q")):
            axis = axes[row, column]
            chosen = distances[(distances.factor == factor) & (distances.reference == reference)]
            groups = [chosen[chosen.condition == c]["distance"] for c in conditions]
            means = [g.mean() for g in groups]
            errors = [g.std(ddof=1) / np.sqrt(len(g)) for g in groups]
            axis.bar(conditions, means, yerr=errors, capsize=4, color=["0.6", "tab:blue", "tab:orange"])
            for index, condition in enumerate(conditions[1:], start=1):
                name = f"{factor}: d({reference}, {condition})"
                p = statistics.loc[statistics.comparison.str.endswith(name), "p_t_bonferroni"]
                if len(p) and p.iloc[0] < 0.05:
                    axis.text(index, means[index] + errors[index], "*", ha="center", va="bottom", fontsize=14)
            axis.set_title(f"{factor}: distance to {reference}")
            axis.set_ylabel(f"Euclidean distance ({space.replace('_', ' ')})")
            low = min(m - e for m, e in zip(means, errors))
            high = max(m + e for m, e in zip(means, errors))
            axis.set_ylim(max(0.0, low - 0.5 * (high - low)), high + 0.3 * (high - low))
    figure.suptitle(f"Latent transfer at {layer}: * = p < 0.05, paired t-test, Bonferroni")
    save_figure(figure, path)
