"""Representational similarity analysis through rsatoolbox (Nili et al. 2014; Schuett et al. 2023).

An RDM (representational dissimilarity matrix) holds one dissimilarity per pair of stimuli. Functions accept
and return it either as a square symmetric matrix [n, n] with a zero diagonal or "condensed": the upper
triangle read row by row, a vector of n (n - 1) / 2 values, which is both scipy's ``squareform`` order and
rsatoolbox's RDM vector order. Several RDMs (one per participant) are a stack [k, n, n] or [k, n (n - 1) / 2].

- ``layer_rdm``: rsatoolbox ``calc_rdm`` on the activations [stimuli, units]. Default "correlation":
  1 - Pearson r between two stimuli's activation patterns; "euclidean" is rsatoolbox's squared Euclidean
  distance divided by the number of units.
- ``compare_rdms``: rsatoolbox ``rdm.compare``: "spearman" (rank correlation), "tau-a" (Kendall's tau-a,
  no tie correction: the right choice against a categorical RDM, whose many ties a tau-b or Spearman
  would reward; Nili et al. 2014), "cosine_cov" (whitened cosine, Diedrichsen et al. 2021: the cosine
  of the double-centred RDMs, equal to the linear CKA of the underlying patterns for Euclidean RDMs, and
  like the biased CKA clearly above 0 for unrelated patterns when stimuli are few relative to units), and
  rsatoolbox's "rho-a", "corr", "cosine", "corr_cov".
- ``bootstrap_ci``: bootstrap over stimuli as rsatoolbox's ``eval_bootstrap_pattern`` does it. For
  "cosine_cov"/"corr_cov" on 100 stimuli or more, a resampled RDM's missing self-pairs make rsatoolbox 0.3.2
  fail (its sparse branch); that case is computed here with rsatoolbox's own formula (unit-tested equal to
  its dense branch).
- ``noise_ceiling``: rsatoolbox's ``boot_noise_ceiling`` (Nili et al. 2014).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

RDM_METHODS = ("correlation", "euclidean")
COMPARE_METHODS = ("spearman", "tau-a", "cosine_cov", "rho-a", "corr", "cosine", "corr_cov")
MIN_UNIQUE_STIMULI = 3  # rsatoolbox's eval_bootstrap_pattern drops a bootstrap sample with fewer


class BootstrapCI(NamedTuple):
    """The statistic on all stimuli, the percentile interval and the bootstrap distribution (NaN where a
    sample had fewer than 3 distinct stimuli)."""
    estimate: float
    low: float
    high: float
    samples: np.ndarray


# --- RDM shapes -------------------------------------------------------------------------------------------

def n_stimuli_of(n_pairs: int) -> int:
    """The n with n (n - 1) / 2 == n_pairs, or a ValueError."""
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs)) / 2))
    if n * (n - 1) // 2 != n_pairs:
        raise ValueError(f"a condensed RDM has n (n - 1) / 2 entries for n stimuli; {n_pairs} is not such a "
                         "number: pass the upper triangle of a square RDM, row by row")
    return n


def _is_square_rdm(a: np.ndarray) -> bool:
    return a.ndim == 2 and a.shape[0] == a.shape[1] and np.allclose(a, a.T, equal_nan=True) \
        and np.allclose(np.diag(a), 0.0)


def _condensed_stack(rdms, name: str) -> np.ndarray:
    """rdms (one RDM, square or condensed, or a stack of them) as a float array [k, n_pairs]."""
    a = np.asarray(rdms, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim == 2 and _is_square_rdm(a):
        a = a[None]
    if a.ndim == 3:
        if a.shape[1] != a.shape[2] or not all(_is_square_rdm(m) for m in a):
            raise ValueError(f"{name}: a stack of square RDMs must be [k, n, n], symmetric with a zero diagonal, "
                             f"got shape {a.shape}")
        upper = np.triu_indices(a.shape[1], k=1)
        a = a[:, upper[0], upper[1]]
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{name} must be an RDM [n, n] or [n (n-1)/2], or a stack [k, n, n] or [k, n (n-1)/2], "
                         f"got shape {np.shape(rdms)}")
    n_stimuli_of(a.shape[1])
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite dissimilarities: every pair of stimuli needs a value")
    return a


def _square(vectors: np.ndarray) -> np.ndarray:
    """[k, n_pairs] -> [k, n, n] (NaN entries stay NaN, the diagonal is 0)."""
    n = n_stimuli_of(vectors.shape[1])
    out = np.zeros((len(vectors), n, n))
    upper = np.triu_indices(n, k=1)
    out[:, upper[0], upper[1]] = vectors
    out[:, upper[1], upper[0]] = vectors
    return out


def _rdms(vectors: np.ndarray):
    """An rsatoolbox RDMs object (with its default 'index' pattern descriptor) from [k, n_pairs]."""
    from rsatoolbox.rdm import RDMs

    return RDMs(dissimilarities=np.atleast_2d(vectors))


def _method(method: str) -> str:
    if method not in COMPARE_METHODS:
        raise ValueError(f"method must be one of {COMPARE_METHODS}, got {method!r}")
    return method


# --- RDMs -------------------------------------------------------------------------------------------------

def _features(features) -> np.ndarray:
    X = np.asarray(features, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D array [stimuli, units], got shape {X.shape}; "
                         "pool or flatten each stimulus's activations first")
    if X.shape[0] < MIN_UNIQUE_STIMULI or X.shape[1] == 0:
        raise ValueError(f"features must have at least {MIN_UNIQUE_STIMULI} stimuli and one unit, "
                         f"got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("features contain NaN or infinite values: remove those stimuli or units first")
    return X


def layer_rdm(features, method: str = "correlation", square: bool = False) -> np.ndarray:
    """The RDM of a layer's activations [stimuli, units] by rsatoolbox ``calc_rdm``: condensed
    [n (n-1)/2] by default, [n, n] with ``square=True``. ``method`` is "correlation" (1 - Pearson r between
    stimuli, the default) or "euclidean" (squared Euclidean distance / number of units)."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    if method not in RDM_METHODS:
        raise ValueError(f"method must be one of {RDM_METHODS}, got {method!r}")
    X = _features(features)
    if method == "correlation":
        flat = np.flatnonzero(np.ptp(X, axis=1) == 0)
        if flat.size:
            raise ValueError(f"stimuli {flat.tolist()[:10]} have the same activation in every unit: their "
                             "correlation distance is undefined; drop them or use method='euclidean'")
    vector = calc_rdm(Dataset(X), method=method).get_vectors()[0]
    return _square(vector[None])[0] if square else vector


