"""Linear centred kernel alignment (CKA) between two representations of the same stimuli.

Kornblith et al. (2019), "Similarity of neural network representations revisited", eq. for linear CKA:

    CKA(X, Y) = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),   K = X X^T,  L = Y Y^T  (n x n Gram matrices)

with rows = stimuli and columns = units. Two estimators of HSIC:

- biased (default; Gretton et al. 2005): HSIC(K, L) = tr(K H L H) / (n - 1)^2 with H = I - 11^T/n, so that
  CKA = <HKH, HLH>_F / (||HKH||_F ||HLH||_F) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F) with
  column-centred X_c, Y_c. It is biased upwards when n is small relative to the number of units: two
  independent random matrices with many more columns than rows give a CKA close to 1.
- unbiased (``unbiased=True``; Song et al. 2012, eq. 5, as used for CKA by Nguyen et al. 2021): with K~, L~ the
  Gram matrices with their diagonals set to 0,

      HSIC_1(K, L) = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3)),

  computed here as <U(K), U(L)>_F / (n (n-3)) with U the "U-centring" of Szekely & Rizzo (2014), which equals
  it (the unit tests check the identity). Needs n >= 4; its expected value is 0 for independent
  representations, so the CKA of unrelated layers is near 0 whatever their width.

CKA is invariant to orthogonal transforms and isotropic scaling of either representation (not to an
arbitrary invertible linear map). Computing through n x n Gram matrices keeps the cost independent of the
layer width, which suits wide layers and the few hundred to few thousand clips of a dataset.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd


def _representation(X, name: str, min_rows: int) -> np.ndarray:
    """X as a finite float64 matrix [stimuli, units] with at least ``min_rows`` rows."""
    X = np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [stimuli, units], got shape {X.shape}; "
                         "flatten the units of each stimulus first (e.g. X.reshape(len(X), -1))")
    if X.shape[0] < min_rows:
        raise ValueError(f"{name} has {X.shape[0]} rows (stimuli), the estimator needs at least {min_rows}; "
                         "give more stimuli" + (" or use unbiased=False" if min_rows == 4 else ""))
    if X.shape[1] == 0:
        raise ValueError(f"{name} has no columns (units)")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values: remove or impute them first")
    return X


def _min_rows(unbiased: bool) -> int:
    return 4 if unbiased else 2


def centred_gram(X) -> np.ndarray:
    """H K H for the linear kernel K = X X^T: the Gram matrix of the column-centred representation."""
    Xc = X - X.mean(axis=0, keepdims=True)
    return Xc @ Xc.T


def u_centred_gram(X) -> np.ndarray:
    """U-centred linear Gram matrix (Szekely & Rizzo 2014): zero diagonal, and <U(K), U(L)> / (n (n-3)) is
    the unbiased HSIC estimator of Song et al. (2012)."""
    n = X.shape[0]
    K = X @ X.T
    np.fill_diagonal(K, 0.0)
    rows = K.sum(axis=1)
    U = K - rows[:, None] / (n - 2) - rows[None, :] / (n - 2) + rows.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(U, 0.0)
    return U


def _gram(X, unbiased: bool) -> np.ndarray:
    return u_centred_gram(X) if unbiased else centred_gram(X)


def _normalised(G: np.ndarray, name: str) -> np.ndarray:
    """G / ||G||_F, or NaN everywhere (with a warning) when G is zero: the representation does not vary
    across stimuli. (For a U-centred G, ||G||_F^2 = n(n-3) HSIC_1(K, K), a sum of squares, never negative.)"""
    norm2 = float(np.sum(G * G))
    if not norm2 > 0.0 or not np.isfinite(norm2):
        warnings.warn(f"{name} does not vary across stimuli (its centred Gram matrix is zero): "
                      "its CKA is undefined and reported as NaN", RuntimeWarning, stacklevel=3)
        return np.full_like(G, np.nan)
    return G / np.sqrt(norm2)


def linear_cka(X, Y, unbiased: bool = False) -> float:
    """Linear CKA between X [stimuli, units_x] and Y [stimuli, units_y] (rows are the same stimuli, in the
    same order). ``unbiased=True`` uses the unbiased HSIC estimator (needs at least 4 stimuli); the result
    can then be slightly negative. NaN (with a RuntimeWarning) when a representation is constant."""
    min_rows = _min_rows(unbiased)
    X = _representation(X, "X", min_rows)
    Y = _representation(Y, "Y", min_rows)
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows and Y {Y.shape[0]}: both must hold the same stimuli in the "
                         "same order")
    gx = _normalised(_gram(X, unbiased), "X")
    gy = _normalised(_gram(Y, unbiased), "Y")
    return float(np.sum(gx * gy))


def _normalised_grams(layers: Mapping, which: str, unbiased: bool) -> tuple[list[str], np.ndarray]:
    """Names and the flattened normalised Gram matrices [layers, n*n] of a model's layers."""
    if not isinstance(layers, Mapping) or not layers:
        raise ValueError(f"{which} must be a non-empty dict {{layer name: array [stimuli, units]}}")
    names, flat = [], []
    for name, X in layers.items():
        X = _representation(X, f"{which}[{name!r}]", _min_rows(unbiased))
        names.append(str(name))
        flat.append(_normalised(_gram(X, unbiased), f"{which}[{name!r}]").ravel())
    return names, np.stack(flat)


def _check_same_stimuli(layers_a: Mapping, layers_b: Mapping) -> None:
    rows = {f"layers_a[{k!r}]": np.shape(v)[0] for k, v in layers_a.items()}
    rows |= {f"layers_b[{k!r}]": np.shape(v)[0] for k, v in layers_b.items()}
    if len(set(rows.values())) > 1:
        raise ValueError(f"every layer must hold the same stimuli (rows), got {rows}; extract both models' "
                         "activations on the same clips, in the same order")


def cka_matrix(layers_a: Mapping, layers_b: Mapping, unbiased: bool = False) -> pd.DataFrame:
    """Linear CKA of every layer of ``layers_a`` with every layer of ``layers_b`` (dicts of name -> array
    [stimuli, units], all on the same stimuli in the same order): a DataFrame indexed by the names of
    ``layers_a`` with one column per layer of ``layers_b``, in the dicts' order. Each layer's Gram matrix is
    computed once (memory: len(layers_a) + 1 matrices of n x n)."""
    _check_same_stimuli(layers_a, layers_b)
    names_a, grams_a = _normalised_grams(layers_a, "layers_a", unbiased)
    columns = {}
    for name, X in layers_b.items():
        X = _representation(X, f"layers_b[{name!r}]", _min_rows(unbiased))
        columns[str(name)] = grams_a @ _normalised(_gram(X, unbiased), f"layers_b[{name!r}]").ravel()
    return pd.DataFrame(columns, index=pd.Index(names_a, name="layer_a")).rename_axis(columns="layer_b")
