"""RSA through rsatoolbox (issue 15): RDMs, comparisons, bootstrap and noise ceiling, checked against
independent computations (scipy, direct formulas) and with planted structure."""

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import kendalltau, spearmanr

from audioprobe.compare import rsa
from audioprobe.compare.cka import linear_cka


def random(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d))


def tau_a(x, y):
    """Kendall's tau-a by its definition: (concordant - discordant) / (m (m-1) / 2), tied pairs count 0."""
    m = len(x)
    s = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in itertools.combinations(range(m), 2))
    return s / (m * (m - 1) / 2)


def whitened_cosine(d1, d2):
    """Cosine of the double-centred RDMs, G = -1/2 H D H, over the whole square matrices (Diedrichsen et al.
    2021's whitened RDM cosine without a noise covariance)."""
    def centred(d):
        D = squareform(d)
        H = np.eye(len(D)) - 1 / len(D)
        return -0.5 * H @ D @ H
    g1, g2 = centred(d1), centred(d2)
    return np.sum(g1 * g2) / np.sqrt(np.sum(g1 * g1) * np.sum(g2 * g2))


# --- RDMs ----------------------------------------------------------------------------------------------------

def test_layer_rdm_equals_scipy_distances_in_condensed_order():
    X = random(0, 12, 7)
    np.testing.assert_allclose(rsa.layer_rdm(X), pdist(X, "correlation"), atol=1e-12)
    np.testing.assert_allclose(rsa.layer_rdm(X, "euclidean"), pdist(X, "sqeuclidean") / 7, atol=1e-12)
    square = rsa.layer_rdm(X, square=True)
    np.testing.assert_allclose(square, squareform(pdist(X, "correlation")), atol=1e-12)


def test_label_rdm_is_zero_within_and_one_across_classes():
    labels = ["wood", "metal", "wood", "glass", "metal"]
    square = rsa.label_rdm(labels, square=True)
    expected = np.array([[float(a != b) for b in labels] for a in labels])
    np.testing.assert_array_equal(square, expected)
    np.testing.assert_array_equal(rsa.label_rdm(labels), squareform(expected))
    with pytest.raises(ValueError, match="same label"):
        rsa.label_rdm(["a", "a", "a"])
    with pytest.raises(ValueError, match="missing"):
        rsa.label_rdm(["a", None, "b"])


def test_resampling_an_rdm_equals_recomputing_it_without_self_pairs():
    X = random(1, 10, 6)
    index = np.array([7, 2, 2, 9, 0, 0, 0, 5, 3, 3])
    resampled = rsa.resample_rdm(rsa.layer_rdm(X, square=True), index)
    recomputed = rsa.layer_rdm(X[np.sort(index)], square=True)
    sorted_index = np.sort(index)
    self_pair = (sorted_index[:, None] == sorted_index[None, :]) & ~np.eye(len(index), dtype=bool)
    assert np.all(np.isnan(resampled[self_pair]))
    np.testing.assert_allclose(resampled[~self_pair], recomputed[~self_pair], atol=1e-12)


# --- comparisons -------------------------------------------------------------------------------------------

def test_spearman_equals_scipy_on_the_condensed_rdms():
    X, Y, Z = random(2, 14, 5), random(3, 14, 9), random(4, 14, 3)
    model = rsa.layer_rdm(X)
    targets = np.stack([rsa.layer_rdm(X + Y[:, :5]), rsa.layer_rdm(Z)])
    expected = [spearmanr(model, t)[0] for t in targets]
    np.testing.assert_allclose(rsa.compare_rdms(model, targets, "spearman"), expected, atol=1e-12)
    square_targets = np.stack([squareform(t) for t in targets])
    np.testing.assert_allclose(rsa.compare_rdms(squareform(model), square_targets, "spearman"), expected, atol=1e-12)


