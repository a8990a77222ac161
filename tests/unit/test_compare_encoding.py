"""Encoding models (issue 15): Tuckute et al.'s splits, ridge with a penalty per target chosen on the
training stimuli only, reliabilities with Spearman-Brown, the noise correction and the aggregation; with
planted structure and against a closed-form ridge."""

import numpy as np
import pytest

from audioprobe.compare import encoding as enc

SMALL_ALPHAS = np.logspace(-3, 5, 17)


def random(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape)


def closed_form_ridge(X_train, y_train, X_test, alpha, standardise=False):
    mean, sd = X_train.mean(0), (X_train.std(0) if standardise else np.ones(X_train.shape[1]))
    A, B = (X_train - mean) / sd, (X_test - mean) / sd
    w = np.linalg.solve(A.T @ A + alpha * np.eye(A.shape[1]), A.T @ (y_train - y_train.mean()))
    return B @ w


# --- splits and reliabilities ---------------------------------------------------------------------------------

def test_random_splits_follow_tuckute_for_165_sounds_and_are_seeded():
    train, test = enc.random_splits(165, seed=1)
    assert train.shape == (10, 83) and test.shape == (10, 82)
    for tr, te in zip(train, test):
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(165))
        assert np.all(np.diff(tr) > 0) and np.all(np.diff(te) > 0)
    assert len({tuple(tr) for tr in train}) == 10
    again, _ = enc.random_splits(165, seed=1)
    other, _ = enc.random_splits(165, seed=2)
    np.testing.assert_array_equal(train, again)
    assert not np.array_equal(train, other)


def test_random_splits_keep_the_fraction_or_take_a_count():
    train, test = enc.random_splits(40, n_splits=3, seed=0)
    assert train.shape == (3, 20) and test.shape == (3, 20)
    train, test = enc.random_splits(40, n_splits=2, train=30, seed=0)
    assert train.shape == (2, 30) and test.shape == (2, 10)
    with pytest.raises(ValueError, match="fewer than 3"):
        enc.random_splits(40, train=39)
    with pytest.raises(ValueError, match="fraction"):
        enc.random_splits(40, train=1.5)


def test_spearman_brown_known_values():
    assert enc.spearman_brown(0.5) == pytest.approx(2 / 3)
    assert enc.spearman_brown(0.5, factor=3) == pytest.approx(0.75)
    np.testing.assert_allclose(enc.spearman_brown(np.array([0.0, 1.0])), [0.0, 1.0])


def test_reliability_floor_reproduces_tuckutes_constants():
    assert round(enc.reliability_floor(83), 3) == 0.182
    assert round(enc.reliability_floor(82), 3) == 0.183


def test_reliability_of_noiseless_repeats_is_one():
    signal = random(0, 50, 4)
    repeats = np.repeat(signal[:, :, None], 3, axis=2)
    np.testing.assert_allclose(enc.split_half_reliability(repeats, seed=0), 1.0, atol=1e-12)
    np.testing.assert_allclose(enc.pairwise_reliability(repeats), 1.0, atol=1e-12)


def test_reliabilities_match_theory_for_noisy_repeats():
    # signal variance 1, noise variance 1 per repetition: a single repetition has reliability 1/2, the mean of
    # 4 has 4 * 0.5 / (1 + 3 * 0.5) = 0.8 (split halves of 2: r = 2/3, Spearman-Brown x2 -> 0.8)
    signal = random(1, 4000, 3)
    repeats = signal[:, :, None] + random(2, 4000, 3, 4)
    np.testing.assert_allclose(enc.split_half_reliability(repeats, seed=0, n_splits=20), 0.8, atol=0.03)
    np.testing.assert_allclose(enc.pairwise_reliability(repeats), 0.8, atol=0.03)


