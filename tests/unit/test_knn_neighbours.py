"""The BLAS neighbour search and the vote of the KNN decoding against scikit-learn and the previous code."""

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from audioprobe.latent import decode


def sklearn_neighbours(queries, points, k, metric):
    search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(points)
    return search.kneighbors(queries, return_distance=False)


def lowest_index_rule(queries, points, k, metric):
    """The documented rule: smallest float64 distance, equal distances to the lower index."""
    queries, points = np.asarray(queries, float), np.asarray(points, float)
    if metric == "cosine":
        unit = [v / np.where(np.linalg.norm(v, axis=1) == 0, 1, np.linalg.norm(v, axis=1))[:, None]
                for v in (queries, points)]
        distance = 1.0 - (unit[0][:, None, :] * unit[1][None, :, :]).sum(axis=2)
    else:
        distance = np.square(queries[:, None, :] - points[None, :, :]).sum(axis=2)
    return np.argsort(distance, axis=1, kind="stable")[:, :k]


def previous_vote(neighbour_codes, n_classes):
    """The vote before the counting version: one boolean per neighbour and class."""
    return (neighbour_codes[..., None] == np.arange(n_classes)).sum(axis=-2).argmax(axis=-1)


def previous_decode_and_null(features, factors, groups, *, permutations, folds=None, k=3, n_folds=4, seed=0):
    """decode_layers and null_distribution as they were: scikit-learn's KNN search for every factor, again
    inside the null, and the boolean vote."""
    def neighbours(x, fold_list):
        return [train[sklearn_neighbours((x[f] if x.ndim == 3 else x)[test], (x[f] if x.ndim == 3 else x)[train], k,
                                         "euclidean")] for f, (train, test) in enumerate(fold_list)]

    def fold_list_of(labels):
        return decode.folds_from_index(folds, groups) if folds is not None else \
            decode.group_folds(groups, labels, n_folds, seed)

    tables, nulls = [], []
    for factor, labels in factors.items():
        fold_list = fold_list_of(labels)
        for layer, x in features.items():
            table = decode._score_folds(neighbours(x, fold_list), labels, fold_list)
            tables.append(table.assign(layer=layer, factor=factor, split=decode.describe_split(len(fold_list)),
                                       decoded_on="all clips given"))
    streams = np.random.SeedSequence(seed).spawn(len(factors))
    for (factor, labels), stream in zip(factors.items(), streams):
        fold_list = fold_list_of(labels)
        codes, n_classes = decode._codes(labels)
        unit = decode.null_design(codes, groups, fold_list).unit
        shuffled = decode.permuted_labels(codes, groups, permutations, np.random.default_rng(stream), fold_list)
        for layer, x in features.items():
            accuracy = np.mean([np.mean(previous_vote(shuffled[:, nearest], n_classes) == shuffled[:, test], axis=1)
                                for nearest, (_, test) in zip(neighbours(x, fold_list), fold_list)], axis=0)
            nulls.append(pd.DataFrame({"layer": layer, "factor": factor, "permutation": np.arange(permutations),
                                       "accuracy": accuracy, "null_unit": unit}))
    return (pd.concat(tables, ignore_index=True)[decode.DECODE_COLUMNS], pd.concat(nulls, ignore_index=True))


