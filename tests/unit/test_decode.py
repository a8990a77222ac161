import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from audioprobe.latent import decode


def recordings(n_groups, clips_per_group, rng, n_classes=2):
    """Group ids per clip and one label per group, classes balanced over groups."""
    groups = np.repeat(np.arange(n_groups), clips_per_group)
    group_labels = rng.permutation(np.arange(n_groups) % n_classes)
    return groups, group_labels[groups]


def layered_data(seed=0):
    """90 recordings of 3 classes: a layer where the class moves the features, and one where it does not."""
    rng = np.random.default_rng(seed)
    groups, labels = recordings(90, 2, rng, n_classes=3)
    centroids = rng.normal(0, 4, (3, 8))
    signal = centroids[labels] + rng.normal(0, 1, (90, 8))[groups] + rng.normal(0, 0.5, (len(groups), 8))
    noise = rng.normal(0, 3, (90, 8))[groups] + rng.normal(0, 0.5, (len(groups), 8))
    return {"noise_early": noise, "signal": signal, "noise_late": noise[::-1].copy()}, labels, groups


def test_group_folds_hold_out_whole_groups_and_test_every_clip_once():
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 12, 30)
    groups = np.repeat([f"rec{i:02d}" for i in range(30)], sizes)
    labels = np.repeat(rng.permutation(np.arange(30) % 3), sizes)
    folds = decode.group_folds(groups, labels, n_folds=5, seed=0)
    assert len(folds) == 5
    tested = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tested), np.arange(len(groups)))
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(groups)))
        assert set(labels[train]) == {0, 1, 2}
    assert decode.missing_in_training(folds, labels) == [[]] * 5


def test_grouping_removes_the_leak_that_row_wise_folds_let_through():
    # Each recording has its own offset; labels are fixed per recording but unrelated to the features.
    rng = np.random.default_rng(0)
    groups, labels = recordings(120, 4, rng)
    features = rng.normal(0, 3, (120, 10))[groups] + rng.normal(0, 0.5, (len(groups), 10))
    row_wise = cross_val_score(KNeighborsClassifier(n_neighbors=3), features, labels,
                               cv=KFold(10, shuffle=True, random_state=0)).mean()
    grouped = decode.decode_factor(features, labels, groups, k=3, n_folds=10, seed=0)
    assert row_wise > 0.95  # neighbours from the same recording give the label away
    assert grouped["accuracy"].mean() < 0.7
    assert abs(grouped["accuracy"].mean() - grouped["majority_chance"].mean()) < 0.2
    assert grouped["n_test"].sum() == len(groups)


def test_a_layer_with_signal_decodes_above_chance_and_noise_does_not():
    features, labels, groups = layered_data()
    table = decode.decode_layers(features, {"material": labels}, groups, k=3, n_folds=4, seed=0)
    assert list(table.columns[:9]) == ["layer", "factor", "fold", "accuracy", "balanced_accuracy",
                                       "majority_chance", "majority_chance_balanced", "n_train", "n_test"]
    assert list(dict.fromkeys(table["layer"])) == ["noise_early", "signal", "noise_late"]
    mean = table.groupby("layer")["accuracy"].mean()
    chance = table["majority_chance"].mean()
    assert 0.2 < chance < 0.5
    assert mean["signal"] > 0.9
    assert mean["noise_early"] < chance + 0.25 and mean["noise_late"] < chance + 0.25
    assert table.groupby("layer")["balanced_accuracy"].mean()["signal"] > 0.9
    # every layer of a factor is scored on the same folds as decode_factor would use
    alone = decode.decode_factor(features["signal"], labels, groups, k=3, n_folds=4, seed=0)
    signal = table[table["layer"] == "signal"].reset_index(drop=True)
    pd.testing.assert_frame_equal(signal[alone.columns], alone)


def test_chance_is_the_training_majority_class_on_the_test_fold():
    features, labels, groups = layered_data()
    folds = decode.group_folds(groups, labels, n_folds=4, seed=0)
    table = decode.decode_factor(features["signal"], labels, groups, n_folds=4, seed=0)
    for (train, test), chance in zip(folds, table["majority_chance"]):
        majority = pd.Series(labels[train]).value_counts().sort_index().idxmax()
        assert chance == pytest.approx(np.mean(labels[test] == majority))


