"""Scores of a neuron explanation against the neuron's activations, and NeuronEval's sanity checks of a score
(Oikarinen et al., ICML 2025, as their code computes them: github.com/Trustworthy-ML-Lab/Neuron_Eval,
``metrics.py`` and the sanity-check notebooks; notes in docs/research/issue-16-scoring-explanations.md).

A neuron's activations ``a`` and an explanation's concept vector ``c`` (its presence in each clip, in [0, 1])
are two vectors over the same clips. The five metrics that pass NeuronEval's checks:

- ``f1``, ``iou``: on the top-``alpha`` clips of the neuron (every clip at or above the k-th largest activation,
  k = ceil(alpha n), ties included) against the clips where c >= 0.5;
- ``auprc``: average precision with the concept as the score and the neuron's top-``alpha`` clips as the labels
  (NeuronEval's orientation; the other one fails the extra-labels check);
- ``pearson``: Pearson r of a and c (NeuronEval's z-score dot product / n is r (n - 1) / n);
- ``cosine``: of the raw activations and c (not shift-invariant: an offset in the activations changes it).

The checks perturb c: ``missing_labels`` keeps each entry with probability 0.5 (about half the positives go),
``extra_labels`` adds positives so that their expected number doubles. A score passes a check on a neuron when
it drops by more than ``EPSILON`` of the metric's range under the perturbation.

This module is the computational core of issue 16; the workflow does not call it yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

EPSILON = 0.001  # NeuronEval's minimal normalised decrease


def _vectors(a, c) -> tuple[np.ndarray, np.ndarray]:
    a, c = np.asarray(a, dtype=float).ravel(), np.asarray(c, dtype=float).ravel()
    if a.shape != c.shape or a.size < 2:
        raise ValueError(f"activations and concept must be vectors over the same clips (at least 2), got {a.shape} "
                         f"and {c.shape}")
    if not (np.isfinite(a).all() and np.isfinite(c).all()) or c.min() < 0 or c.max() > 1:
        raise ValueError("activations must be finite and the concept's presence must lie in [0, 1]")
    return a, c


def top_fraction(a, alpha: float) -> np.ndarray:
    """The neuron's top-``alpha`` clips as 0/1: at or above the k-th largest value, k = ceil(alpha n)."""
    a = np.asarray(a, dtype=float).ravel()
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    k = int(np.ceil(alpha * a.size))
    cutoff = np.partition(a, a.size - k)[a.size - k]
    return (a >= cutoff).astype(float)


def f1(a, c, alpha: float) -> float:
    a, c = _vectors(a, c)
    active, present = top_fraction(a, alpha), (c >= 0.5).astype(float)
    tp = active @ present
    denominator = 2 * tp + active @ (1 - present) + (1 - active) @ present
    return float(2 * tp / denominator) if denominator else 0.0


def iou(a, c, alpha: float) -> float:
    a, c = _vectors(a, c)
    active, present = top_fraction(a, alpha), (c >= 0.5).astype(float)
    overlap = active @ present
    union = active.sum() + present.sum() - overlap
    return float(overlap / union) if union else 0.0


def auprc(a, c, alpha: float) -> float:
    from sklearn.metrics import average_precision_score

    a, c = _vectors(a, c)
    return float(average_precision_score(top_fraction(a, alpha), c))


def pearson(a, c, alpha: float | None = None) -> float:
    a, c = _vectors(a, c)
    if np.ptp(a) == 0 or np.ptp(c) == 0:
        return 0.0
    return float(np.corrcoef(a, c)[0, 1])


def cosine(a, c, alpha: float | None = None) -> float:
    a, c = _vectors(a, c)
    norms = np.linalg.norm(a) * np.linalg.norm(c)
    return float(a @ c / norms) if norms else 0.0


class Metric(NamedTuple):
    score: Callable
    low: float
    high: float


METRICS = {"f1": Metric(f1, 0.0, 1.0), "iou": Metric(iou, 0.0, 1.0), "auprc": Metric(auprc, 0.0, 1.0),
           "pearson": Metric(pearson, -1.0, 1.0), "cosine": Metric(cosine, -1.0, 1.0)}


def missing_labels(c, rng: np.random.Generator) -> np.ndarray:
    """c with each entry kept with probability 0.5 (NeuronEval: c * (rand > 0.5))."""
    c = np.asarray(c, dtype=float)
    return c * (rng.random(c.shape) > 0.5)


def extra_labels(c, rng: np.random.Generator) -> np.ndarray:
    """c with positives added so that their expected number doubles: each entry gains 1 with probability
    sum(c) / (n - sum(c)), capped at 1."""
    c = np.asarray(c, dtype=float)
    total = c.sum()
    p = total / (c.size - total) if c.size > total else 1.0
    return np.minimum(c + (rng.random(c.shape) < p), 1.0)


def normalised_change(metric: Metric, a, c, perturbed, alpha: float) -> float:
    """(score with the perturbed concept - score with the concept) / the metric's range."""
    return (metric.score(a, perturbed, alpha) - metric.score(a, c, alpha)) / (metric.high - metric.low)


def sanity_checks(metric: Metric, a, c, alpha: float, seed: int = 0) -> dict[str, bool]:
    """Whether the score drops (by more than EPSILON of its range) when half the concept's labels go missing
    and when as many wrong ones are added."""
    rng = np.random.default_rng(seed)
    return {"missing_labels": normalised_change(metric, a, c, missing_labels(c, rng), alpha) < -EPSILON,
            "extra_labels": normalised_change(metric, a, c, extra_labels(c, rng), alpha) < -EPSILON}