# --- ridge ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", ["demean", "standardise"])
def test_ridge_predict_equals_closed_form_ridge_at_the_chosen_penalty(scale):
    X = random(3, 60, 8) * np.arange(1, 9)
    y = X @ random(4, 8, 2) + 3 * random(5, 60, 2) + 10
    predictions, alphas = enc.ridge_predict(X[:40], y[:40], X[40:], SMALL_ALPHAS, scale=scale)
    assert predictions.shape == (20, 2) and alphas.shape == (2,)
    for k in range(2):
        expected = closed_form_ridge(X[:40], y[:40, k], X[40:], alphas[k], standardise=scale == "standardise")
        np.testing.assert_allclose(predictions[:, k], expected, rtol=1e-6, atol=1e-8)


def test_ridge_predict_uses_no_statistic_of_the_test_stimuli():
    X, y = random(6, 50, 5), random(7, 50, 3)
    together, _ = enc.ridge_predict(X[:30], y[:30], X[30:], SMALL_ALPHAS)
    one_by_one = np.vstack([enc.ridge_predict(X[:30], y[:30], X[i:i + 1], SMALL_ALPHAS)[0] for i in range(30, 50)])
    np.testing.assert_allclose(together, one_by_one, atol=1e-10)


def test_ridge_picks_a_penalty_per_target():
    X = random(8, 80, 10)
    clean = X @ random(9, 10, 1)
    y = np.hstack([clean, clean + 20 * random(10, 80, 1)])  # one easy target, one mostly noise
    _, alphas = enc.ridge_predict(X[:60], y[:60], X[60:], np.logspace(-3, 6, 10))
    assert alphas[0] < alphas[1]


def test_the_primal_and_the_kernel_solver_agree():
    X, y = random(11, 50, 12), random(12, 50, 3)
    y[:, 0] += X[:, 0] * 3
    ridge, a_ridge = enc.ridge_predict(X[:35], y[:35], X[35:], SMALL_ALPHAS, inner_cv=5, solver="ridge")
    with pytest.warns(UserWarning):  # himalaya: the kernel form is slower when there are fewer units
        kernel, a_kernel = enc.ridge_predict(X[:35], y[:35], X[35:], SMALL_ALPHAS, inner_cv=5, solver="kernel")
    np.testing.assert_allclose(a_ridge, a_kernel)
    np.testing.assert_allclose(ridge, kernel, rtol=1e-6, atol=1e-8)


# --- scores ---------------------------------------------------------------------------------------------------

def planted_layers(n=60):
    return [random(20 + k, n, d) for k, d in enumerate((6, 15, 40, 10, 25))]


def planted_responses(layer, seed, n_channels=6, noise=1.0, repetitions=3):
    signal = layer @ random(seed, layer.shape[1], n_channels)
    signal /= signal.std(0)
    return signal[:, :, None] + noise * random(seed + 1, len(layer), n_channels, repetitions)


def test_a_target_made_from_one_layer_peaks_at_that_layer():
    layers, planted = planted_layers(), 2
    responses = planted_responses(layers[planted], 30)
    splits = enc.random_splits(60, n_splits=3, seed=0)
    corrected, raw = [], []
    for X in layers:
        scores = enc.encoding_scores(X, responses, splits, seed=0)
        assert scores.r2.shape == scores.r2_corrected.shape == scores.alphas.shape == (3, 6)
        corrected.append(enc.summarise(scores.r2_corrected, clip_max=1.0))
        raw.append(enc.summarise(scores.r2))
    assert int(np.argmax(corrected)) == planted and int(np.argmax(raw)) == planted
    assert corrected[planted] > max(c for k, c in enumerate(corrected) if k != planted) + 0.2