def test_same_seed_same_table_and_another_seed_other_folds():
    features, labels, groups = layered_data()
    factors = {"material": labels, "parity": groups % 2}
    first = decode.decode_layers(features, factors, groups, n_folds=4, seed=7)
    again = decode.decode_layers(features, factors, groups, n_folds=4, seed=7)
    pd.testing.assert_frame_equal(first, again)
    folds = [set(groups[test]) for _, test in decode.group_folds(groups, labels, 4, seed=7)]
    other = [set(groups[test]) for _, test in decode.group_folds(groups, labels, 4, seed=8)]
    assert folds != other


def test_one_class_factor_is_refused_by_name():
    features, labels, groups = layered_data()
    with pytest.raises(ValueError, match="factor 'action' has a single class"):
        decode.decode_layers(features, {"material": labels, "action": np.zeros_like(labels)}, groups,
                             n_folds=4)


def test_fewer_groups_than_folds_is_refused_with_the_count():
    rng = np.random.default_rng(0)
    groups, labels = recordings(5, 4, rng)
    with pytest.raises(ValueError, match=r"there are 5 groups .* use at most n_folds=5"):
        decode.decode_factor(rng.normal(size=(20, 3)), labels, groups, n_folds=10)


def test_k_larger_than_the_training_fold_is_refused():
    rng = np.random.default_rng(0)
    groups, labels = recordings(4, 2, rng)
    with pytest.raises(ValueError, match=r"k=7 neighbours but the smallest training fold has 4 clips"):
        decode.decode_factor(rng.normal(size=(8, 3)), labels, groups, k=7, n_folds=2)


def test_bad_feature_shapes_are_refused():
    rng = np.random.default_rng(0)
    groups, labels = recordings(6, 2, rng)
    with pytest.raises(ValueError, match="2-D array"):
        decode.decode_factor(rng.normal(size=(12, 3, 2)), labels, groups, n_folds=3)
    with pytest.raises(ValueError, match="12 rows but there are 11 labels"):
        decode.decode_factor(rng.normal(size=(12, 3)), labels[:11], groups, n_folds=3)


def test_a_class_with_one_recording_is_reported_not_fatal():
    rng = np.random.default_rng(2)
    groups, labels = recordings(12, 5, rng)
    labels[groups == 0] = 2  # class 2 has a single recording: no training example when it is tested
    features = rng.normal(size=(len(groups), 4))
    with pytest.warns(decode.FoldWarning, match=r"class 2 .* missing from training in 1 fold\(s\): it has 1"):
        table = decode.decode_factor(features, labels, groups, n_folds=4, seed=0)
    assert (table["missing_in_training"] == "2").sum() == 1
    assert (table["missing_in_training"] == "").sum() == 3


def test_summary_per_layer_and_factor():
    features, labels, groups = layered_data()
    table = decode.decode_layers(features, {"material": labels}, groups, n_folds=4, seed=0)
    summary = decode.summarise_decoding(table)
    assert list(summary["layer"]) == ["noise_early", "signal", "noise_late"]
    signal = summary.set_index("layer").loc["signal"]
    accuracy = table.loc[table["layer"] == "signal", "accuracy"]
    assert signal["n_folds"] == 4
    assert signal["mean_accuracy"] == pytest.approx(accuracy.mean())
    assert signal["sd_accuracy"] == pytest.approx(accuracy.std(ddof=1))
    assert signal["se_accuracy"] == pytest.approx(accuracy.std(ddof=1) / 2)
    assert signal["min_accuracy"] == accuracy.min() and signal["max_accuracy"] == accuracy.max()
    assert signal["split"] == "4-fold StratifiedGroupKFold by source recording"


def fold_table(means, n_folds=10, seed=0):
    """A decoding table with a shared fold effect, so the paired comparisons have real pairing to use."""
    rng = np.random.default_rng(seed)
    fold_effect = rng.normal(0, 0.03, n_folds)
    rows = [{"layer": layer, "factor": "material", "fold": fold,
             "accuracy": mean + fold_effect[fold] + rng.normal(0, 0.01)}
            for layer, mean in means.items() for fold in range(n_folds)]
    return pd.DataFrame(rows)


