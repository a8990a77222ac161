"""CLIP-Dissect's five neuron-concept similarity functions, scored over all neurons of a layer at once.

Oikarinen & Weng, "CLIP-Dissect" (ICLR 2023), as used by Audio Network Dissection (Wu et al., ICML 2024).
Notation: A [N, U] activations (N inputs, U neurons); P [N, M] input-concept scores, e.g. cosines of audio
and concept embeddings (no softmax); every function returns S [U, M] (float64), higher = better match,
and a neuron's label is its argmax concept (`top_concepts`).

Differences from the AND code, on purpose:

- The whole layer is scored in one call. AND scored one neuron at a time, which made soft-WPMI
  identically 0 (with lam = 1 the marginal log p(c) equals the neuron's own log p(c|u)) and left
  rank_reorder with floor(5 * 0.05) = 0 inputs (NaN). wpmi and soft_wpmi refuse a single neuron.
- rank_reorder uses true ranks, argsort(argsort(c)); AND applied argsort once.
- A neuron whose activation is constant over the inputs carries no ordering to match, and cos / cos3
  would divide by zero for it: every function returns a NaN row for it (`constant_neurons` lists them),
  and wpmi / soft_wpmi leave it out of the marginal p(c). `top_concepts` gives it -1, not a label.

Scale of P: raw cosines, as CLIP-Dissect does. Its `utils.get_similarity_from_activations` L2-normalises
the CLIP image and text features and passes `clip_feats = image_features @ text_features.T`, cosines in
[-1, 1] with no logit scale and no softmax, to the function; the only softmax is inside `similarity.wpmi`
and `similarity.soft_wpmi`, `softmax(a * clip_feats, dim=1)` over concepts, and its temperature is a
(2 and 10). AND's TAB calls the same function (its `utils.py`). AND's DB (`data_utils.
get_similarity_from_descriptions`) instead passes softmax(100 * cosine) of caption and concept text
features, so its wpmi applies a second softmax to probabilities. cos, cos3 and the argmax of
rank_reorder do not depend on a positive scale of P, but wpmi and soft_wpmi do: 100 * cosine turns
their softmax into a near-hard vote for the best concept of each input.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.special import logsumexp, softmax

FUNCTIONS = ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")

DEFAULTS = {
    "cos": {},
    "cos3": {"min_norm": 1e-3},
    "rank_reorder": {"top_fraction": 0.05, "p": 3.0, "scale_p": 0.5, "permutations": 5, "seed": 0,
                     "min_mean_score": 1e-6},
    "wpmi": {"top_k": 28, "a": 2.0, "lam": 0.6, "eps": 1e-7},
    "soft_wpmi": {"top_k": 100, "a": 10.0, "lam": 1.0, "p_start": 0.998, "p_end": 0.97, "eps": 1e-7},
}


# ---------------------------------------------------------------------------------------------- API


def similarity(name: str, activations, concept_scores, **params) -> np.ndarray:
    """S [U, M] = similarity function `name` (one of FUNCTIONS) of activations [N, U] and concept_scores
    [N, M], with DEFAULTS[name] overridden by params. NaN rows for constant neurons."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown similarity function {name!r}; choose one of {', '.join(FUNCTIONS)}")
    settings = _settings(name, params)
    A, P = _validated_pair(activations, concept_scores)
    if name in ("wpmi", "soft_wpmi") and A.shape[1] < 2:
        raise ValueError(f"{name} needs a whole layer, got {A.shape[1]} neuron: its log p(c) is a mean over "
                         "the layer's neurons, and with one neuron soft_wpmi is identically 0. "
                         "Pass all neurons of the layer in one call")
    constant = constant_neurons(A)
    scores = _FUNCTIONS[name](A, P, constant, **settings)
    scores[constant] = np.nan
    return scores


def constant_neurons(activations, atol: float = 0.0) -> np.ndarray:
    """bool [U]: True where a neuron's activation varies by at most atol (max - min) over the inputs."""
    A = _matrix(activations, "activations", "[inputs, neurons]")
    if not atol >= 0:
        raise ValueError(f"atol must be >= 0, got {atol!r}")
    return np.ptp(A, axis=0) <= atol