def label_rdm(labels, square: bool = False) -> np.ndarray:
    """The categorical RDM of a label per stimulus: 0 for a pair with the same label, 1 otherwise
    (condensed by default, [n, n] with ``square=True``)."""
    array = np.asarray(labels, dtype=object)
    if array.ndim != 1 or len(array) < MIN_UNIQUE_STIMULI:
        raise ValueError(f"labels must be a 1-D sequence of at least {MIN_UNIQUE_STIMULI} labels, one per "
                         f"stimulus, got shape {array.shape}")
    labels = pd.Series(array)
    if labels.isna().any():
        raise ValueError(f"labels of stimuli {np.flatnonzero(labels.isna()).tolist()[:10]} are missing: "
                         "drop those stimuli or give them a label")
    codes = pd.factorize(labels)[0]
    if codes.max() == 0:
        raise ValueError("every stimulus has the same label, so the categorical RDM is constant: "
                         "give at least two classes")
    upper = np.triu_indices(len(codes), k=1)
    vector = (codes[upper[0]] != codes[upper[1]]).astype(float)
    return _square(vector[None])[0] if square else vector


def resample_rdm(rdm, index) -> np.ndarray:
    """The RDM of the stimuli ``index`` (with repeats, in sorted order), as rsatoolbox's
    ``RDMs.subsample_pattern`` makes it for a bootstrap: the pair of a stimulus with its own copy is NaN (a
    zero no model should be credited for). Returns condensed [m (m-1)/2] for a condensed input, else [m, m].
    For a correlation or Euclidean RDM this equals recomputing the RDM on the resampled stimuli, apart from
    those NaN self-pairs."""
    vectors = _condensed_stack(rdm, "rdm")
    if len(vectors) != 1:
        raise ValueError("resample_rdm takes one RDM; loop over a stack")
    out = _resampled(vectors, np.asarray(index))[0]
    return out if np.ndim(rdm) == 1 else _square(out[None])[0]