def test_layer_comparisons_find_the_best_layer_and_a_large_difference():
    table = fold_table({"conv1": 0.55, "conv2": 0.7, "conv3": 0.9, "conv4": 0.56})
    result = decode.layer_comparisons(table, "material")
    assert list(result["contrast"]) == ["first vs best", "best vs last", "first vs last"]
    assert set(result["best_layer"]) == {"conv3"}
    assert list(result["layer_a"]) == ["conv1", "conv3", "conv1"]
    assert list(result["layer_b"]) == ["conv3", "conv4", "conv4"]
    first_best = result.iloc[0]
    assert first_best["mean_diff"] == pytest.approx(-0.35, abs=0.02)
    assert first_best["p_t"] < 1e-8 and first_best["p_t_bonferroni"] == pytest.approx(3 * first_best["p_t"])
    assert first_best["df"] == 9
    # a 0.01 difference against fold noise of 0.01 is far weaker evidence than a 0.35 one
    assert result.iloc[2]["p_t"] > 1000 * first_best["p_t"]
    np.testing.assert_allclose(result["p_t_holm"], decode.stats.holm(result["p_t"]))


def test_layer_comparisons_mark_a_best_first_layer_instead_of_testing_it_against_itself():
    table = fold_table({"conv1": 0.9, "conv2": 0.7, "conv3": 0.6})
    result = decode.layer_comparisons(table, "material").set_index("contrast")
    assert result.loc["first vs best", "best_layer"] == "conv1"
    assert np.isnan(result.loc["first vs best", "p_t"]) and np.isnan(result.loc["first vs best", "p_t_holm"])
    assert "not tested" in result.loc["first vs best", "note"]
    tested = result.loc[["best vs last", "first vs last"]]
    np.testing.assert_allclose(tested["p_t_bonferroni"], np.minimum(2 * tested["p_t"], 1))


def test_layer_comparisons_need_every_layer_on_every_fold():
    table = fold_table({"conv1": 0.5, "conv2": 0.7}).iloc[:-1]
    with pytest.raises(ValueError, match="same folds"):
        decode.layer_comparisons(table, "material")
    with pytest.raises(ValueError, match="'action' is not in the table"):
        decode.layer_comparisons(table, "action")


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_plot_decoding_writes_the_figure_atomically(tmp_path, suffix):
    features, labels, groups = layered_data()
    factors = {"material": labels, "parity": groups % 2}
    table = decode.decode_layers(features, factors, groups, n_folds=4)
    null = decode.null_distribution(features, factors, groups, permutations=20, n_folds=4)
    summary = decode.summarise_decoding(table, null)
    path = tmp_path / "figures" / f"decoding{suffix}"
    decode.plot_decoding(summary, path)
    data = path.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    else:
        text = data.decode()
        assert "<svg" in text and "noise_early" in text and "signal" in text
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(ValueError, match="end the path in .png or .svg"):
        decode.plot_decoding(summary, tmp_path / "decoding.pdf")


def test_the_neighbour_vote_is_scikit_learns_knn_also_with_one_feature_matrix_per_fold():
    features, labels, groups = layered_data()
    fold_of = np.zeros(len(groups), int)
    for number, (_, test) in enumerate(decode.group_folds(groups, labels, n_folds=4, seed=1)):
        fold_of[test] = number
    rng = np.random.default_rng(5)
    per_fold = np.stack([features["signal"] + rng.normal(0, 2, features["signal"].shape) for _ in range(4)])
    table = decode.decode_layers({"signal": per_fold}, {"material": labels}, groups, folds=fold_of, k=5)
    for fold, accuracy in zip(range(4), table["accuracy"]):
        train, test = fold_of != fold, fold_of == fold
        model = KNeighborsClassifier(n_neighbors=5).fit(per_fold[fold][train], labels[train])
        assert accuracy == pytest.approx(np.mean(model.predict(per_fold[fold][test]) == labels[test]))
    with pytest.raises(ValueError, match="features for 4 folds but folds has 2"):
        decode.decode_layers({"signal": per_fold}, {"material": labels}, groups, folds=fold_of % 2)
    split_group = fold_of.copy()
    split_group[np.flatnonzero(groups == groups[0])[0]] = (fold_of[0] + 1) % 4
    with pytest.raises(ValueError, match="lies in more than one fold"):
        decode.decode_layers({"signal": features["signal"]}, {"material": labels}, groups, folds=split_group)