def top_concepts(scores: np.ndarray, k: int) -> np.ndarray:
    """int [U, k]: each neuron's k best concept indices, best first; equal scores keep the lower index
    first. NaN scores rank last and their slots are -1, so a NaN row (constant neuron) gives all -1."""
    S = np.asarray(scores, dtype=np.float64)
    if S.ndim != 2:
        raise ValueError(f"scores must be 2-D [neurons, concepts], got shape {S.shape}")
    if not (isinstance(k, numbers.Integral) and 1 <= k <= S.shape[1]):
        raise ValueError(f"k must be an integer from 1 to the number of concepts ({S.shape[1]}), got {k!r}")
    best = np.argsort(-S, axis=1, kind="stable")[:, :k]  # argsort puts NaN last
    best[np.isnan(np.take_along_axis(S, best, axis=1))] = -1
    return best


MIN_RANK_INPUTS = 5


def similarity_params(function: str, clips: int) -> dict:
    """CLIP-Dissect's defaults, except that rank-reorder keeps at least MIN_RANK_INPUTS top clips: its 5 %
    of a small probe set is one or two clips, which carry no ranking information (the row would be NaN)."""
    if function == "rank_reorder":
        return {"top_fraction": min(1.0, max(0.05, MIN_RANK_INPUTS / clips))}
    return {}


# ---------------------------------------------------------------------------------- the functions


def _cos(A, P, constant):
    """S_uj = <A_:u, P_:j> / (||A_:u|| ||P_:j||), columns not centred. A concept column of zeros gives NaN."""
    a_norm = np.where(constant, 1.0, np.linalg.norm(A, axis=0))  # constant rows become NaN anyway
    with np.errstate(divide="ignore", invalid="ignore"):
        return (A / a_norm).T @ (P / np.linalg.norm(P, axis=0))


def _cos3(A, P, constant, min_norm):
    """S = Ã^T P̃, X̃ = (X - column mean)^3 with each column divided by max(||.||_2, min_norm)."""
    return _centred_cubed(A, min_norm).T @ _centred_cubed(P, min_norm)


def _centred_cubed(X, min_norm):
    cubed = (X - X.mean(axis=0)) ** 3
    return cubed / np.maximum(np.linalg.norm(cubed, axis=0), min_norm)


def _rank_reorder(A, P, constant, top_fraction, p, scale_p, permutations, seed, min_mean_score):
    """S_uj = -E_uj / (mean_k c_kj)^scale_p, E_uj = mean_k |a_k - ã_kj|^p / B_u, for each neuron u:

    a = the activations of u's top n = max(1, floor(top_fraction * N)) inputs, descending; c = P at those
    inputs; ã_kj = a_up[r_kj], with a_up = a ascending and r = argsort(argsort(c_:j)) the rank of input k
    for concept j; B_u = mean over permutations π of mean_k |a_up - π(a_up)|^p.

    The max(1, .) guard: floor alone keeps 0 inputs when N < 1 / top_fraction (20 at 0.05). With n = 1
    (or all top activations equal) every ordering is perfect, B_u = 0 and the row is NaN: no information.
    For n = 2 all random permutations can be the identity (2^-K), also B_u = 0 and NaN: keep n >= 3.
    mean c_j <= 0 is clipped to min_mean_score, so such a concept gets a large error, not NaN or inf.
    `permutations` is a count of random permutations (numpy Generator seeded with `seed`) or an explicit
    int array [K, n] of index permutations used for every neuron.
    """
    n = top_count(top_fraction, A.shape[0])
    top = _top_inputs(A, n)                                       # [n, U]
    a_up = np.take_along_axis(A, top, axis=0)[::-1].T             # [U, n], ascending
    baseline = _permutation_baseline(a_up, _permutation_indices(permutations, seed, *a_up.shape), p)
    scores = np.full((A.shape[1], P.shape[1]), np.nan)
    for u in np.flatnonzero(~constant & (baseline > 0)):
        scores[u] = _rank_reorder_neuron(a_up[u], P[top[:, u]], baseline[u], p, scale_p, min_mean_score)
    return scores