def _resampled(vectors: np.ndarray, index: np.ndarray) -> np.ndarray:
    n = n_stimuli_of(vectors.shape[1])
    index = np.asarray(index)
    if index.ndim != 1 or index.size == 0 or not np.issubdtype(index.dtype, np.integer) \
            or index.min() < 0 or index.max() >= n:
        raise ValueError(f"index must be a 1-D array of stimulus indices in [0, {n}), got {index!r}")
    return _rdms(vectors).subsample_pattern("index", index).get_vectors()


# --- comparisons ------------------------------------------------------------------------------------------

RSATOOLBOX_SPARSE_THRESHOLD = 100  # rsatoolbox.rdm.compare._cov_weighting's SPARSE_THRESHOLD


def _compare(model_vectors: np.ndarray, target_vectors: np.ndarray, method: str) -> np.ndarray:
    from rsatoolbox.rdm import compare

    if method in ("cosine_cov", "corr_cov") and np.isnan(model_vectors).any() \
            and n_stimuli_of(model_vectors.shape[1]) >= RSATOOLBOX_SPARSE_THRESHOLD:
        return _whitened_cosine_with_gaps(model_vectors[0], target_vectors, centre=method == "corr_cov")
    return compare(_rdms(model_vectors), _rdms(target_vectors), method=method)[0]


