"""Linear CKA (issue 15): invariances, the bias of the plain estimator and the unbiased one, checked against
direct implementations of the published formulas."""

import numpy as np
import pandas as pd
import pytest

from audioprobe.compare.cka import cka_matrix, linear_cka


def random(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d))


def feature_space_cka(X, Y):
    """Kornblith et al. (2019), linear CKA written with the features: ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F
    ||Y_c^T Y_c||_F)."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    return np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))


def song_hsic(K, L):
    """Song et al. (2012), eq. 5, term by term."""
    n = len(K)
    K, L = K.copy(), L.copy()
    np.fill_diagonal(K, 0)
    np.fill_diagonal(L, 0)
    one = np.ones(n)
    return (np.trace(K @ L) + (one @ K @ one) * (one @ L @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ K @ L @ one) / (n * (n - 3))


def song_cka(X, Y):
    K, L = X @ X.T, Y @ Y.T
    return song_hsic(K, L) / np.sqrt(song_hsic(K, K) * song_hsic(L, L))


@pytest.mark.parametrize("unbiased", [False, True])
def test_a_layer_with_itself_is_one(unbiased):
    X = random(0, 30, 12)
    assert linear_cka(X, X, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_unchanged_by_an_orthogonal_transform_and_isotropic_scaling(unbiased):
    X, Z = random(1, 40, 10), random(2, 40, 7)
    Z = Z + X[:, :7]  # related to X so that the value is far from 0
    Q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(10, 10)))
    assert linear_cka(X, X @ Q, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, 3.7 * X, unbiased=unbiased) == pytest.approx(1.0, abs=1e-12)
    reference = linear_cka(X, Z, unbiased=unbiased)
    assert 0.2 < reference < 0.99
    assert linear_cka(X @ Q, Z, unbiased=unbiased) == pytest.approx(reference, abs=1e-12)
    assert linear_cka(0.01 * X, 5 * Z, unbiased=unbiased) == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_changed_by_a_non_isotropic_scaling(unbiased):
    X = random(4, 40, 10)
    stretched = X * np.logspace(-1.5, 1.5, 10)
    assert linear_cka(X, stretched, unbiased=unbiased) < 0.9


def test_biased_estimator_equals_the_feature_space_formula():
    X, Y = random(5, 25, 9), random(6, 25, 40)
    Y[:, :9] += 2 * X
    assert linear_cka(X, Y) == pytest.approx(feature_space_cka(X, Y), rel=1e-12)


def test_unbiased_estimator_equals_song_et_al_formula():
    X, Y = random(7, 15, 6), random(8, 15, 20)
    Y[:, :6] += X
    assert linear_cka(X, Y, unbiased=True) == pytest.approx(song_cka(X, Y), rel=1e-10)


def test_unbiased_is_near_zero_for_independent_wide_matrices_where_the_biased_is_not():
    n, d = 100, 1000
    unbiased = [linear_cka(random(s, n, d), random(100 + s, n, d), unbiased=True) for s in range(5)]
    biased = [linear_cka(random(s, n, d), random(100 + s, n, d)) for s in range(5)]
    assert max(abs(u) for u in unbiased) < 0.05
    assert min(biased) > 0.8
    # and the unbiased one still sees a real relation
    X = random(9, n, d)
    assert linear_cka(X, X[:, :500] + random(10, n, 500), unbiased=True) > 0.3


def test_cka_matrix_holds_every_pair_in_order():
    X = random(11, 20, 8)
    layers_a = {"conv1": X, "conv2": X @ random(12, 8, 5), "fc": random(13, 20, 30)}
    layers_b = {"l0": X[:, :4], "l1": random(14, 20, 6)}
    for unbiased in (False, True):
        table = cka_matrix(layers_a, layers_b, unbiased=unbiased)
        assert isinstance(table, pd.DataFrame)
        assert list(table.index) == ["conv1", "conv2", "fc"] and list(table.columns) == ["l0", "l1"]
        expected = [[linear_cka(a, b, unbiased=unbiased) for b in layers_b.values()] for a in layers_a.values()]
        np.testing.assert_allclose(table.to_numpy(), expected, rtol=1e-10, atol=1e-12)
    self_table = cka_matrix(layers_a, layers_a)
    np.testing.assert_allclose(np.diag(self_table.to_numpy()), 1.0, atol=1e-12)
    np.testing.assert_allclose(self_table.to_numpy(), self_table.to_numpy().T, atol=1e-12)


def test_checks_give_clear_errors():
    X = random(15, 10, 3)
    with pytest.raises(ValueError, match="same stimuli"):
        linear_cka(X, X[:9])
    with pytest.raises(ValueError, match="at least 4"):
        linear_cka(X[:3], X[:3], unbiased=True)
    assert np.isfinite(linear_cka(X[:3], X[:3]))
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(bad, X)
    with pytest.raises(ValueError, match="same stimuli"):
        cka_matrix({"a": X}, {"b": X[:8]})
    with pytest.raises(ValueError, match="non-empty dict"):
        cka_matrix({}, {"b": X})


def test_a_constant_layer_is_nan_with_a_warning():
    X = random(16, 10, 3)
    with pytest.warns(RuntimeWarning, match="does not vary"):
        assert np.isnan(linear_cka(np.ones((10, 4)), X))
    with pytest.warns(RuntimeWarning, match="does not vary"):
        table = cka_matrix({"dead": np.zeros((10, 2)), "ok": X}, {"b": X})
    assert np.isnan(table.loc["dead", "b"]) and table.loc["ok", "b"] == pytest.approx(1.0)