def test_noise_correction_follows_tuckute():
    X = random(40, 60, 10)
    responses = planted_responses(X, 41, noise=0.7)
    splits = enc.random_splits(60, n_splits=2, seed=1)
    scores = enc.encoding_scores(X, responses, splits, SMALL_ALPHAS)
    for k, (tr, te) in enumerate(zip(*splits)):
        r_v = np.maximum(enc.pairwise_reliability(responses[tr]), enc.reliability_floor(len(tr)))
        np.testing.assert_allclose(scores.target_reliability[k], r_v)
        np.testing.assert_allclose(scores.r2_corrected[k],
                                   scores.r2[k] / (scores.target_reliability[k] * scores.prediction_reliability[k]))
        # r^2 is the squared test correlation of the model of the mean over repetitions
        mean = responses.mean(2)
        predictions, _ = enc.ridge_predict(X[tr], mean[tr], X[te], SMALL_ALPHAS)
        r = [np.corrcoef(predictions[:, c], mean[te, c])[0, 1] for c in range(6)]
        np.testing.assert_allclose(scores.r2[k], np.clip(r, 0, None) ** 2)
    assert np.all(scores.r2_corrected >= scores.r2)
    noiseless = enc.encoding_scores(X, np.repeat(responses.mean(2, keepdims=True), 3, axis=2), splits, SMALL_ALPHAS)
    np.testing.assert_allclose(noiseless.target_reliability, 1.0)
    np.testing.assert_allclose(noiseless.prediction_reliability, 1.0)
    np.testing.assert_allclose(noiseless.r2_corrected, noiseless.r2)


def test_unrelated_features_score_near_zero_and_two_dimensional_targets_skip_the_correction():
    layer = random(50, 60, 12)
    responses = planted_responses(layer, 51)
    splits = enc.random_splits(60, n_splits=3, seed=2)
    unrelated = enc.encoding_scores(random(52, 60, 12), responses, splits)
    assert enc.summarise(unrelated.r2) < 0.1
    plain = enc.encoding_scores(layer, responses.mean(2), splits)
    assert plain.r2_corrected is None and plain.target_reliability is None
    assert enc.summarise(plain.r2) > 0.4


def test_summarise_takes_the_median_over_splits_then_over_targets():
    scores = np.array([[0.1, 0.5, 0.9, 1.4],
                       [0.3, 0.7, 0.0, 1.8],
                       [0.2, 2.0, 0.4, 1.2]])
    np.testing.assert_allclose(enc.target_medians(scores), [0.2, 0.7, 0.4, 1.4])
    np.testing.assert_allclose(enc.target_medians(scores, clip_max=1.0), [0.2, 0.7, 0.4, 1.0])
    assert enc.summarise(scores) == pytest.approx(0.55)
    assert enc.summarise(scores, clip_max=1.0) == pytest.approx(0.55)
    # per participant: medians 0.45 (channels 0, 1) and 0.9 (2, 3 clipped), then the mean
    assert enc.summarise(scores, groups=["p1", "p1", "p2", "p2"], clip_max=1.0) == pytest.approx((0.45 + 0.7) / 2)
    assert enc.target_medians(scores, over_splits="mean")[0] == pytest.approx(0.2)


def test_encoding_checks_give_clear_errors():
    X, Y = random(60, 20, 3), random(61, 20, 2, 3)
    splits = enc.random_splits(20, n_splits=1, seed=0)
    with pytest.raises(ValueError, match="same order"):
        enc.encoding_scores(X, Y[:19], splits)
    with pytest.raises(ValueError, match="at least 2 repetitions"):
        enc.encoding_scores(X, Y[:, :, :1], splits)
    bad = Y.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        enc.encoding_scores(X, bad, splits)
    with pytest.raises(ValueError, match="disjoint"):
        enc.encoding_scores(X, Y, (splits[0], splits[0]))
    with pytest.raises(ValueError, match="scale must be"):
        enc.encoding_scores(X, Y, splits, scale="zscore")
    with pytest.raises(ValueError, match="inner_cv"):
        enc.encoding_scores(X, Y, splits, inner_cv=1)
    with pytest.raises(ValueError, match="alphas"):
        enc.encoding_scores(X, Y, splits, alphas=[0.0, 1.0])
