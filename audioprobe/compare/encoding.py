"""Cross-validated ridge encoding models from a layer to target channels, with noise correction.

The default protocol is Tuckute, Feather, Boebinger & McDermott (2023, PLOS Biology), as their code does it
(github.com/gretatuckute/auditory_brain_dnn, ``aud_dnn/AUD_main.py`` and ``aud_dnn/utils.py``:
``ridgeRegressSplits``, ``ridgeCV_correctedR2``; aggregation in ``aud_dnn/analyze/plot_utils_AUD.py``):

1. Splits (``random_splits``): 10 random splits of the 165 sounds into 83 training and 82 test sounds; for
   another number of stimuli, the same fraction 83/165 (configurable).
2. Regression (``ridge_predict``): the layer's features are centred with the training stimuli's means (their
   ``StandardScaler(with_std=False)``; ``scale="standardise"`` also divides by the training SD), the
   target is centred with its training mean, and a ridge regression is fitted for each target channel with
   its own penalty, chosen by an inner cross-validation on the training stimuli only (leave-one-out by
   default, as sklearn's ``RidgeCV`` that they used; mean squared error) from alphas 10^-50 ... 10^49
   (``10 ** x for x in range(-50, 50)``). The fit is himalaya's (numpy backend): ``RidgeCV`` when the
   layer has no more units than training stimuli, else ``KernelRidgeCV`` with a linear kernel, the same
   ridge solution in its dual form, much faster for wide layers (himalaya's own advice).
3. Score: r = Pearson correlation between predicted and observed test responses, set to 0 when negative or
   when the prediction is constant (here also when the penalty has shrunk it to its intercept: a spread
   below 1e-10 of the training target's SD, i.e. rounding error); "R^2" is r^2 (the squared correlation, not
   the coefficient of determination).
4. Noise correction (targets with repetitions [stimuli, channels, repetitions], R >= 2): the model is fitted
   on the mean over repetitions (giving r^2 above) and, separately, on each single repetition (giving R test
   predictions). Then

       r_v     = max(SB_R(median over pairs of repetitions of corr(rep_a, rep_b) on the training stimuli), f_train)
       r_v_hat = max(SB_R(median over pairs of corr(prediction_a, prediction_b) on the test stimuli), f_test)
       corrected R^2 = r^2 / (r_v * r_v_hat)

   with SB_R the Spearman-Brown correction to R repetitions, R r / (1 + (R - 1) r), and f_n the one-tailed
   p < 0.05 critical Pearson r for n stimuli (``reliability_floor``): their code hard-codes 0.182 and 0.183
   for 83 training and 82 test sounds, which this formula reproduces (0.1818, 0.1829). One deviation: a
   negative median is taken as 0 before Spearman-Brown, so the floor applies; their code would pass a
   median below -1/(R-1) through the formula's pole (a large positive "reliability").
5. Aggregation (``summarise``): for each target channel the median across splits (corrected values clipped
   at 1 after that median); then the median across channels; with ``groups`` (e.g. participant of each
   voxel), the median across each group's channels and then the mean across groups, as their figures do.

A permuted-weights control is the same call on the activations of the network with permuted weights: the
encoding functions accept any features array.
"""

from __future__ import annotations

import itertools
import warnings
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
from scipy import stats

TUCKUTE_ALPHAS = 10.0 ** np.arange(-50, 50)
TUCKUTE_TRAIN_FRACTION = 83 / 165
TUCKUTE_N_SPLITS = 10
MIN_SPLIT_SIZE = 3
SCALES = ("demean", "standardise")
SOLVERS = ("auto", "ridge", "kernel")


class EncodingScores(NamedTuple):
    """Per split and target channel [n_splits, n_channels]: r^2, its noise-corrected value, the two
    reliabilities of the correction (None without repetitions) and the chosen penalty of the mean model."""
    r2: np.ndarray
    r2_corrected: np.ndarray | None
    target_reliability: np.ndarray | None
    prediction_reliability: np.ndarray | None
    alphas: np.ndarray


# --- splits and reliabilities ------------------------------------------------------------------------------

def _n_train(n_stimuli: int, train) -> int:
    if isinstance(train, (int, np.integer)) and not isinstance(train, bool):
        n_train = int(train)
    elif isinstance(train, float) and 0 < train < 1:
        n_train = int(round(train * n_stimuli))
    else:
        raise ValueError(f"train must be a number of stimuli (int) or a fraction in (0, 1), got {train!r}")
    if n_train < MIN_SPLIT_SIZE or n_stimuli - n_train < MIN_SPLIT_SIZE:
        raise ValueError(f"a split of {n_stimuli} stimuli into {n_train} training and {n_stimuli - n_train} test "
                         f"stimuli leaves fewer than {MIN_SPLIT_SIZE} on one side: change train or give more stimuli")
    return n_train