def top_count(top_fraction: float, inputs: int) -> int:
    """max(1, floor(top_fraction * inputs)), where a fraction such as 5 / 77 gives 5 despite rounding."""
    return max(1, int(np.floor(top_fraction * inputs + 1e-9)))


def _rank_reorder_neuron(a_up, c, baseline, p, scale_p, min_mean_score):
    reordered = a_up[_ranks(c)]
    error = np.mean(np.abs(a_up[::-1, None] - reordered) ** p, axis=0) / baseline
    return -error / np.maximum(c.mean(axis=0), min_mean_score) ** scale_p


def _ranks(c):
    """int [n, M]: rank of each row within its column, 0 = smallest, ties by row: argsort(argsort(c)),
    with the second sort replaced by inverting the permutation."""
    order = np.argsort(c, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(len(c))[:, None], axis=0)
    return ranks


def _permutation_indices(permutations, seed, neurons, n):
    """int [U, K, n]: K random permutations of range(n) per neuron, or the explicit ones for every neuron."""
    if isinstance(permutations, numbers.Integral):
        identity = np.broadcast_to(np.arange(n), (neurons, permutations, n))
        return np.random.default_rng(seed).permuted(identity, axis=-1)
    explicit = np.asarray(permutations)
    is_permutation = explicit.ndim == 2 and explicit.shape[1] == n and np.array_equal(
        np.sort(explicit, axis=1), np.broadcast_to(np.arange(n), explicit.shape))
    if not is_permutation:
        raise ValueError(f"explicit permutations must be an int array [K, n] whose rows each reorder "
                         f"0..n-1, with n = {n} (the number of top inputs kept); got shape {explicit.shape}")
    return np.broadcast_to(explicit, (neurons, *explicit.shape))


def _permutation_baseline(a_up, perms, p):
    """B [U] = mean over permutations and positions of |a_up - a_up[perm]|^p."""
    shuffled = np.take_along_axis(a_up[:, None, :], perms, axis=-1)
    return np.mean(np.abs(a_up[:, None, :] - shuffled) ** p, axis=(1, 2))


def _wpmi(A, P, constant, top_k, a, lam, eps):
    """S = log p(c_j|u) - lam log p(c_j), with Q = softmax(a P) over concepts, log p(c_j|u) = sum of
    log(Q_ij + eps) over u's top_k inputs, log p(c_j) = logsumexp_u log p(c_j|u) - log U."""
    weights = np.ones(min(top_k, A.shape[0]))
    return _pmi(_log_p_concept_given_neuron(A, P, a, weights, eps), constant, lam)


def _soft_wpmi(A, P, constant, top_k, a, lam, p_start, p_end, eps):
    """As wpmi, but log p(c_j|u) = sum_k log(1 + π_k (Q_{i_k j} - 1) + eps) over u's inputs i_k ranked by
    activation, π_k = p_start - (k / top_k)(p_start - p_end), k = 0..top_k-1, top_k clamped to N."""
    k = min(top_k, A.shape[0])
    weights = p_start - np.arange(k) / k * (p_start - p_end)
    return _pmi(_log_p_concept_given_neuron(A, P, a, weights, eps), constant, lam)


def _log_p_concept_given_neuron(A, P, a, weights, eps):
    """[U, M] = sum_k log(1 + w_k (Q_{i_k j} - 1) + eps), i_k the k-th most activating input of neuron u.

    With w_k = 1 this is wpmi's sum of log(Q + eps). Looping over the (at most top_k) rank positions keeps
    memory at [U, M] instead of [U, top_k, M].
    """
    Q = softmax(a * P, axis=1)
    top = _top_inputs(A, len(weights))
    total = np.zeros((A.shape[1], P.shape[1]))
    for rank, weight in enumerate(weights):
        # (1 - w) + w Q rather than 1 + w (Q - 1): exact log(Q + eps) for w = 1 even when Q is tiny
        total += np.log((1 - weight) + weight * Q[top[rank]] + eps)
    return total