def test_tau_a_equals_the_definition_and_is_not_tau_b_when_there_are_ties():
    X = random(5, 12, 4)
    model = rsa.layer_rdm(X)
    labels = rsa.label_rdm(list("aaabbbbcccdd"))
    (value,) = rsa.compare_rdms(model, labels, "tau-a")
    assert value == pytest.approx(tau_a(model, labels), abs=1e-12)
    assert value != pytest.approx(kendalltau(model, labels)[0], abs=1e-3)  # tau-b corrects for the ties
    other = np.round(rsa.layer_rdm(X + random(6, 12, 4)), 1)  # ties on both sides
    assert rsa.compare_rdms(other, labels, "tau-a")[0] == pytest.approx(tau_a(other, labels), abs=1e-12)


def test_whitened_cosine_equals_its_formula_and_linear_cka_for_euclidean_rdms():
    X, Y = random(7, 15, 6), random(8, 15, 11)
    Y[:, :6] += X
    d1, d2 = rsa.layer_rdm(X, "euclidean"), rsa.layer_rdm(Y, "euclidean")
    (value,) = rsa.compare_rdms(d1, d2, "cosine_cov")
    assert value == pytest.approx(whitened_cosine(d1, d2), abs=1e-10)
    assert value == pytest.approx(linear_cka(X, Y), abs=1e-10)
    c1, c2 = rsa.layer_rdm(X), rsa.layer_rdm(Y)
    assert rsa.compare_rdms(c1, c2, "cosine_cov")[0] == pytest.approx(whitened_cosine(c1, c2), abs=1e-10)


@pytest.mark.parametrize("method", ["spearman", "tau-a", "cosine_cov"])
def test_a_target_made_from_one_layer_peaks_at_that_layer(method):
    n = 30
    layers = [random(10 + k, n, d) for k, d in enumerate((8, 20, 50, 12, 35))]
    planted = 2
    participants = np.stack([rsa.layer_rdm(layers[planted] + 0.8 * random(40 + p, n, 50)) for p in range(3)])
    scores = [rsa.compare_rdms(rsa.layer_rdm(X), participants, method).mean() for X in layers]
    assert int(np.argmax(scores)) == planted
    assert scores[planted] > max(s for k, s in enumerate(scores) if k != planted) + 0.2


def test_compare_checks_give_clear_errors():
    a, b = rsa.layer_rdm(random(9, 10, 3)), rsa.layer_rdm(random(9, 11, 3))
    with pytest.raises(ValueError, match="same stimuli"):
        rsa.compare_rdms(a, b)
    with pytest.raises(ValueError, match="method must be one of"):
        rsa.compare_rdms(a, a, "pearsonish")
    with pytest.raises(ValueError, match=r"n \(n - 1\) / 2"):
        rsa.compare_rdms(a[:-1], a[:-1])
    with pytest.raises(ValueError, match="correlation distance is undefined"):
        rsa.layer_rdm(np.vstack([random(9, 5, 3), np.ones((1, 3))]))
    with pytest.raises(ValueError, match="NaN"):
        rsa.compare_rdms(a, np.where(np.arange(len(a)) == 3, np.nan, a))


# --- noise ceiling -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["spearman", "tau-a", "cosine_cov"])
def test_noise_ceiling_of_noiseless_identical_participants_is_one(method):
    rdm = rsa.layer_rdm(random(20, 12, 6))
    lower, upper = rsa.noise_ceiling(np.stack([rdm] * 4), method)
    assert lower == pytest.approx(1.0, abs=1e-12) and upper == pytest.approx(1.0, abs=1e-12)


def test_noise_ceiling_is_leave_one_out_mean_ranks_for_spearman():
    base = random(21, 12, 6)
    rdms = np.stack([rsa.layer_rdm(base + random(22 + p, 12, 6)) for p in range(5)])
    ranks = np.stack([np.argsort(np.argsort(r)) + 1.0 for r in rdms])
    lower = np.mean([spearmanr(np.delete(ranks, i, 0).mean(0), rdms[i])[0] for i in range(5)])
    upper = np.mean([spearmanr(ranks.mean(0), rdms[i])[0] for i in range(5)])
    got = rsa.noise_ceiling(rdms, "spearman")
    np.testing.assert_allclose(got, (lower, upper), atol=1e-12)
    assert got[0] < got[1] < 1
    with pytest.raises(ValueError, match="at least 2 participants"):
        rsa.noise_ceiling(rdms[:1])


