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
        import h5py

        with h5py.File(path, "r") as file:
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


def _principal_axes(standard: np.ndarray, components: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Top principal axes of an already centred matrix, with signs fixed so results are reproducible."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=components, svd_solver="full" if min(standard.shape) <= 1000 else "randomized",
              random_state=seed, copy=False)
    pca.fit(standard)
    basis = pca.components_
    signs = np.sign(basis[np.arange(basis.shape[0]), np.argmax(np.abs(basis), axis=1)])
    return basis * signs[:, None], pca.explained_variance_ratio_
