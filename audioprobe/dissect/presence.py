"""A concept's presence in each held-out clip, in [0, 1], for scoring explanations.

Where the dataset's labels name the concept (a label value, compared without case and with "_" as a space),
its presence is read from them: 1 where the clip has that value, else 0. Otherwise it is the similarity of
the clip's caption to the concept, calibrated on the labelled clips as NeuronEval and Linear-Explanations do
for CLIP: ``sigmoid(a (cos + b))``, with (a, b) the grid point that minimises the binary cross-entropy against
the label values' one-hot presence over every held-out clip.
"""

from __future__ import annotations

import numpy as np

from audioprobe.dissect.text import concept_text

SLOPES = np.concatenate([[0.1, 0.25, 0.5, 0.75, 1.0], np.arange(2, 152, 2)])  # Linear-Explanations' grid
OFFSETS = np.round(np.arange(-1.0, 1.0001, 0.01), 2)


def _key(concept: str) -> str:
    return concept_text(str(concept)).strip().lower()


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


def fit_sigmoid(cosines, targets) -> tuple[float, float]:
    """(a, b) of ``sigmoid(a (cos + b))`` with the least binary cross-entropy against 0/1 ``targets``."""
    cos, y = np.asarray(cosines, dtype=float).ravel(), np.asarray(targets, dtype=float).ravel()
    if cos.shape != y.shape or not ((y == 0) | (y == 1)).all() or y.min() == y.max():
        raise ValueError("the presence calibration needs 0/1 targets of both kinds, one per similarity")
    best = (np.inf, 0.0, 0.0)
    for a in SLOPES:
        p = np.clip(sigmoid(a * (cos[None, :] + OFFSETS[:, None])), 1e-7, 1 - 1e-7)
        loss = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean(axis=1)
        i = int(np.argmin(loss))
        if loss[i] < best[0]:
            best = (float(loss[i]), float(a), float(OFFSETS[i]))
    return best[1], best[2]


class ConceptPresence:
    """fit on the held-out clips' captions and labels, then ``transform(concepts)`` -> [clips, concepts]."""

    def __init__(self, encode):
        self.encode = encode  # texts -> L2-normalised rows

    def fit(self, captions: list[str], labels: dict[str, list]):
        if not labels:
            raise ValueError("the held-out clips have no label columns: concept presence is calibrated on labels")
        self.captions_ = self.encode(list(captions))
        self.label_values_ = {}
        for column, values in labels.items():
            for value in dict.fromkeys(map(str, values)):
                self.label_values_.setdefault(_key(value), (column, value))
        self.labels_ = {column: np.asarray(values).astype(str) for column, values in labels.items()}
        names = list(self.label_values_)
        cosines = self.captions_ @ self.encode([concept_text(self.label_values_[k][1]) for k in names]).T
        targets = np.column_stack([self._from_labels(k) for k in names])
        self.slope_, self.offset_ = fit_sigmoid(cosines, targets)
        return self

    def _from_labels(self, key: str) -> np.ndarray:
        column, value = self.label_values_[key]
        return (self.labels_[column] == value).astype(float)

    def source(self, concept: str) -> str:
        return "labels" if _key(concept) in self.label_values_ else "captions"

    def transform(self, concepts: list[str]) -> np.ndarray:
        out = np.zeros((len(self.captions_), len(concepts)))
        free = [i for i, c in enumerate(concepts) if self.source(c) == "captions"]
        for i, concept in enumerate(concepts):
            if i not in free:
                out[:, i] = self._from_labels(_key(concept))
        if free:
            cos = self.captions_ @ self.encode([concept_text(concepts[i]) for i in free]).T
            out[:, free] = sigmoid(self.slope_ * (cos + self.offset_))
        return out