def random_splits(n_stimuli: int, n_splits: int = TUCKUTE_N_SPLITS, train=TUCKUTE_TRAIN_FRACTION,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_splits`` random train/test splits of the stimuli: (train [n_splits, n_train], test
    [n_splits, n_test]) index arrays, each row sorted. ``train`` is a count or a fraction (default 83/165,
    Tuckute et al.'s 83 of 165 sounds); the test set is every other stimulus."""
    if int(n_splits) != n_splits or n_splits < 1:
        raise ValueError(f"n_splits must be a positive integer, got {n_splits!r}")
    n_train = _n_train(int(n_stimuli), train)
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n_stimuli) for _ in range(int(n_splits))]
    train_idx = np.stack([np.sort(o[:n_train]) for o in orders])
    test_idx = np.stack([np.sort(o[n_train:]) for o in orders])
    return train_idx, test_idx


def spearman_brown(r, factor: float = 2.0):
    """Spearman-Brown prophecy: the reliability of a measure ``factor`` times as long as one of reliability
    r, factor r / (1 + (factor - 1) r); split-half r -> full-data reliability with factor 2."""
    r = np.asarray(r, dtype=float)
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor!r}")
    out = factor * r / (1 + (factor - 1) * r)
    return float(out) if out.ndim == 0 else out


def reliability_floor(n_stimuli: int, p: float = 0.05) -> float:
    """The Pearson r significant at one-tailed ``p`` for n stimuli (t test with n - 2 df): Tuckute et al.'s
    lower bound on the reliabilities of the noise correction (0.182 for 83 sounds, 0.183 for 82)."""
    if n_stimuli < 3:
        raise ValueError(f"the floor needs at least 3 stimuli, got {n_stimuli}")
    t = stats.t.ppf(1 - p, n_stimuli - 2)
    return float(t / np.sqrt(t * t + n_stimuli - 2))


