"""Standardise -> PCA -> standardise, fitted on the training split, stored as plain arrays.

``Projection.inverse`` is exact for the clips it is given: it changes only the kept principal
coordinates and leaves the rest of each clip's activation (its component outside the kept subspace)
as it was. This is what the original's "complete PCA" achieved with a full-rank basis, without
needing more clips than dimensions.

Two routes fit the same projection. The exact one (:meth:`Projection.fit`, :func:`fold_projections`) holds
the training matrix in memory and takes the PCA from its Gram matrix or an SVD. The streamed one
(:func:`fit_streamed`) reads the rows in chunks a few times over and never holds more than a chunk of them:
moments from one pass, then a randomized PCA with power iterations from chunked products, for every fold at
once. :func:`choose_route` takes the exact route while its memory fits a budget
(``latent.projection_memory_mb``), so small runs keep their exact numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from audioprobe.io.store import write_arrays

log = logging.getLogger(__name__)

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
    def fit(cls, x: np.ndarray, components: int, seed: int = 0) -> Projection:
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
    def load(cls, path) -> Projection:
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
        log.info("fold %d/%d fitted on %d rows", i + 1, len(folds), int((fold_of != f).sum()))
    return projected, ratios


# --- the streamed route ---------------------------------------------------------------------------------------

# Block Krylov: 32 random directions, 6 power iterations, every iterate kept (a basis of 224 per fit). On YAMNet's
# layer2, 6, 9 and 13 of ESC-10 (2,002 windows, 10 folds) this keeps the captured variance within 2.5e-4 of the
# exact fit; 5 iterations missed 1e-3 on layer2 (1.3e-3) (bench/projection.py --extract-esc10).
BLOCK = 32
POWER_ITERATIONS = 6    # each reads the rows twice more
CHUNK_ROWS = 256        # rows per chunk read


class ArrayChunks:
    """An in-memory matrix served in row chunks, as :func:`fit_streamed` reads a layer file (tests, benchmarks)."""

    def __init__(self, x: np.ndarray, chunk_rows: int = CHUNK_ROWS):
        self.x, self.chunk_rows = x, chunk_rows
        self.shape = (len(x), int(np.prod(x.shape[1:])))

    def __iter__(self):
        for first in range(0, self.shape[0], self.chunk_rows):
            yield first, np.asarray(self.x[first:first + self.chunk_rows], np.float32).reshape(-1, self.shape[1])


def fit_streamed(chunks, train: np.ndarray, components: int, seed: int = 0, *, block: int = BLOCK,
                 power_iterations: int = POWER_ITERATIONS, krylov: bool = True, fits_per_batch: int | None = None
                 ) -> tuple[list[Projection], np.ndarray]:
    """One projection per row of ``train`` ([fits, rows] booleans: the rows each is fitted on), fitted by streaming
    over ``chunks``, and every row projected through each ([fits, rows, components] float32).

    ``chunks`` has a ``shape`` (rows, values) and yields (first row, float32 block [rows, values]) in row order,
    as often as it is iterated; no more than one block is held. The layer is read 4 + 2 x ``power_iterations``
    times per batch of ``fits_per_batch`` fits (all by default): per-column moments (merged per class of rows,
    so a fit's moments are made from its own training rows only), the range finder Y = S Ω (``block`` random
    directions), the power iterations (Sᵀ Q, S Z), B = Kᵀ S for the small SVD, and the projection of every row.
    K is the block Krylov basis [Q_0, ..., Q_q] (Musco and Musco 2015), or with ``krylov`` False the last Q alone
    (subspace iteration, which needs a block of the kept components plus oversampling). S is a fit's
    standardised training matrix; it is never formed, each product is taken chunk by chunk.

    A fit never reads what it must not see, down to rounding: its moments, its centring shift and every
    product it uses are sums over its own training rows only (other rows enter with weight exactly zero).
    """
    train = np.asarray(train, dtype=bool)
    rows, values = chunks.shape
    if train.ndim != 2 or train.shape[1] != rows:
        raise ValueError(f"train must be [fits, {rows}] booleans, got shape {train.shape}")
    fewest = int(train.sum(axis=1).min())
    if components > min(fewest, values):
        raise ValueError(f"cannot keep {components} principal components of {fewest} training clips with {values} "
                         f"values each; lower latent.pca_components to at most {min(fewest, values)}")
    width = basis_width(block, power_iterations, krylov)
    if width < components:
        raise ValueError(f"a basis of {width} directions (block {block}, {power_iterations} power iterations) "
                         f"cannot hold {components} components")
    batch = fits_per_batch or len(train)
    projections, projected = [], []
    for first in range(0, len(train), batch):
        fits = _StreamedFits(chunks, train[first:first + batch], components, seed, min(width, values, fewest),
                             min(block, values, fewest))
        fitted, z = fits.project(fits.principal_axes(fits.basis(power_iterations, krylov)))
        projections += fitted
        projected.append(z)
    return projections, np.concatenate(projected)


class _StreamedFits:
    """Several fits over the same rows, each on its own training rows. Fit f's standardised rows are
    S_f = (X - c_g)/σ_f - u_f with c_g its group's centring shift and u_f = (μ_f - c_g)/σ_f: every chunk is
    shifted once per group (not once per fit) and the scaling and offset go into the small factors."""

    def __init__(self, chunks, train: np.ndarray, components: int, seed: int, width: int, block: int):
        self.chunks, self.train, self.components, self.seed = chunks, train, components, seed
        self.rows, self.values = chunks.shape
        self.width, self.block = width, min(block, width)
        self.groups = _shift_groups(len(train))
        self._fit_moments()

    def _fit_moments(self) -> None:
        patterns, row_class = np.unique(self.train.T, axis=0, return_inverse=True)
        moments = _class_moments(self.chunks, row_class.reshape(-1), len(patterns))
        self.shift = [_merged(moments, patterns[:, group].all(axis=1)).mean_or_zero(self.values).astype(np.float32)
                      for group in self.groups]
        self.mean, self.scale, self.offset, self.total = [], [], [], []
        for f in range(len(self.train)):
            fit = _merged(moments, patterns[:, f])
            mean = fit.mean.astype(np.float32)
            scale = _safe_scale(np.sqrt(fit.m2 / fit.n)).astype(np.float32)
            self.mean.append(mean)
            self.scale.append(scale)
            self.offset.append((mean.astype(np.float64) - self.shift[self._group(f)].astype(np.float64)) / scale)
            # the squared norm of S_f, standardised with the float32 mean as the exact route does
            self.total.append(float(((fit.m2 + fit.n * (fit.mean - mean) ** 2) / scale.astype(np.float64) ** 2).sum()))

    def _group(self, fit: int) -> int:
        return next(g for g, group in enumerate(self.groups) if fit in group)

    def _shifted_chunks(self):
        """(first row, group, the chunk minus the group's shift), for every chunk and group, in one buffer."""
        buffer = None
        for first, block in self.chunks:
            if buffer is None or len(buffer) < len(block):
                buffer = np.empty(block.shape, np.float32)
            for g, shift in enumerate(self.shift):
                yield first, g, np.subtract(block, shift, out=buffer[:len(block)])

    def _columns(self, group: range, width: int) -> slice:
        return slice(group.start * width, group.stop * width)

    def _right(self, mats: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Every row times each fit's ``mats[f]`` ([values, m]) after the fit's shift and scaling, but before its
        offset: [rows, fits x m] float32, fit f in columns f·m .. (f+1)·m (see :meth:`_offset_of`)."""
        width = mats[0].shape[1]
        scaled = [self._scaled(mats, group) for group in self.groups]
        out = np.empty((self.rows, len(self.train) * width), np.float32) if out is None else out
        for first, g, shifted in self._shifted_chunks():
            out[first:first + len(shifted), self._columns(self.groups[g], width)] = shifted @ scaled[g]
        return out

    def _scaled(self, mats: list[np.ndarray], group: range) -> np.ndarray:
        width = mats[0].shape[1]
        scaled = np.empty((self.values, len(group) * width), np.float32)
        for i, f in enumerate(group):
            np.divide(mats[f], self.scale[f][:, None], out=scaled[:, i * width:(i + 1) * width])
        return scaled

    def _offset_of(self, f: int, mat: np.ndarray) -> np.ndarray:
        return self.offset[f] @ mat

    def _left(self, basis: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """The shifted rows times ``basis`` [rows, fits x width], summed over the rows: [values, fits x width]
        float32, and the basis's column sums (see :meth:`_left_of`). ``basis`` is zero outside each fit's training
        rows, so only those rows enter a fit's sums. Accumulated in place by BLAS (C += AᵀB): no temporary of
        the sums' size per chunk."""
        from scipy.linalg.blas import sgemm

        total = np.zeros((self.values, basis.shape[1]), np.float32, order="F")
        for first, g, shifted in self._shifted_chunks():
            columns = self._columns(self.groups[g], width)
            sums = total[:, columns]
            result = sgemm(1.0, shifted.T, basis[first:first + len(shifted), columns], beta=1.0, c=sums,
                           overwrite_c=True)
            if not np.shares_memory(result, sums):
                sums[...] = result
        return total, basis.sum(axis=0, dtype=np.float64)

    def _left_of(self, left: tuple[np.ndarray, np.ndarray], f: int, width: int) -> np.ndarray:
        """Fit f's S_fᵀ basis_f [values, width] float64 from :meth:`_left`: scaled, less the offset's part."""
        total, column_sums = left
        columns = slice(f * width, (f + 1) * width)
        return (total[:, columns].astype(np.float64) / self.scale[f][:, None]
                - np.outer(self.offset[f], column_sums[columns]))

    def _orthonormalise(self, y: np.ndarray, mats: list[np.ndarray]) -> np.ndarray:
        """``y`` from :meth:`_right` turned, in place, into each fit's orthonormal basis of its training rows'
        products (zero on its other rows)."""
        width = mats[0].shape[1]
        for f, rows in enumerate(self.train):
            columns = slice(f * width, (f + 1) * width)
            products = y[rows, columns].astype(np.float64) - self._offset_of(f, mats[f])
            y[:, columns] = 0
            y[rows, columns] = _tall_qr(products)[0]
        return y

    def basis(self, power_iterations: int, krylov: bool) -> np.ndarray:
        """Each fit's orthonormal basis of S_f's leading column space on its training rows (zero on its other
        rows), [rows, fits x width] float32: the block Krylov space of S_f Ω, or its last block alone."""
        omega = np.random.default_rng(self.seed).standard_normal((self.values, self.block), dtype=np.float32)
        mats = [omega] * len(self.train)
        blocks = [self._orthonormalise(self._right(mats), mats)]
        log.info("%d fits: moments and range finder done, %d power iterations to go", len(self.train),
                 power_iterations)
        for iteration in range(power_iterations):
            row_space = self._left(blocks[-1], self.block)
            mats = [_tall_qr(self._left_of(row_space, f, self.block))[0] for f in range(len(self.train))]
            del row_space
            blocks = (blocks if krylov else []) + [self._orthonormalise(self._right(mats), mats)]
            del mats
            log.info("power iteration %d/%d done", iteration + 1, power_iterations)
        return self._joined(blocks)

    def _joined(self, blocks: list[np.ndarray]) -> np.ndarray:
        """Each fit's blocks side by side, orthonormalised on its training rows, cut to ``width`` columns (Householder
        QR: the blocks of a converging Krylov space are nearly dependent, and the directions that rounding then
        adds are harmless extra ones)."""
        if len(blocks) == 1 and self.block == self.width:
            return blocks[0]
        joined = np.zeros((self.rows, len(self.train) * self.width), np.float32)
        for f, rows in enumerate(self.train):
            stacked = np.hstack([b[rows, f * self.block:(f + 1) * self.block] for b in blocks]).astype(np.float64)
            joined[rows, f * self.width:(f + 1) * self.width] = np.linalg.qr(stacked)[0][:, :self.width]
        return joined

    def principal_axes(self, basis: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(axes [components, values], explained variance ratio) per fit, from the SVD of Bᵀ = S_fᵀ Q_f."""
        products = self._left(basis, self.width)
        del basis
        axes = []
        for f in range(len(self.train)):
            orthonormal, triangle = _tall_qr(self._left_of(products, f, self.width))
            left, singular, _ = np.linalg.svd(triangle)
            kept = slice(0, self.components)
            axes.append((_fix_signs((orthonormal @ left[:, kept]).T).astype(np.float32),
                         singular[kept] ** 2 / self.total[f]))
        return axes

    def project(self, axes) -> tuple[list[Projection], np.ndarray]:
        """The fitted projections and every row through each, as :meth:`Projection.transform` gives it."""
        mats = [basis.T for basis, _ in axes]
        principal = self._right(mats)
        projected = np.empty((len(self.train), self.rows, self.components), np.float32)
        projections = []
        for f, (basis, ratio) in enumerate(axes):
            coordinates = (principal[:, f * self.components:(f + 1) * self.components].astype(np.float64)
                           - self._offset_of(f, mats[f]))
            training = coordinates[self.train[f]]
            mean_out = training.mean(axis=0).astype(np.float32)
            scale_out = _safe_scale(training.std(axis=0)).astype(np.float32)
            projections.append(Projection(self.mean[f], self.scale[f], basis, ratio.astype(np.float32), mean_out,
                                          scale_out))
            projected[f] = (coordinates - mean_out) / scale_out
        return projections, projected


def _tall_qr(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q, R of a tall float64 matrix by Cholesky QR twice: matrix products, where a Householder QR is tens of
    times slower on [values, width] matrices (and worse still with BLAS threads on a busy machine); the second
    pass restores orthogonality to rounding. Householder QR where the Gram matrix is (numerically) singular."""
    from scipy.linalg import solve_triangular

    q, r = a, np.eye(a.shape[1])
    for _ in range(2):
        try:
            factor = np.linalg.cholesky(q.T @ q).T
        except np.linalg.LinAlgError:
            return np.linalg.qr(a)
        q = q @ solve_triangular(factor, np.eye(len(factor)))
        r = factor @ r
    if not np.isfinite(q).all() or np.abs(q.T @ q - np.eye(q.shape[1])).max() > 1e-10:
        return np.linalg.qr(a)
    return q, r


def _shift_groups(fits: int) -> list[range]:
    """Fits share a centring shift per group: the mean of the rows that every fit of the group trains on, so no
    fit's shift depends on rows it must not see. Two groups keep those rows many (with ten folds, the rows of
    the five folds outside the group); one fit has its own mean."""
    half = (fits + 1) // 2
    return [range(half), range(half, fits)] if fits > 1 else [range(1)]


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations per column, in float64; merged as Chan et al. do."""
    n: int
    mean: np.ndarray | float
    m2: np.ndarray | float

    @classmethod
    def of(cls, x: np.ndarray) -> _Moments:
        """Shifted by the rows' own (float32-rounded) mean, so the sum of squares does not cancel."""
        shift = x.mean(axis=0, dtype=np.float64).astype(np.float32)
        deviation = x - shift
        total = deviation.sum(axis=0, dtype=np.float64)
        squares = np.square(deviation, out=deviation).sum(axis=0, dtype=np.float64)
        return cls(len(x), shift + total / len(x), squares - total * total / len(x))

    def merge(self, other: _Moments) -> _Moments:
        if not other.n or not self.n:
            return other if not self.n else self
        n = self.n + other.n
        delta = other.mean - self.mean
        return _Moments(n, self.mean + delta * (other.n / n),
                        self.m2 + other.m2 + delta * delta * (self.n * other.n / n))

    def mean_or_zero(self, values: int) -> np.ndarray:
        return np.asarray(self.mean, np.float64) if self.n else np.zeros(values)


def _class_moments(chunks, row_class: np.ndarray, classes: int) -> list[_Moments]:
    """The moments of each class of rows (rows with the same training membership), in one pass."""
    moments = [_Moments(0, 0.0, 0.0) for _ in range(classes)]
    for first, block in chunks:
        if not np.isfinite(block).all():
            raise ValueError("activations contain NaN or Inf values")
        present = row_class[first:first + len(block)]
        for k in np.unique(present):
            rows = present == k
            moments[k] = moments[k].merge(_Moments.of(block if rows.all() else block[rows]))
    return moments


def _merged(moments: list[_Moments], selected: np.ndarray) -> _Moments:
    merged = _Moments(0, 0.0, 0.0)
    for moment, keep in zip(moments, selected):
        if keep:
            merged = merged.merge(moment)
    return merged


# --- memory and the choice of route ---------------------------------------------------------------------------

MEMORY_MB = 4000        # latent.projection_memory_mb's default
BASE_MB = 200           # interpreter, numpy, scipy, scikit-learn, h5py and pandas (about 150 MiB measured)
MIB = 2 ** 20


def basis_width(block: int, power_iterations: int, krylov: bool = True) -> int:
    """Directions per fit: every block of the Krylov space, or the last block alone."""
    return block * (power_iterations + 1) if krylov else block


def projection_mem_mb(input_mb: float, compressed: bool = False, *, budget_mb: float | None = MEMORY_MB,
                      itemsize: int = 4) -> int:
    """Memory (MB) to request for fitting projections on a layer file of ``input_mb`` MB (the rule's input).

    Without a budget: the exact route's bound from the file's size. Its values as float32 (a compressed file
    counted at twice its size, a float16 one (``itemsize`` 2) at twice its bytes) are held about five times
    over: the rows, one fold's training copy, its standardised copy and the transform's two temporaries. The
    Gram route adds its n x n matrices; it runs only with fewer rows than columns (so n² < n·d) and at most
    :data:`GRAM_MAX_ROWS` rows, which bounds that term both ways. 1 GB covers the interpreter and libraries.
    With a budget (``latent.projection_memory_mb``) the request is at most the budget: the job then fits
    exactly only if its own estimate from the rows it reads is within the budget (:func:`choose_route`), and
    otherwise streams, planning its chunks and fold batches to stay within the budget whatever the number of
    clips (:func:`plan_streamed`).
    """
    data = max(float(input_mb), 0.0) * (2.0 if compressed else 1.0) * 4 / itemsize
    gram = min(6.0 * data, GRAM_MAX_ROWS ** 2 * 24 / 1e6)
    exact = 1000 + 5 * data + gram
    return int(exact if budget_mb is None else min(exact, budget_mb))


def exact_peak_mb(rows: int, values: int, train_rows: int) -> float:
    """The exact route's peak (MiB) reading ``rows`` rows of ``values`` values and fitting on ``train_rows`` of
    them: about four float32 copies of the rows (the rows, a fit's training copy and its standardised copy, or
    the transform's temporaries), plus the Gram route's n x n matrices (float32, float64 and the eigensolver's)."""
    gram = 3 * train_rows ** 2 * 8 if train_rows < values and train_rows <= GRAM_MAX_ROWS else 0
    return BASE_MB + (4 * rows * values * 4 + gram) / MIB


def choose_route(rows: int, values: int, train_rows: int, budget_mb: float | None) -> str:
    """``exact`` where the exact route is exact (the Gram route, or an SVD of a matrix with at most 1,000 rows or
    columns) and fits in ``budget_mb``; ``streamed`` otherwise. No budget: always exact."""
    exact = (train_rows < values and train_rows <= GRAM_MAX_ROWS) or min(train_rows, values) <= 1000
    if budget_mb is None or (exact and exact_peak_mb(rows, values, train_rows) <= budget_mb):
        return "exact"
    return "streamed"


def streamed_peak_mb(rows: int, values: int, fits: int, components: int, *, chunk_rows: int = CHUNK_ROWS,
                     block: int = BLOCK, power_iterations: int = POWER_ITERATIONS, krylov: bool = True,
                     itemsize: int = 4) -> float:
    """The streamed route's peak (MiB): the chunk read, its float32 copy and shifted copy (or the moments'
    temporaries); the fits' [values, fits x width] sums of products (float32), one fit's products in float64
    with its QR and SVD, the fitted axes, the power iterations' factors and the per-fit moments; and per row the
    [fits x width] float32 bases (twice while the Krylov blocks are joined), which also covers the
    [fits, rows, components] results. Only the last term grows with the rows, by a few kB per row; none grows
    with rows times values."""
    width = min(basis_width(block, power_iterations, krylov), values)
    chunk = chunk_rows * values * (12 + itemsize + (4 if itemsize != 4 else 0))
    per_fit = values * (fits * width * 4 + 4 * width * 8 + fits * (components * 4 + block * 12 + 40))
    per_row = rows * fits * max(2 * width, 3 * components) * 4
    return BASE_MB + (chunk + per_fit + per_row) / MIB


def plan_streamed(rows: int, values: int, fits: int, components: int, budget_mb: float, *,
                  chunk_rows: int = CHUNK_ROWS, itemsize: int = 4) -> tuple[int, int]:
    """(fits per batch, rows per chunk) whose :func:`streamed_peak_mb` fits ``budget_mb``: all fits in one batch
    (the fewest reads) with the largest chunk down to 32 rows, then fewer fits per batch. If nothing fits, one fit
    per batch in chunks of 32 rows: the least memory the streamed route can do with."""
    for batch in sorted({fits, *range(1, fits)}, reverse=True):
        for chunk in sorted({chunk_rows, *(c for c in (256, 128, 64, 32) if c < chunk_rows)}, reverse=True):
            if streamed_peak_mb(rows, values, batch, components, chunk_rows=chunk, itemsize=itemsize) <= budget_mb:
                return batch, chunk
    return 1, min(chunk_rows, 32)