# --- bootstrap ---------------------------------------------------------------------------------------------

def test_bootstrap_is_seeded_and_brackets_the_estimate():
    X = random(30, 25, 10)
    target = rsa.layer_rdm(X + 1.5 * random(31, 25, 10))
    first = rsa.bootstrap_ci(X, target, "spearman", n_bootstrap=200, seed=3)
    again = rsa.bootstrap_ci(X, target, "spearman", n_bootstrap=200, seed=3)
    other = rsa.bootstrap_ci(X, target, "spearman", n_bootstrap=200, seed=4)
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)
    assert first.samples.shape == (200,)
    assert first.estimate == pytest.approx(rsa.compare_rdms(rsa.layer_rdm(X), target, "spearman")[0])
    assert first.low < first.estimate < first.high
    assert first.low > 0.1  # a real relation: the interval excludes 0


@pytest.mark.parametrize("method", ["spearman", "tau-a"])  # not cosine_cov: like biased CKA, it is > 0 here
def test_bootstrap_of_an_unrelated_target_covers_zero(method):
    X = random(32, 25, 10)
    targets = np.stack([rsa.layer_rdm(random(33 + p, 25, 10)) for p in range(2)])
    result = rsa.bootstrap_ci(X, targets, method, n_bootstrap=150, seed=0)
    assert result.low < 0 < result.high
    assert result.high - result.low > 0.01


def test_bootstrap_checks():
    X = random(34, 10, 4)
    with pytest.raises(ValueError, match="same stimuli"):
        rsa.bootstrap_ci(X, rsa.layer_rdm(random(35, 11, 4)), n_bootstrap=10)
    with pytest.raises(ValueError, match="ci must be"):
        rsa.bootstrap_ci(X, rsa.layer_rdm(X), n_bootstrap=10, ci=95)


@pytest.mark.parametrize("n", [60, 120])
def test_whitened_cosine_with_missing_pairs_equals_rsatoolboxs_dense_branch(n, monkeypatch):
    """From 100 stimuli on, rsatoolbox 0.3.2 takes a sparse branch that fails on RDMs with missing pairs (a
    bootstrap's self-pairs); rsa computes that case itself. Compared with rsatoolbox's dense branch, forced
    by giving it the dense indicator matrices."""
    import sys

    from rsatoolbox.util.matrix import row_col_indicator_g

    rdm_compare = sys.modules["rsatoolbox.rdm.compare"]
    X = random(60, n, 12)
    index = np.random.default_rng(61).integers(0, n, n)
    model = rsa.resample_rdm(rsa.layer_rdm(X), index)
    targets = np.stack([rsa.resample_rdm(rsa.layer_rdm(X[:, :6] + k * random(62 + k, n, 6)), index)
                        for k in range(3)])
    got = {m: rsa._compare(model[None], targets, m) for m in ("cosine_cov", "corr_cov")}
    monkeypatch.setattr(rdm_compare, "row_col_indicator_g_sparse", row_col_indicator_g)
    for method, values in got.items():
        np.testing.assert_allclose(values, rdm_compare.compare(model[None], targets, method)[0], atol=1e-10)
    assert got["cosine_cov"][0] > got["cosine_cov"][2]


def test_bootstrap_of_the_whitened_cosine_runs_from_100_stimuli_on():
    X = random(70, 110, 8)
    target = rsa.layer_rdm(X + random(71, 110, 8))
    result = rsa.bootstrap_ci(X, target, "cosine_cov", n_bootstrap=20, seed=0)
    assert np.all(np.isfinite(result.samples))
    assert result.low < result.estimate < result.high