def _pmi(log_p_given, constant, lam):
    """log p(c|u) - lam log p(c), the marginal log p(c) taken over the non-constant neurons only."""
    varying = log_p_given[~constant]
    if len(varying) == 0:
        return np.full_like(log_p_given, np.nan)
    log_p = logsumexp(varying, axis=0) - np.log(len(varying))
    return log_p_given - lam * log_p


def _top_inputs(A, k):
    """int [k, U]: each neuron's k most activating inputs, descending; ties keep the lower input index."""
    return np.argsort(-A, axis=0, kind="stable")[:k]


_FUNCTIONS = {"cos": _cos, "cos3": _cos3, "rank_reorder": _rank_reorder, "wpmi": _wpmi,
              "soft_wpmi": _soft_wpmi}


# ------------------------------------------------------------------------------------- validation


def _matrix(x, name, axes) -> np.ndarray:
    try:
        X = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a numeric array {axes}: {error}") from None
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D {axes}, got shape {X.shape}; "
                         "for a single neuron or concept pass x[:, None]")
    if 0 in X.shape:
        raise ValueError(f"{name} is empty (shape {X.shape}); it needs at least one row and one column")
    bad = np.count_nonzero(~np.isfinite(X))
    if bad:
        raise ValueError(f"{name} has {bad} non-finite entries (NaN or inf) out of {X.size}; "
                         "drop or repair those inputs before scoring")
    return X


def _validated_pair(activations, concept_scores):
    A = _matrix(activations, "activations", "[inputs, neurons]")
    P = _matrix(concept_scores, "concept_scores", "[inputs, concepts]")
    if A.shape[0] != P.shape[0]:
        raise ValueError(f"activations has {A.shape[0]} inputs (rows) but concept_scores has {P.shape[0]}; "
                         "both need one row per input, in the same order")
    if A.shape[0] < 2:
        raise ValueError(f"need at least 2 inputs to compare orderings, got {A.shape[0]}")
    return A, P


def _settings(name, params) -> dict:
    unknown = sorted(set(params) - set(DEFAULTS[name]))
    if unknown:
        valid = ", ".join(DEFAULTS[name]) or "none"
        raise TypeError(f"unknown parameter(s) for {name!r}: {', '.join(unknown)}; valid parameters: {valid}")
    settings = {**DEFAULTS[name], **params}
    for key, value in settings.items():
        _CHECKS[key](key, value)
    return settings


def _positive_int(key, value):
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _positive(key, value):
    if not (isinstance(value, numbers.Real) and value > 0):
        raise ValueError(f"{key} must be a number > 0, got {value!r}")


def _non_negative(key, value):
    if not (isinstance(value, numbers.Real) and value >= 0):
        raise ValueError(f"{key} must be a number >= 0, got {value!r}")


def _fraction(key, value):
    if not (isinstance(value, numbers.Real) and 0 < value <= 1):
        raise ValueError(f"{key} must lie in (0, 1], got {value!r}")


def _real(key, value):
    if not isinstance(value, numbers.Real):
        raise ValueError(f"{key} must be a number, got {value!r}")


def _seed(key, value):
    if not (value is None or isinstance(value, numbers.Integral)):
        raise ValueError(f"{key} must be an integer or None, got {value!r}")


def _permutation_count_or_array(key, value):
    if isinstance(value, numbers.Integral):
        _positive_int(key, value)
    elif not np.issubdtype(np.asarray(value).dtype, np.integer):
        raise ValueError(f"{key} must be a positive integer (how many random permutations) or an int array "
                         f"[K, n] of explicit index permutations, got {value!r}")


_CHECKS = {
    "min_norm": _positive, "top_fraction": _fraction, "p": _positive, "scale_p": _non_negative,
    "permutations": _permutation_count_or_array, "seed": _seed, "min_mean_score": _positive,
    "top_k": _positive_int, "a": _positive, "lam": _real, "eps": _non_negative,
    "p_start": _fraction, "p_end": _fraction,
}