def column_correlations(a, b) -> np.ndarray:
    """Pearson r of each column of a with the same column of b (both [samples, columns]); NaN where a column
    is constant."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    denominator = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=0) / denominator, np.nan)


def _repetitions(responses, name: str = "responses") -> np.ndarray:
    R = np.asarray(responses, dtype=float)
    if R.ndim != 3 or R.shape[2] < 2:
        raise ValueError(f"{name} must be [stimuli, channels, repetitions] with at least 2 repetitions, got "
                         f"shape {R.shape}")
    if R.shape[0] < MIN_SPLIT_SIZE:
        raise ValueError(f"{name} needs at least {MIN_SPLIT_SIZE} stimuli, got {R.shape[0]}")
    if not np.all(np.isfinite(R)):
        raise ValueError(f"{name} contains NaN or infinite values: remove or impute them first")
    return R


def pairwise_reliability(responses) -> np.ndarray:
    """Tuckute et al.'s reliability per channel of the mean over R repetitions (responses [stimuli,
    channels, R]): the median over pairs of repetitions of their Pearson r across stimuli, Spearman-Brown
    corrected to R repetitions. Negative medians count as 0; no floor here."""
    R = _repetitions(responses)
    return _pairwise_reliability(R)


def _pairwise_reliability(R: np.ndarray) -> np.ndarray:
    pairs = itertools.combinations(range(R.shape[2]), 2)
    r = np.stack([column_correlations(R[:, :, i], R[:, :, j]) for i, j in pairs])
    with warnings.catch_warnings():  # a channel constant in every repetition: all-NaN, counted as 0
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.clip(np.nan_to_num(np.nanmedian(r, axis=0), nan=0.0), 0.0, None)
    return spearman_brown(median, factor=R.shape[2])


def split_half_reliability(responses, seed: int = 0, n_splits: int = 100) -> np.ndarray:
    """Split-half reliability per channel of responses [stimuli, channels, repetitions >= 2]: the
    repetitions are split at random into two halves (sizes floor(R/2) and ceil(R/2)), the Pearson r across
    stimuli of the two half means is averaged over ``n_splits`` random splits (``np.random.default_rng(seed)``)
    and Spearman-Brown corrected with factor 2. (With an odd R the halves differ in size and factor 2 is an
    approximation.) NaN for a channel that is constant in a half."""
    R = _repetitions(responses)
    rng = np.random.default_rng(seed)
    n_rep = R.shape[2]
    rs = []
    for _ in range(int(n_splits)):
        order = rng.permutation(n_rep)
        half_a, half_b = order[: n_rep // 2], order[n_rep // 2:]
        rs.append(column_correlations(R[:, :, half_a].mean(axis=2), R[:, :, half_b].mean(axis=2)))
    return spearman_brown(np.mean(rs, axis=0), factor=2.0)


# --- ridge --------------------------------------------------------------------------------------------------

@contextmanager
def _numpy_backend():
    """himalaya on its numpy backend, whatever backend the caller had set (restored afterwards)."""
    from himalaya.backend import get_backend, set_backend

    previous = get_backend().name
    set_backend("numpy")
    try:
        yield
    finally:
        set_backend(previous)


def _scaled(X_train: np.ndarray, X_test: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Features centred (and with "standardise" divided by their SD; a constant unit is left unscaled),
    with statistics of the training stimuli only."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    mean = X_train.mean(axis=0)
    sd = X_train.std(axis=0) if scale == "standardise" else np.ones(X_train.shape[1])
    sd = np.where(sd > 0, sd, 1.0)
    return (X_train - mean) / sd, (X_test - mean) / sd


def _inner_cv(inner_cv, n_train: int, seed: int):
    from sklearn.model_selection import KFold

    if inner_cv is None:
        return KFold(n_splits=n_train)  # leave-one-out, in the form himalaya accepts
    if isinstance(inner_cv, (int, np.integer)) and 2 <= inner_cv <= n_train:
        return KFold(n_splits=int(inner_cv), shuffle=True, random_state=seed)
    raise ValueError(f"inner_cv must be None (leave-one-out) or a number of folds in [2, {n_train}], "
                     f"got {inner_cv!r}")


def _estimator(solver: str, n_train: int, n_features: int, alphas: np.ndarray, cv):
    from himalaya.kernel_ridge import KernelRidgeCV
    from himalaya.ridge import RidgeCV

    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "ridge" or (solver == "auto" and n_features <= n_train):
        return RidgeCV(alphas=alphas, fit_intercept=True, cv=cv)
    return KernelRidgeCV(alphas=alphas, kernel="linear", fit_intercept=True, cv=cv, warn=solver == "kernel")


def _alphas(alphas) -> np.ndarray:
    a = np.sort(np.asarray(alphas, dtype=float).ravel())
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError("alphas must be a non-empty list of positive finite penalties, e.g. "
                         "np.logspace(-50, 49, 100)")
    return a


def _matrix(X, name: str, ndim: int = 2) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim == 1 and ndim == 2:
        X = X[:, None]
    if X.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or infinite values: remove or impute them first")
    return X


def ridge_predict(X_train, Y_train, X_test, alphas=TUCKUTE_ALPHAS, inner_cv=None, scale: str = "demean",
                  solver: str = "auto", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit a ridge regression per target column on the training stimuli (features scaled and targets
    centred with training statistics, penalty per target by inner cross-validation on the training stimuli)
    and predict the test stimuli: (predictions [n_test, n_targets] in centred target units, chosen alphas
    [n_targets]). ``inner_cv``: None for leave-one-out or a number of shuffled folds (seeded)."""
    X_train, X_test = _matrix(X_train, "X_train"), _matrix(X_test, "X_test")
    Y_train = _matrix(Y_train, "Y_train")
    if len(X_train) != len(Y_train) or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"X_train {X_train.shape}, Y_train {Y_train.shape} and X_test {X_test.shape} do not fit: "
                         "training rows must match and both feature sets need the same units")
    X_train, X_test = _scaled(X_train, X_test, scale)
    Y_train = Y_train - Y_train.mean(axis=0)
    model = _estimator(solver, *X_train.shape, _alphas(alphas), _inner_cv(inner_cv, len(X_train), seed))
    with _numpy_backend():
        model.fit(X_train, Y_train)
        predictions = np.asarray(model.predict(X_test), dtype=float)
    return predictions.reshape(len(X_test), -1), np.asarray(model.best_alphas_, dtype=float).ravel()


# --- scores -------------------------------------------------------------------------------------------------

