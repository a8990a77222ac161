"""Figures, saved atomically as PNG or SVG (by the file's extension)."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from audioprobe.io.atomic import replace_checked, temporary_beside  # noqa: E402


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
        replace_checked(tmp, path)
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
    """Figure 2 as paired differences: for each factor (row) and reference P or Q (column), the mean change
    of the distance to the reference that each edit causes, d(ref, M->P) - d(ref, M) and d(ref, M->Q) -
    d(ref, M), with the Bonferroni-adjusted confidence interval of that paired difference (statistics
    columns ci_low, ci_high, ci_level; they bound d(ref, M) - d(ref, edit), hence the sign flip). Means and
    intervals are those of the tests: over M's recordings (n_recordings), each recording's distances averaged
    first. A star marks p_t_bonferroni < 0.05, which is exactly when the interval excludes 0."""
    factors = list(dict.fromkeys(distances["factor"]))
    edits = ["M->P", "M->Q"]
    figure, axes = plt.subplots(len(factors), 2, figsize=(8, 3.4 * len(factors)), squeeze=False,
                                constrained_layout=True)
    for row, factor in enumerate(factors):
        for column, reference in enumerate(("P", "Q")):
            axis = axes[row, column]
            rows = [statistics.loc[statistics["label_b"] == f"{factor}: d({reference}, {edit})"].iloc[0]
                    for edit in edits]
            means = np.array([-r["mean_diff"] for r in rows])
            low = np.array([-r["ci_high"] for r in rows])
            high = np.array([-r["ci_low"] for r in rows])
            axis.bar(edits, means, yerr=[means - low, high - means], capsize=4, color=["tab:blue", "tab:orange"])
            axis.axhline(0, color="0.3", linewidth=0.8)
            for index, r in enumerate(rows):
                if r["p_t_bonferroni"] < 0.05:
                    top = high[index] if means[index] >= 0 else low[index]
                    axis.text(index, top, "*", ha="center", va="bottom" if means[index] >= 0 else "top",
                              fontsize=14)
            axis.set_title(f"{factor}: distance to {reference}", fontsize="medium")
            axis.set_ylabel(f"d({reference}, edit) − d({reference}, M)\n({space.replace('_', ' ')})")
            span = max(float(np.max(np.abs(np.r_[low, high]))), 1e-9)
            axis.set_ylim(-1.25 * span, 1.25 * span)
    recordings = "/".join(str(n) for n in dict.fromkeys(statistics["n_recordings"])) \
        if "n_recordings" in statistics else "?"
    figure.suptitle(f"Latent transfer at {layer}: mean paired difference over M's recordings (n = {recordings}), "
                    "Bonferroni-adjusted 95 % CI\n* = p < 0.05, paired t-test over recordings, Bonferroni",
                    fontsize="medium")
    save_figure(figure, path)