def test_permutation_null_gives_real_signal_a_small_p_and_shuffled_labels_a_large_one():
    features, labels, groups = layered_data()
    factors = {"material": labels}
    table = decode.decode_layers(features, factors, groups, n_folds=4, seed=0)
    null = decode.null_distribution(features, factors, groups, permutations=200, n_folds=4, seed=0)
    summary = decode.summarise_decoding(table, null).set_index("layer")
    assert summary.loc["signal", "p_permutation"] == pytest.approx(1 / 201)  # never 0: (1 + 0) / (1 + 200)
    assert summary.loc["signal", "mean_accuracy"] > summary.loc["signal", "null_p95"]
    # the same features with the labels shuffled over recordings carry no signal: p is large
    rng = np.random.default_rng(11)
    group_labels = labels[np.unique(groups, return_index=True)[1]]
    shuffled = {"material": rng.permutation(group_labels)[groups]}
    table = decode.decode_layers(features, shuffled, groups, n_folds=4, seed=0)
    null = decode.null_distribution(features, shuffled, groups, permutations=200, n_folds=4, seed=0)
    summary = decode.summarise_decoding(table, null).set_index("layer")
    assert summary.loc["signal", "p_permutation"] > 0.1
    assert abs(summary.loc["signal", "mean_accuracy"] - summary.loc["signal", "null_mean"]) < 0.1
    np.testing.assert_allclose(summary["p_permutation_holm"], decode.stats.holm(summary["p_permutation"]))


def test_the_null_is_the_chance_level_where_the_majority_guess_falls_below_one_over_k():
    # 6 balanced classes of 4 recordings each, 8 folds of 3 recordings: the test fold's classes are short in
    # its training clips, so the training majority is never among them and the majority "chance" is 0.
    rng = np.random.default_rng(0)
    groups, labels = recordings(24, 3, rng, n_classes=6)
    fold_of = np.zeros(len(groups), int)
    for number, (_, test) in enumerate(decode.group_folds(groups, labels, n_folds=8, seed=0)):
        fold_of[test] = number
    factors = {"material": labels}

    def uninformative():
        return {"noise": rng.normal(size=(24, 6))[groups] + rng.normal(0, 0.3, (len(groups), 6))}

    # layers without any information about the labels: what they score, and the p-values they get
    scores, pvalues, null_means = [], [], []
    for seed in range(60):
        features = uninformative()
        table = decode.decode_layers(features, factors, groups, folds=fold_of)
        null = decode.null_distribution(features, factors, groups, folds=fold_of, permutations=100, seed=seed)
        summary = decode.summarise_decoding(table, null).iloc[0]
        scores.append(summary["mean_accuracy"])
        pvalues.append(summary["p_permutation"])
        null_means.append(summary["null_mean"])
    assert summary["mean_majority_chance"] == 0 < 1 / 6
    assert np.mean(null_means) == pytest.approx(np.mean(scores), abs=0.02)
    # calibrated: about 10 % of uninformative layers reach p <= 0.1 (a free shuffle over all recordings,
    # which ignores that the folds were stratified, gives about 15 % here)
    assert np.mean(np.array(pvalues) <= 0.1) < 0.2