def _clipped_r(predictions: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Tuckute et al.'s r: Pearson r per column, 0 when negative or when a side is constant."""
    r = column_correlations(predictions, observed)
    return np.where(np.isfinite(r) & (r > 0), r, 0.0)


def _without_negligible(predictions: np.ndarray, Y_train: np.ndarray, tolerance: float = 1e-10) -> np.ndarray:
    """Predictions whose spread is below ``tolerance`` times the training target's SD set to exactly 0: the
    penalty has shrunk them to the intercept, and what varies is rounding error, whose correlation with
    anything is meaningless. They then count as constant (r = 0, reliability at its floor)."""
    negligible = predictions.std(axis=0) <= tolerance * Y_train.std(axis=0)
    return np.where(negligible[None, :], 0.0, predictions)


def _responses(responses, n_stimuli: int) -> np.ndarray:
    Y = np.asarray(responses, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim not in (2, 3) or len(Y) != n_stimuli:
        raise ValueError(f"responses must be [stimuli, channels] or [stimuli, channels, repetitions] with the "
                         f"{n_stimuli} stimuli of features, in the same order; got shape {Y.shape}")
    if Y.ndim == 3 and Y.shape[2] < 2:
        raise ValueError("responses with a repetitions axis need at least 2 repetitions for the noise "
                         "correction; pass responses[:, :, 0] for uncorrected scores")
    if not np.all(np.isfinite(Y)):
        raise ValueError("responses contain NaN or infinite values: remove or impute them first")
    return Y


def _splits(splits, n_stimuli: int) -> tuple[np.ndarray, np.ndarray]:
    if len(splits) != 2:
        raise ValueError("splits must be a pair (train [n_splits, n_train], test [n_splits, n_test]) of index "
                         "arrays, as random_splits returns it")
    train, test = (np.atleast_2d(np.asarray(s)) for s in splits)
    if len(train) != len(test):
        raise ValueError(f"splits must be (train, test) with one row per split, got {len(train)} and {len(test)} rows")
    for tr, te in zip(train, test):
        if np.intersect1d(tr, te).size or min(tr.min(), te.min()) < 0 or max(tr.max(), te.max()) >= n_stimuli:
            raise ValueError("each split's train and test indices must be disjoint stimulus indices in "
                             f"[0, {n_stimuli}); make them with random_splits")
    return train, test


def encoding_scores(features, responses, splits, alphas=TUCKUTE_ALPHAS, inner_cv=None, scale: str = "demean",
                    solver: str = "auto", seed: int = 0) -> EncodingScores:
    """Test-set scores of ridge encoding models from ``features`` [stimuli, units] to ``responses``
    [stimuli, channels] (r^2 only) or [stimuli, channels, repetitions] (r^2 of the model of the mean over
    repetitions, and its noise-corrected value), for each split of ``splits`` = (train, test) index arrays
    as ``random_splits`` returns them. See the module docstring for the protocol."""
    X = _matrix(features, "features")
    Y = _responses(responses, len(X))
    train, test = _splits(splits, len(X))
    per_split = [_split_scores(X, Y, tr, te, alphas, inner_cv, scale, solver, seed) for tr, te in zip(train, test)]
    fields = list(zip(*per_split))
    stacked = [None if f[0] is None else np.stack(f) for f in fields]
    return EncodingScores(*stacked)


def _split_scores(X, Y, train, test, alphas, inner_cv, scale, solver, seed):
    """(r2, r2_corrected, r_v, r_v_hat, alphas) of one split, each [n_channels] (None without repetitions)."""
    mean = Y.mean(axis=2) if Y.ndim == 3 else Y
    n_channels = mean.shape[1]
    # the mean model and, with repetitions, one model per repetition: one fit, a penalty per column
    columns = mean if Y.ndim == 2 else np.concatenate([mean] + [Y[:, :, k] for k in range(Y.shape[2])], axis=1)
    predictions, chosen = ridge_predict(X[train], columns[train], X[test], alphas, inner_cv, scale, solver, seed)
    predictions = _without_negligible(predictions, columns[train])
    r2 = _clipped_r(predictions[:, :n_channels], mean[test]) ** 2
    if Y.ndim == 2:
        return r2, None, None, None, chosen[:n_channels]
    single = predictions[:, n_channels:].reshape(len(test), Y.shape[2], n_channels).transpose(0, 2, 1)
    r_v = np.maximum(_pairwise_reliability(Y[train]), reliability_floor(len(train)))
    r_v_hat = np.maximum(_pairwise_reliability(single), reliability_floor(len(test)))
    return r2, r2 / (r_v * r_v_hat), r_v, r_v_hat, chosen[:n_channels]


def target_medians(scores, clip_max: float | None = None, over_splits: str = "median") -> np.ndarray:
    """Per target channel, the median (or "mean") across splits of scores [n_splits, n_channels], then
    clipped at ``clip_max`` (Tuckute et al. clip corrected R^2 at 1 after the median)."""
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if over_splits not in ("median", "mean"):
        raise ValueError(f"over_splits must be 'median' or 'mean', got {over_splits!r}")
    per_target = np.nanmedian(s, axis=0) if over_splits == "median" else np.nanmean(s, axis=0)
    return per_target if clip_max is None else np.minimum(per_target, clip_max)


def summarise(scores, groups=None, clip_max: float | None = None, over_splits: str = "median") -> float:
    """One number for a layer: ``target_medians``, then the median across channels; with ``groups`` (one
    label per channel, e.g. its participant) the median within each group, then the mean across groups."""
    per_target = target_medians(scores, clip_max, over_splits)
    if groups is None:
        return float(np.nanmedian(per_target))
    groups = np.asarray(groups)
    if groups.shape != per_target.shape:
        raise ValueError(f"groups must give one label per channel ({per_target.shape[0]}), got shape {groups.shape}")
    return float(np.mean([np.nanmedian(per_target[groups == g]) for g in np.unique(groups)]))