def two_factor_data(seed=0, n_groups=48, clips=3, dims=6, n_folds=4):
    """Recordings of 3 materials x 2 actions with per-recording offsets, one fold number per clip, and a layer
    of [F, N, D] per-fold features as well as a plain [N, D] one."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), clips)
    material = rng.permutation(np.arange(n_groups) % 3)[groups]
    action = rng.permutation(np.arange(n_groups) % 2)[groups]
    base = (rng.normal(0, 2, (3, dims))[material] + rng.normal(0, 2, (2, dims))[action]
            + rng.normal(0, 1.5, (n_groups, dims))[groups] + rng.normal(0, 1, (len(groups), dims)))
    fold_of = np.zeros(len(groups), int)
    for number, (_, test) in enumerate(decode.group_folds(groups, material * 2 + action, n_folds, seed=0)):
        fold_of[test] = number
    per_fold = np.stack([base @ np.linalg.qr(rng.normal(size=(dims, dims)))[0] for _ in range(n_folds)])
    features = {"per_fold": per_fold.astype(np.float32), "plain": base}
    return features, {"material": material, "action": action}, groups, fold_of


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "manhattan"])
@pytest.mark.parametrize(("n_points", "dims", "k"), [(40, 2, 1), (300, 8, 3), (2000, 64, 5), (12, 3, 12)])
def test_neighbours_equal_scikit_learns_on_data_without_ties(metric, n_points, dims, k):
    rng = np.random.default_rng(n_points + dims)
    points = rng.normal(size=(n_points, dims)).astype(np.float32)
    queries = rng.normal(size=(n_points // 3 + 1, dims)).astype(np.float32)
    found = decode.nearest_points(queries, points, k=k, metric=metric)
    np.testing.assert_array_equal(found, sklearn_neighbours(queries, points, k, metric))  # nearest first


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_ties_go_to_the_lower_training_index(metric):
    rng = np.random.default_rng(0)
    # every training point three times (rows i, i + 60, i + 120), queries near them: ties at the k-th place
    base = rng.normal(size=(60, 5))
    points = np.concatenate([base, base, base])
    queries = base[:40] + rng.normal(0, 1e-3, (40, 5))
    for k in (1, 2, 4):
        found = decode.nearest_points(queries, points, k=k, metric=metric)
        np.testing.assert_array_equal(found, lowest_index_rule(queries, points, k, metric))
    # small integer coordinates: many points at exactly the same distance, also from different points
    grid = rng.integers(-2, 3, size=(2000, 4)).astype(float)
    centres = rng.integers(-2, 3, size=(300, 4)).astype(float)
    if metric == "euclidean":
        found = decode.nearest_points(centres, grid, k=5, metric=metric)
        np.testing.assert_array_equal(found, lowest_index_rule(centres, grid, 5, metric))
    # the same rule per fold, with one feature matrix per fold
    folds = [(np.arange(60, 180), np.arange(0, 40)), (np.arange(0, 120), np.arange(120, 180))]
    per_fold = np.stack([points + 0.0, points[::-1].copy()])
    for f, (nearest, (train, test)) in enumerate(zip(decode.fold_neighbours(per_fold, folds, k=3, metric=metric),
                                                     folds)):
        np.testing.assert_array_equal(nearest, train[lowest_index_rule(per_fold[f][test], per_fold[f][train], 3,
                                                                       metric)])


def test_near_ties_below_float32_resolution_are_ranked_in_float64():
    # points on shells whose radii differ by 1e-9 (float32 resolves about 1e-7): the k nearest are the k
    # smallest radii, whatever the directions and the block size
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(500, 16))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radii = 3.0 + rng.permutation(500) * 1e-9
    points = directions * radii[:, None]
    queries = np.zeros((7, 16))
    expected = np.argsort(radii)[:4]
    for block_bytes in (1, 4 * 520, decode.SCREEN_BLOCK_BYTES):
        found = decode.nearest_points(queries, points, k=4, block_bytes=block_bytes)
        assert (found == expected).all()
    near = points[expected[0]] * (1 + 1e-12)  # a query just outside the nearest point, on its ray
    assert decode.nearest_points(near[None], points, k=1)[0, 0] == expected[0]


def test_the_block_size_does_not_change_the_neighbours():
    features, _, groups, fold_of = two_factor_data()
    folds = decode.folds_from_index(fold_of, groups)
    for metric in ("euclidean", "cosine"):
        for layer in features.values():
            whole = decode.fold_neighbours(layer, folds, k=3, metric=metric)
            for block_bytes in (1, 3 * 4 * 120):  # one query per block; three
                pieces = decode.fold_neighbours(layer, folds, k=3, metric=metric, block_bytes=block_bytes)
                for a, b in zip(whole, pieces):
                    np.testing.assert_array_equal(a, b)


def test_fold_neighbours_equal_scikit_learns_for_plain_and_per_fold_features():
    features, _, groups, fold_of = two_factor_data(seed=2)
    folds = decode.folds_from_index(fold_of, groups)
    for layer in features.values():
        for f, (nearest, (train, test)) in enumerate(zip(decode.fold_neighbours(layer, folds, k=3), folds)):
            values = layer[f] if layer.ndim == 3 else layer
            np.testing.assert_array_equal(nearest, train[sklearn_neighbours(values[test], values[train], 3,
                                                                            "euclidean")])


def test_extreme_scales_neither_overflow_nor_underflow_float32():
    rng = np.random.default_rng(3)
    points, queries = rng.normal(size=(200, 6)), rng.normal(size=(30, 6))
    expected = sklearn_neighbours(queries, points, 3, "euclidean")
    for scale in (1e-30, 1e30):
        np.testing.assert_array_equal(decode.nearest_points(queries * scale, points * scale, k=3), expected)


def test_the_vote_is_the_previous_vote_ties_to_the_smallest_code():
    rng = np.random.default_rng(4)
    for n_classes, k in ((2, 1), (3, 2), (6, 3), (4, 4), (5, 7)):
        codes = rng.integers(0, n_classes, size=(50, 40, k)).astype(np.uint8)
        np.testing.assert_array_equal(decode._vote(codes, n_classes), previous_vote(codes, n_classes))
        table = decode._vote_table(n_classes, k)
        looked_up = table[np.ravel_multi_index(tuple(np.moveaxis(codes, -1, 0)), (n_classes,) * k)]
        np.testing.assert_array_equal(looked_up, previous_vote(codes, n_classes))
    assert decode._vote(np.array([[2, 1, 1, 2]]), 3)[0] == 1  # a tie: the smaller code wins


def test_the_null_votes_are_the_same_with_the_table_with_counting_and_in_any_chunks(monkeypatch):
    rng = np.random.default_rng(5)
    shuffled = rng.integers(0, 6, size=(37, 300)).astype(np.uint8)
    nearest, test = rng.integers(0, 300, size=(80, 3)), np.arange(200, 280)
    expected = np.mean(previous_vote(shuffled[:, nearest], 6) == shuffled[:, test], axis=1)
    np.testing.assert_array_equal(decode._null_fold_accuracy(shuffled, nearest, test, 6), expected)
    monkeypatch.setattr(decode, "VOTE_ELEMENTS", 500)  # two permutations per chunk
    np.testing.assert_array_equal(decode._null_fold_accuracy(shuffled, nearest, test, 6), expected)
    monkeypatch.setattr(decode, "VOTE_TABLE_SIZE", 10)  # no table: count votes
    np.testing.assert_array_equal(decode._null_fold_accuracy(shuffled, nearest, test, 6), expected)


@pytest.mark.parametrize("shared_folds", [True, False])
def test_decoding_and_null_equal_the_previous_implementation(shared_folds):
    features, factors, groups, fold_of = two_factor_data(seed=6)
    if shared_folds:
        settings = {"folds": fold_of}
    else:  # each factor its own group_folds, plain features only
        settings, features = {"n_folds": 4}, {"plain": features["plain"], "half": features["plain"][:, :3]}
    expected_table, expected_null = previous_decode_and_null(features, factors, groups, permutations=40, seed=3,
                                                             **settings)
    table, null = decode.decode_with_null(features, factors, groups, permutations=40, seed=3, **settings)
    pd.testing.assert_frame_equal(table, expected_table)
    pd.testing.assert_frame_equal(null, expected_null)
    pd.testing.assert_frame_equal(decode.decode_layers(features, factors, groups, seed=3, **settings), table)
    pd.testing.assert_frame_equal(decode.null_distribution(features, factors, groups, permutations=40, seed=3,
                                                           **settings), null)


def test_the_neighbours_are_found_once_per_layer_when_the_factors_share_the_folds(monkeypatch):
    features, factors, groups, fold_of = two_factor_data(seed=7)
    calls = []
    search = decode.fold_neighbours
    monkeypatch.setattr(decode, "fold_neighbours", lambda *a, **kw: calls.append(1) or search(*a, **kw))
    decode.decode_with_null(features, factors, groups, permutations=5, folds=fold_of)
    assert len(calls) == len(features)
    calls.clear()
    decode.decode_with_null({"plain": features["plain"]}, factors, groups, permutations=5, n_folds=4)
    assert len(calls) == len(factors)  # folds of their own: once per layer and factor


def test_one_far_outlier_does_not_make_every_point_a_candidate(monkeypatch):
    """A flow latent of norm 3,483 among norms of about 8 (the MaAS-scale run) made all 21,600 training clips
    candidates for every query, 60x the work; the outlier is now ranked exactly for every query instead."""
    rng = np.random.default_rng(5)
    points = rng.normal(size=(3000, 8))
    points[17] *= 500.0
    queries = np.concatenate([rng.normal(size=(60, 8)), points[17:18] * 1.001])
    ranked_pairs = []
    ranked = decode._ranked
    monkeypatch.setattr(decode, "_ranked", lambda q, p, candidates, k, metric: (
        ranked_pairs.append(len(candidates[0])), ranked(q, p, candidates, k, metric))[1])
    found = decode.nearest_points(queries, points, k=3)
    np.testing.assert_array_equal(found, lowest_index_rule(queries, points, 3, "euclidean"))
    assert found[-1, 0] == 17
    assert sum(ranked_pairs) < 0.05 * len(queries) * len(points), sum(ranked_pairs)