def _whitened_cosine_with_gaps(model: np.ndarray, targets: np.ndarray, centre: bool) -> np.ndarray:
    """rsatoolbox's "cosine_cov" ("corr_cov" with ``centre``) for RDMs with missing pairs (NaN, the same in
    all), as ``rdm.compare._cov_weighting`` computes it on its dense branch: the observed dissimilarities d
    and a zero diagonal, v = -d/2, minus the additive fit v S A^-1 S^T W (S: rows e_i + e_j for an observed
    pair, e_i for a diagonal entry; W: weights 1/2 and 1; A = S^T W S), off-diagonal entries times sqrt(2),
    then the cosine. In O(n^2) memory: rsatoolbox 0.3.2's sparse branch, taken from 100 stimuli on, fails
    with missing pairs (int8 indicator matrices, and a matrix product where an elementwise one is meant)."""
    from scipy.sparse import csr_matrix

    observed = ~np.isnan(model)
    if not np.array_equal(observed, ~np.isnan(targets).any(axis=0)):
        raise ValueError("model and target RDMs must miss the same pairs")
    n = n_stimuli_of(len(model))
    upper = np.triu_indices(n, k=1)
    pi, pj = upper[0][observed], upper[1][observed]
    incidence = csr_matrix((np.ones(2 * len(pi)), (np.tile(np.arange(len(pi)), 2), np.concatenate([pi, pj]))),
                           shape=(len(pi), n))
    A = 0.5 * (incidence.T @ incidence).toarray() + np.eye(n)
    vectors = np.vstack([model[observed], targets[:, observed]])
    if centre:
        vectors = vectors - vectors.mean(axis=1, keepdims=True)
    v = -0.5 * vectors
    x = np.linalg.solve(A, (incidence.T @ v.T)).T  # [k + 1, n]
    whitened = np.hstack([np.sqrt(2) * (v - 0.5 * (x[:, pi] + x[:, pj])), -x])
    norms = np.linalg.norm(whitened, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = whitened[1:] @ whitened[0] / (norms[1:] * norms[0])
    return np.where((norms[1:] > 0) & (norms[0] > 0), cos, 0.0)


def compare_rdms(model_rdm, target_rdms, method: str = "spearman") -> np.ndarray:
    """Similarity of one model RDM with each target RDM (one per participant, or a single target), by
    rsatoolbox ``rdm.compare``: an array [k] with one value per target RDM. Their mean is the score that
    ``noise_ceiling`` brackets."""
    model = _condensed_stack(model_rdm, "model_rdm")
    targets = _condensed_stack(target_rdms, "target_rdms")
    if len(model) != 1:
        raise ValueError(f"model_rdm must be a single RDM, got a stack of {len(model)}")
    if model.shape[1] != targets.shape[1]:
        raise ValueError(f"model_rdm covers {n_stimuli_of(model.shape[1])} stimuli and target_rdms "
                         f"{n_stimuli_of(targets.shape[1])}: both must be on the same stimuli, in the same order")
    return _compare(model, targets, _method(method))


def compare_rdms_with_gaps(model_rdm, target_rdms, method: str = "spearman") -> np.ndarray:
    """``compare_rdms`` for condensed RDMs with missing pairs (NaN, in the same places in every RDM):
    rsatoolbox compares the pairs present, as it does for a bootstrap sample's excluded self-pairs."""
    model = np.atleast_2d(np.asarray(model_rdm, dtype=float))
    targets = np.atleast_2d(np.asarray(target_rdms, dtype=float))
    if len(model) != 1 or model.shape[1] != targets.shape[1]:
        raise ValueError(f"model_rdm must be one condensed RDM and target_rdms condensed RDMs of the same length, "
                         f"got shapes {model.shape} and {targets.shape}")
    n_stimuli_of(model.shape[1])
    gaps = np.isnan(model[0])
    if (np.isnan(targets) != gaps).any() or np.isinf(model).any() or np.isinf(targets).any():
        raise ValueError("the RDMs must miss the same pairs (NaN) and hold no infinite values")
    if (~gaps).sum() < 3:
        raise ValueError("fewer than 3 pairs are present in both RDMs")
    return _compare(model, targets, _method(method))


def bootstrap_ci(features, target_rdms, method: str = "spearman", n_bootstrap: int = 1000, seed: int = 0,
                 ci: float = 0.95, rdm_method: str = "correlation", groups=None) -> BootstrapCI:
    """Percentile bootstrap interval over stimuli of the similarity between a layer's RDM (from
    ``features`` [stimuli, units] with ``rdm_method``) and target RDMs (averaged over participants).

    Each sample draws n stimuli with replacement (``np.random.default_rng(seed)``) and compares the
    resampled RDMs as rsatoolbox's ``eval_bootstrap_pattern`` does: both RDMs subsampled with
    ``RDMs.subsample_pattern`` (equal to recomputing them on the resampled stimuli, with the pairs of a
    stimulus with its own copy excluded), the statistic is the mean over target RDMs of ``rdm.compare``,
    and a sample with fewer than 3 distinct stimuli is NaN and left out of the interval. Participants
    are not resampled. The interval is the (1-ci)/2 and 1-(1-ci)/2 quantiles of the valid samples.

    With ``groups`` (one id per stimulus, e.g. the recording a clip was cut from) the bootstrap draws groups
    instead: as many groups as there are, with replacement, each with all its stimuli. Pairs between two
    copies of the same group are excluded, as a stimulus's pair with its own copy is above: they would be
    within-group pairs that the data hold only once, and counting them again inflates the statistic
    whenever stimuli of a group resemble each other (clips of one recording do)."""
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), e.g. 0.95, got {ci!r}")
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be an integer >= 2 (1000 or more for a 95% interval), "
                         f"got {n_bootstrap!r}")
    model = _condensed_stack(layer_rdm(features, rdm_method), "layer RDM")
    targets = _condensed_stack(target_rdms, "target_rdms")
    if model.shape[1] != targets.shape[1]:
        raise ValueError(f"features have {len(np.asarray(features))} stimuli and target_rdms cover "
                         f"{n_stimuli_of(targets.shape[1])}: both must be on the same stimuli, in the same order")
    method = _method(method)
    estimate = float(np.mean(_compare(model, targets, method)))
    rng = np.random.default_rng(seed)
    if groups is None:
        samples = _bootstrap_samples(model, targets, method, int(n_bootstrap), rng)
    else:
        samples = _group_bootstrap_samples(model, targets, method, int(n_bootstrap), rng,
                                           _group_codes(groups, n_stimuli_of(model.shape[1])))
    valid = samples[np.isfinite(samples)]
    if valid.size < 2:
        raise ValueError("fewer than 2 bootstrap samples were valid: give more stimuli")
    low, high = np.quantile(valid, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return BootstrapCI(estimate, float(low), float(high), samples)


def _bootstrap_samples(model: np.ndarray, targets: np.ndarray, method: str, n_bootstrap: int,
                       rng: np.random.Generator) -> np.ndarray:
    n = n_stimuli_of(model.shape[1])
    samples = np.full(n_bootstrap, np.nan)
    for i in range(n_bootstrap):
        index = rng.integers(0, n, size=n)
        if len(np.unique(index)) >= MIN_UNIQUE_STIMULI:
            samples[i] = np.mean(_compare(_resampled(model, index), _resampled(targets, index), method))
    return samples


def _group_codes(groups, n_stimuli: int) -> np.ndarray:
    codes = pd.factorize(pd.Series(np.asarray(groups, dtype=object)))[0]
    if len(codes) != n_stimuli or (codes < 0).any():
        raise ValueError(f"groups must give one group id per stimulus ({n_stimuli}), none missing, "
                         f"got {len(codes)}")
    if codes.max() + 1 < MIN_UNIQUE_STIMULI:
        raise ValueError(f"a group bootstrap needs at least {MIN_UNIQUE_STIMULI} groups, got {codes.max() + 1}: "
                         "bootstrap over stimuli instead (groups=None)")
    return codes


def _group_bootstrap_samples(model: np.ndarray, targets: np.ndarray, method: str, n_bootstrap: int,
                             rng: np.random.Generator, codes: np.ndarray) -> np.ndarray:
    members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
    square_model, square_targets = _square(model), _square(targets)
    samples = np.full(n_bootstrap, np.nan)
    for i in range(n_bootstrap):
        drawn = rng.integers(0, len(members), size=len(members))
        index = np.concatenate([members[g] for g in drawn])
        copy = np.repeat(np.arange(len(drawn)), [len(members[g]) for g in drawn])
        if len(np.unique(index)) < MIN_UNIQUE_STIMULI:
            continue
        upper = np.triu_indices(len(index), k=1)
        i_, j_ = index[upper[0]], index[upper[1]]
        repeated = (codes[i_] == codes[j_]) & (copy[upper[0]] != copy[upper[1]])
        resampled_model = square_model[:, i_, j_]
        resampled_model[:, repeated] = np.nan
        resampled_targets = square_targets[:, i_, j_]
        resampled_targets[:, repeated] = np.nan
        samples[i] = np.mean(_compare(resampled_model, resampled_targets, method))
    return samples


def noise_ceiling(participant_rdms, method: str = "spearman") -> tuple[float, float]:
    """(lower, upper) noise ceiling of one RDM per participant [k >= 2, ...], by rsatoolbox's
    ``inference.boot_noise_ceiling``: the upper bound is the mean over participants of the similarity of
    each participant's RDM with the pooled RDM of all participants (the pooled RDM is the one that maximises
    that similarity under ``method``: mean of normalised RDMs, or of ranks for rank methods), the lower
    bound the same with the pooled RDM of the other participants (leave one participant out). For "tau-a"
    rsatoolbox pools mean ranks (its warning "Noise ceiling for tau based on averaged ranks!" is silenced)."""
    from rsatoolbox.inference import boot_noise_ceiling

    rdms = _condensed_stack(participant_rdms, "participant_rdms")
    if len(rdms) < 2:
        raise ValueError(f"a noise ceiling needs RDMs of at least 2 participants, got {len(rdms)}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Noise ceiling for tau based on averaged ranks")
        lower, upper = boot_noise_ceiling(_rdms(rdms), method=_method(method))
    return float(lower), float(upper)
