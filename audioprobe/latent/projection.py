"""Standardise -> PCA -> standardise, fitted on the training split, stored as plain arrays.

``Projection.inverse`` is exact for the clips it is given: it changes only the kept principal
coordinates and leaves the rest of each clip's activation (its component outside the kept subspace)
as it was. This is what the original's "complete PCA" achieved with a full-rank basis, without
needing more clips than dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioprobe.io.store import write_arrays

ARRAYS = ("mean_in", "scale_in", "components", "explained_variance_ratio", "mean_out", "scale_out")


@dataclass
class Projection:
    mean_in: np.ndarray
    scale_in: np.ndarray
    components: np.ndarray          # [k, D], orthonormal rows
    explained_variance_ratio: np.ndarray
    mean_out: np.ndarray
    scale_out: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, components: int, seed: int = 0) -> "Projection":
        """Fit on the training rows ``x`` [clips, values]; float32 throughout, so memory stays near 3x the
        training matrix (the original worked in float64 on the whole layer)."""
        x = _check(x)
        if components > min(x.shape):
            raise ValueError(f"cannot keep {components} principal components of {x.shape[0]} training clips "
                             f"with {x.shape[1]} values each; lower latent.pca_components to at most "
                             f"{min(x.shape)}")
        mean_in = x.mean(axis=0, dtype=np.float64)
        scale_in = _safe_scale(x.std(axis=0, dtype=np.float64))
        standard = ((x - mean_in.astype(np.float32)) / scale_in.astype(np.float32)).astype(np.float32, copy=False)
        basis, ratio = _principal_axes(standard, components, seed)
        projected = standard @ basis.T.astype(np.float32)
        del standard
        return cls(mean_in.astype(np.float32), scale_in.astype(np.float32), basis.astype(np.float32),
                   ratio.astype(np.float32), projected.mean(axis=0, dtype=np.float64).astype(np.float32),
                   _safe_scale(projected.std(axis=0, dtype=np.float64)).astype(np.float32))

    def _principal(self, x: np.ndarray) -> np.ndarray:
        return (((x - self.mean_in) / self.scale_in) @ self.components.T).astype(np.float64)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((self._principal(_check(x)) - self.mean_out) / self.scale_out).astype(np.float32)

    def inverse(self, z: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Activations whose projection is ``z`` and whose remaining part is that of ``x``."""
        x = _check(x)
        shift = (np.asarray(z, np.float64) * self.scale_out + self.mean_out) - self._principal(x)
        return (x + (shift @ self.components) * self.scale_in).astype(np.float32)

    def save(self, path, arrays: dict | None = None, **extra) -> None:
        """Write the fitted arrays (and any extra ``arrays``, such as the projected clips) atomically."""
        write_arrays(path, {**{name: getattr(self, name) for name in ARRAYS}, **(arrays or {})}, **extra)

    @classmethod
    def load(cls, path) -> "Projection":
        from audioprobe.io.store import open_h5

        with open_h5(path) as file:
            return cls(**{name: file[name][()] for name in ARRAYS})


def _check(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a [clips, values] matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("activations contain NaN or Inf values")
    return x


def _safe_scale(scale: np.ndarray) -> np.ndarray:
    """Constant columns keep scale 1 so they map to 0 instead of dividing by zero."""
    return np.where(scale > 1e-12, scale, 1.0)


GRAM_MAX_ROWS = 10_000  # the Gram route's n x n matrices stay below about 1.2 GB (float32 + float64)


def _principal_axes(standard: np.ndarray, components: int, seed: int,
                    gram_max_rows: int = GRAM_MAX_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Top principal axes of an already centred matrix, with signs fixed so results are reproducible.

    With fewer rows than columns (clips x activation values, the usual case) and at most ``gram_max_rows``
    rows, the axes come from the eigenvectors of the n x n Gram matrix: the same exact PCA as an SVD, at a
    fraction of its cost, which is what makes one projection per cross-validation fold affordable. Beyond
    that bound n² floats would dominate memory, and scikit-learn's PCA (SVD) is used instead.
    """
    n, d = standard.shape
    if n < d and n <= gram_max_rows:
        basis, ratio = _gram_axes(standard, components)
        if basis is not None:
            return _fix_signs(basis), ratio
    from sklearn.decomposition import PCA

    pca = PCA(n_components=components, svd_solver="full" if min(standard.shape) <= 1000 else "randomized",
              random_state=seed, copy=False)
    pca.fit(standard)
    return _fix_signs(pca.components_), pca.explained_variance_ratio_


def _gram_axes(standard: np.ndarray, components: int):
    """(axes, explained variance ratio) from the Gram matrix, or (None, None) if the kept spectrum is
    (numerically) degenerate, in which case the caller uses an SVD."""
    from scipy.linalg import eigh

    gram = (standard @ standard.T).astype(np.float64)
    n = len(gram)
    values, vectors = eigh(gram, subset_by_index=[n - components, n - 1])
    values, vectors = values[::-1], vectors[:, ::-1]
    total = float(np.trace(gram))
    if total <= 0 or values[-1] <= 1e-9 * values[0]:
        return None, None
    basis = (vectors.T.astype(np.float32) @ standard).astype(np.float64) / np.sqrt(values)[:, None]
    return basis, values / total


def _fix_signs(basis: np.ndarray) -> np.ndarray:
    signs = np.sign(basis[np.arange(basis.shape[0]), np.argmax(np.abs(basis), axis=1)])
    return basis * signs[:, None]


def fold_projections(x: np.ndarray, fold_of: np.ndarray, components: int, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One projection per cross-validation fold, each fitted on the rows outside that fold only.

    ``x`` [N, D], ``fold_of`` [N] fold numbers 0 .. F-1. Returns ``projected`` [F, N, components]: every
    row through fold f's projection (fitted on the rows whose fold is not f), and the explained variance
    ratios [F, components]. A fold's held-out rows therefore never shape the projection its decoder uses.
    """
    x = _check(x)
    fold_of = np.asarray(fold_of)
    if fold_of.shape != (len(x),):
        raise ValueError(f"fold_of must give one fold per row: {len(x)} rows, got shape {fold_of.shape}")
    folds = np.unique(fold_of)
    projected = np.empty((len(folds), len(x), components), np.float32)
    ratios = np.empty((len(folds), components), np.float32)
    for i, f in enumerate(folds):
        projection = Projection.fit(x[fold_of != f], components, seed=seed)
        projected[i] = projection.transform(x)
        ratios[i] = projection.explained_variance_ratio
    return projected, ratios


def projection_mem_mb(input_mb: float, compressed: bool = False) -> int:
    """Memory (MB) to budget for fitting projections on a layer file of ``input_mb`` MB (the rule's input).

    The activations are read as float32 [clips, values] (at most the file's size uncompressed), then held
    about five times over: the decoded rows, one fold's training copy, its standardised copy and the
    transform's two temporaries. The Gram route adds its n x n matrices; it runs only with fewer rows than
    columns (so n² < n·d, at most a quarter of the file's bytes in float32 values) and at most
    :data:`GRAM_MAX_ROWS` rows, which bounds that term both ways. A compressed file (gzip, lzf) is counted at
    twice its size. 1 GB covers the interpreter, numpy, scikit-learn and h5py.
    """
    data = max(float(input_mb), 0.0) * (2.0 if compressed else 1.0)
    gram = min(6.0 * data, GRAM_MAX_ROWS ** 2 * 24 / 1e6)
    return int(1000 + 5 * data + gram)