def test_the_null_is_seeded_and_shuffles_whole_recordings():
    features, labels, groups = layered_data()
    factors = {"material": labels}
    first = decode.null_distribution(features, factors, groups, permutations=30, n_folds=4, seed=3)
    pd.testing.assert_frame_equal(first, decode.null_distribution(features, factors, groups, permutations=30,
                                                                  n_folds=4, seed=3))
    other = decode.null_distribution(features, factors, groups, permutations=30, n_folds=4, seed=4)
    assert not np.array_equal(first["accuracy"], other["accuracy"])
    shuffled = decode.permuted_labels(labels, groups, 25, np.random.default_rng(0))
    assert shuffled.shape == (25, len(labels))
    for row in shuffled:
        assert (pd.Series(row).groupby(groups).nunique() == 1).all()  # a recording keeps one label
        np.testing.assert_array_equal(np.sort(row), np.sort(labels))  # class counts unchanged
    assert not all(np.array_equal(row, labels) for row in shuffled)
    folds = decode.group_folds(groups, labels, 4, seed=0)
    within = decode.permuted_labels(labels, groups, 10, np.random.default_rng(1), folds)
    for _, test in folds:  # shuffled within folds: each fold keeps its class counts (its stratification)
        for row in within:
            np.testing.assert_array_equal(np.sort(row[test]), np.sort(labels[test]))
    assert not all(np.array_equal(row, labels) for row in within)
    with pytest.raises(ValueError, match="permutations must be a whole number >= 1"):
        decode.null_distribution(features, factors, groups, permutations=0, n_folds=4)


def test_the_null_names_its_unit_and_warns_when_recordings_mix_labels(caplog):
    features, labels, groups = layered_data()
    factors = {"material": labels}
    null = decode.null_distribution(features, factors, groups, permutations=20, n_folds=4)
    table = decode.decode_layers(features, factors, groups, n_folds=4)
    assert (decode.summarise_decoding(table, null)["null_unit"] == "recording").all()
    mixed = labels.copy()
    mixed[(groups == 7)] = [0, 1]  # recording 7's two clips now carry different labels
    with caplog.at_level("WARNING", logger="audioprobe.latent.decode"):
        null = decode.null_distribution(features, {"material": mixed}, groups, permutations=20, n_folds=4)
    assert (null["null_unit"] == "clip").all()
    table = decode.decode_layers(features, {"material": mixed}, groups, n_folds=4)
    assert (decode.summarise_decoding(table, null)["null_unit"] == "clip").all()
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warning) == 1 and "recording group(s) mix labels (7)" in warning[0]


def test_the_null_reports_how_many_relabelings_it_can_reach_and_which_folds_are_frozen(caplog):
    # fold 0: recordings r0 (a), r1 (b), r2 (a) -> 3 arrangements; fold 1: r3, r4, r5 all a -> frozen
    groups = np.repeat(["r0", "r1", "r2", "r3", "r4", "r5"], 2)
    labels = np.repeat(["a", "b", "a", "a", "a", "a"], 2)
    fold_of = np.repeat([0, 0, 0, 1, 1, 1], 2)
    resolution = decode.null_resolution({"material": labels}, groups, fold_of, permutations=999).iloc[0]
    assert resolution["null_unit"] == "recording" and resolution["null_frozen_folds"] == "1"
    assert 10 ** resolution["null_relabelings_log10"] == pytest.approx(3, rel=1e-3)
    assert resolution["null_min_p"] == pytest.approx(1 / 3, rel=1e-3)
    folds = decode.folds_from_index(fold_of, groups)
    shuffled = decode.permuted_labels(np.unique(labels, return_inverse=True)[1], groups, 300,
                                      np.random.default_rng(0), folds)
    assert len({tuple(row) for row in shuffled}) == 3  # exactly the relabelings counted
    assert (shuffled[:, fold_of == 1] == 0).all()  # the frozen fold never moves
    many = decode.null_resolution({"material": np.repeat(np.arange(40) % 2, 2)}, np.repeat(np.arange(40), 2),
                                  np.repeat(np.arange(40) % 4, 2), permutations=999).iloc[0]
    assert many["null_min_p"] == pytest.approx(1 / 1000) and many["null_frozen_folds"] == ""
    features = {"layer": np.random.default_rng(0).normal(size=(12, 3))}
    with caplog.at_level("INFO", logger="audioprobe.latent.decode"), pytest.warns(decode.FoldWarning):
        decode.null_distribution(features, {"material": labels}, groups, folds=fold_of, permutations=5, k=1)
    assert any("fold(s) [1] hold a single class" in r.getMessage() for r in caplog.records)
