"""Study 1 pieces: projection, split, transfer partners and distances."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from audioprobe.latent import transfer
from audioprobe.latent.projection import Projection
from audioprobe.latent.split import split_groups


def low_rank_data(rng, n=120, d=300, rank=10):
    return (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) * 3
            + rng.standard_normal((n, d)) * 0.1 + 5).astype(np.float32)


def test_projection_is_fitted_on_training_rows_and_standardised():
    rng = np.random.default_rng(0)
    x = low_rank_data(rng)
    train = np.arange(120) < 80
    projection = Projection.fit(x[train], 8, seed=0)
    z = projection.transform(x)
    np.testing.assert_allclose(z[train].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z[train].std(0), 1, atol=1e-4)
    assert projection.components.shape == (8, 300)
    np.testing.assert_allclose(projection.components @ projection.components.T, np.eye(8), atol=1e-5)
    full = Projection.fit(x[train], 10, seed=0).explained_variance_ratio.sum()
    assert full > 0.99 > projection.explained_variance_ratio.sum()  # rank-10 data
    refit = Projection.fit(x[~train], 8, seed=0)
    assert not np.allclose(refit.mean_in, projection.mean_in)


def test_projection_inverse_is_exact_and_moves_only_the_kept_subspace():
    rng = np.random.default_rng(1)
    x = low_rank_data(rng)
    projection = Projection.fit(x, 6)
    z = projection.transform(x)
    np.testing.assert_allclose(projection.inverse(z, x), x, rtol=1e-4, atol=1e-3)
    edited = z.copy()
    edited[:, 2] += 1.5
    moved = projection.inverse(edited, x)
    np.testing.assert_allclose(projection.transform(moved), edited, atol=1e-3)
    # The change lies in the span of the kept (scaled) components: nothing else moved.
    change = (moved - x) / projection.scale_in
    residual = change - (change @ projection.components.T) @ projection.components
    assert np.abs(residual).max() < 1e-3 * np.abs(change).max()


def test_projection_round_trips_through_hdf5(tmp_path):
    x = low_rank_data(np.random.default_rng(2))
    projection = Projection.fit(x, 5)
    projection.save(tmp_path / "p.h5", {"projected": projection.transform(x)})
    loaded = Projection.load(tmp_path / "p.h5")
    np.testing.assert_array_equal(loaded.transform(x), projection.transform(x))


def test_projection_refuses_more_components_than_clips():
    with pytest.raises(ValueError, match="pca_components"):
        Projection.fit(np.ones((10, 50)), 20)
    with pytest.raises(ValueError, match="NaN"):
        Projection.fit(np.full((10, 5), np.nan), 2)


def clips_table(takes=5, clips_per_take=4):
    rows = []
    for material in ("wood", "metal", "glass"):
        for action in ("tapping", "rubbing"):
            for take in range(takes):
                for i in range(clips_per_take):
                    rows.append({"clip_id": f"{material}{action}{take}@{i}", "group": f"{material}{action}{take}",
                                 "label_material": material, "label_action": action})
    return pd.DataFrame(rows)


def test_split_keeps_recordings_whole_and_spreads_every_combination():
    clips = clips_table()
    split = split_groups(clips, ["material", "action"], val_fraction=0.2, test_fraction=0.2, seed=3)
    assert (split.groupby("group")["split"].nunique() == 1).all()
    per_combo = split.assign(combo=clips.label_material + clips.label_action).groupby("combo")["split"]
    assert (per_combo.apply(lambda s: set(s) == {"train", "val", "test"})).all()
    again = split_groups(clips, ["material", "action"], val_fraction=0.2, test_fraction=0.2, seed=3)
    pd.testing.assert_frame_equal(split, again)
    other = split_groups(clips, ["material", "action"], val_fraction=0.2, test_fraction=0.2, seed=4)
    assert not split["split"].equals(other["split"])


def test_split_errors_name_what_to_change():
    with pytest.raises(ValueError, match="no label column 'colour'"):
        split_groups(clips_table(), ["colour"], val_fraction=0.1, test_fraction=0.2, seed=0)
    with pytest.raises(ValueError, match="too few"):
        split_groups(clips_table(takes=1), ["material", "action"], val_fraction=0.1, test_fraction=0.2, seed=0)


def test_partners_are_typical_and_edits_touch_one_dimension():
    rng = np.random.default_rng(0)
    classes = np.repeat(["a", "b", "c"], 40)
    values = np.concatenate([rng.normal(mu, 1.0, 40) for mu in (-4, 0, 4)])
    partners = transfer.choose_partners(values, classes, typical_quantile=0.5, max_clips=1000, rng=rng)
    assert 50 <= len(partners) <= 60 and partners["m"].is_unique  # half of each class is atypical, used once
    means = {c: values[classes == c].mean() for c in "abc"}
    distance = np.abs(values - np.array([means[c] for c in classes]))
    for _, row in partners.iterrows():
        assert classes[row.p] == row.class_m and classes[row.q] == row.class_q != row.class_m
        assert distance[row.m] > distance[row.p] or np.isclose(distance[row.m], distance[row.p])
    latents = rng.standard_normal((120, 5))
    edited = transfer.edited_latents(latents, partners, dim=3)
    np.testing.assert_array_equal(edited["M->P"][:, 3], latents[partners.p, 3])
    np.testing.assert_array_equal(edited["M->Q"][:, 3], latents[partners.q, 3])
    keep = [0, 1, 2, 4]
    np.testing.assert_array_equal(edited["M->P"][:, keep], latents[partners.m][:, keep])
    np.testing.assert_array_equal(edited["M"], latents[partners.m])


def material_action_clips(per_combination, rng):
    materials, actions = np.array(["wood", "metal", "glass"]), np.array(["tap", "rub"])
    cells = [(m, a) for m in range(3) for a in range(2) for _ in range(per_combination)]
    m, a = np.array(cells).T
    return rng.normal(2.0 * m, 1.0), materials[m], actions[a]


def test_partners_keep_the_other_factor_and_are_drawn_without_replacement():
    rng = np.random.default_rng(1)
    values, material, action = material_action_clips(20, rng)
    partners = transfer.choose_partners(values, material, action, typical_quantile=0.5, max_clips=1000, rng=rng)
    assert partners["p_other_fixed"].all() and partners["q_other_fixed"].all()
    assert (action[partners["p"]] == action[partners["m"]]).all()  # editing material keeps the action
    assert (action[partners["q"]] == action[partners["m"]]).all()
    assert (material[partners["p"]] == material[partners["m"]]).all()
    assert (material[partners["q"]] != material[partners["m"]]).all()
    for column in ("m", "p", "q"):
        assert partners[column].is_unique  # no clip is M, P or Q twice
    # an atypical clip is dropped only where its combination's typical clips (its possible Ps) are used up
    typical, atypical = transfer._typical_and_atypical(values, material, sorted(set(material)), 0.5)
    for (m, a), used in partners.groupby(["class_m", "other"]).size().items():
        possible = np.sum((material[typical] == m) & (action[typical] == a))
        offered = np.sum((material[atypical] == m) & (action[atypical] == a))
        assert used <= min(possible, offered)
    assert 20 <= len(partners) <= 60
    smaller = transfer.choose_partners(values, material, action, typical_quantile=0.5, max_clips=7, rng=rng)
    assert len(smaller) == 7


def test_partners_fall_back_to_another_value_of_the_other_factor_only_where_none_exists():
    rng = np.random.default_rng(2)
    values, material, action = material_action_clips(10, rng)
    # metal is only ever rubbed; tapped wood and glass still have Qs that are tapped: no fallback
    keep = ~((material == "metal") & (action == "tap"))
    values, material, action = values[keep], material[keep], action[keep]
    partners = transfer.choose_partners(values, material, action, typical_quantile=0.5, max_clips=1000, rng=rng)
    assert partners["p_other_fixed"].all() and partners["q_other_fixed"].all()  # tapped glass/wood exist
    assert (action[partners["q"]] == action[partners["m"]]).all()
    # nested factors: each class has a single value of the other factor, so a Q with M's value never exists
    nested = np.where(material == "wood", "oak", np.where(material == "metal", "steel", "pane"))
    partners = transfer.choose_partners(values, material, nested, typical_quantile=0.5, max_clips=1000, rng=rng)
    assert partners["p_other_fixed"].all() and not partners["q_other_fixed"].any()
    assert (nested[partners["q"]] != nested[partners["m"]]).all() and len(partners) >= 10
    assert partners["q"].is_unique and partners["p"].is_unique
    with pytest.raises(ValueError, match="too few"):
        transfer.choose_partners(values[:4], np.array(["a", "a", "b", "b"]), typical_quantile=0.5, max_clips=5,
                                 rng=rng)


def test_partners_need_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        transfer.choose_partners(np.arange(5.0), np.array(["a"] * 5), typical_quantile=0.5, max_clips=5,
                                 rng=np.random.default_rng(0))


def test_output_space_and_distances():
    logits = np.array([[[0.0, 2.0]], [[-3.0, 1.0]]])  # 2 clips, 1 patch, 2 classes
    np.testing.assert_allclose(transfer.output_vectors(logits, "log_probabilities"),
                               np.log(1 / (1 + np.exp(-logits[:, 0]))))
    np.testing.assert_allclose(transfer.output_vectors(logits, "logits"), logits[:, 0])
    with pytest.raises(ValueError, match="distance_space"):
        transfer.output_vectors(logits, "probits")
    outputs = {"M": logits, "M->P": logits + 1, "M->Q": logits, "P": logits + 1, "Q": logits - 2}
    table = transfer.distances(outputs, "logits")
    to_p = table[(table.reference == "P")].set_index(["condition", "pair"])["distance"]
    assert to_p[("M->P", 0)] == 0 and to_p[("M", 0)] == pytest.approx(np.sqrt(2))
    rows = transfer.comparisons(table)
    assert [r[2] for r in rows] == ["d(P, M->P)", "d(P, M->Q)", "d(Q, M->P)", "d(Q, M->Q)"]


def test_factor_checks_name_the_problem():
    from audioprobe.latent.steps import factor_labels

    with pytest.raises(ValueError, match="single class"):
        factor_labels({"material": ["wood"] * 4, "action": ["tap", "rub"] * 2}, ["material", "action"], "f.h5")
    with pytest.raises(ValueError, match="no label 'colour'"):
        factor_labels({"material": ["wood", "metal"]}, ["colour"], "f.h5")


def test_best_layer_averages_the_factors(tmp_path):
    from audioprobe.io.atomic import write_csv
    from audioprobe.latent.steps import best_layer

    summary = pd.DataFrame({"layer": ["l1", "l2", "l3"] * 2, "factor": ["a"] * 3 + ["b"] * 3,
                            "mean_accuracy": [0.5, 0.9, 0.6, 0.7, 0.4, 0.8]})
    write_csv(tmp_path / "s.csv", summary, config={})
    assert best_layer(tmp_path / "s.csv") == "l3"  # means 0.6, 0.65, 0.7


def test_cv_folds_leave_the_test_split_out_and_keep_recordings_whole():
    from audioprobe.latent.split import cv_folds

    clips = clips_table(takes=6)
    split = split_groups(clips, ["material", "action"], val_fraction=0.2, test_fraction=0.2, seed=0)
    folds = cv_folds(clips, split, ["material", "action"], n_folds=4, seed=0)
    outside = split.loc[split["split"] != "test", "clip_id"]
    assert list(folds["clip_id"]) == list(outside)
    assert folds.groupby("group")["fold"].nunique().max() == 1 and set(folds["fold"]) == {0, 1, 2, 3}
    # the groups are the clips' recordings (from the clips table, not the folds' own column): none spans two folds
    recording = clips.set_index("clip_id").loc[folds["clip_id"], "group"].to_numpy()
    assert list(folds["group"]) == list(recording)
    assert folds.assign(recording=recording).groupby("recording")["fold"].nunique().max() == 1
    combos = clips.set_index("clip_id").loc[folds["clip_id"], ["label_material", "label_action"]]
    per_fold = combos.assign(fold=folds["fold"].to_numpy()).groupby("fold").nunique()
    assert (per_fold["label_material"] == 3).all()  # stratified: every fold holds every material
    pd.testing.assert_frame_equal(folds, cv_folds(clips, split, ["material", "action"], n_folds=4, seed=0))
    with pytest.raises(ValueError, match="use at most n_folds"):
        cv_folds(clips, split, ["material", "action"], n_folds=40, seed=0)


def test_each_fold_projection_ignores_its_own_fold():
    from audioprobe.latent.projection import fold_projections

    rng = np.random.default_rng(3)
    x = low_rank_data(rng, n=90)
    fold_of = np.arange(90) % 3
    projected, ratios = fold_projections(x, fold_of, 4)
    assert projected.shape == (3, 90, 4) and ratios.shape == (3, 4)
    changed = x.copy()
    changed[fold_of == 1] = rng.normal(40, 5, changed[fold_of == 1].shape)
    again, _ = fold_projections(changed, fold_of, 4)
    # fold 1's projection, fitted without fold 1, maps every unchanged clip exactly as before ...
    np.testing.assert_array_equal(again[1][fold_of != 1], projected[1][fold_of != 1])
    # ... while the other folds' projections were fitted on the changed clips and move
    assert not np.allclose(again[0][fold_of == 0], projected[0][fold_of == 0], atol=1e-2)
    alone = Projection.fit(x[fold_of != 2], 4).transform(x)
    np.testing.assert_allclose(projected[2], alone, atol=1e-5)


def recorded_clips(recordings_per_combination, clips_per_recording, rng):
    """values, material, action and recording of clips: 3 materials x 2 actions, each combination recorded
    several times; a recording's clips share an offset, as overlapping windows of one sound do."""
    rows = [(m, a, f"{m}{a}-{r}") for m in range(3) for a in range(2) for r in range(recordings_per_combination)
            for _ in range(clips_per_recording)]
    m, a, group = (np.array(column) for column in zip(*rows))
    offsets = {g: rng.normal(0, 0.5) for g in set(group)}
    values = 2.0 * m + np.array([offsets[g] for g in group]) + rng.normal(0, 0.3, len(group))
    return values, np.array(["wood", "metal", "glass"])[m], np.array(["tap", "rub"])[a], group


def test_partners_never_come_from_the_recording_of_m():
    rng = np.random.default_rng(5)
    values, material, action, group = recorded_clips(2, 10, rng)
    partners = transfer.choose_partners(values, material, action, group, typical_quantile=0.5, max_clips=1000,
                                        rng=np.random.default_rng(0))
    assert len(partners) >= 20
    assert (group[partners["p"]] != group[partners["m"]]).all() and (group[partners["q"]] != group[partners["m"]]).all()
    assert (partners["group_m"] == group[partners["m"]]).all() and (partners["group_p"] == group[partners["p"]]).all()
    # with two recordings per combination, P is a clip of the other recording of M's combination ...
    assert (material[partners["p"]] == material[partners["m"]]).all()
    fixed = partners["p_other_fixed"].to_numpy()
    assert fixed.mean() > 0.5 and (action[partners["p"][fixed]] == action[partners["m"][fixed]]).all()
    # ... unless that recording has no typical clip at all: only then does P's action differ
    typical, _ = transfer._typical_and_atypical(values, material, sorted(set(material)), 0.5)
    for _, row in partners[~fixed].iterrows():
        same = typical[(material[typical] == row.class_m) & (action[typical] == row.other)]
        assert (group[same] == row.group_m).all() and action[row.p] != row.other
    # without recordings given, each clip is its own: a P from M's own recording then turns up
    unaware = transfer.choose_partners(values, material, action, typical_quantile=0.5, max_clips=1000,
                                       rng=np.random.default_rng(0))
    assert (group[unaware["p"]] == group[unaware["m"]]).any()


def test_a_single_recording_per_combination_lets_the_other_factor_go_but_never_the_recording():
    rng = np.random.default_rng(6)
    values, material, action, group = recorded_clips(1, 12, rng)
    partners = transfer.choose_partners(values, material, action, group, typical_quantile=0.5, max_clips=1000,
                                        rng=np.random.default_rng(0))
    assert (group[partners["p"]] != group[partners["m"]]).all() and (group[partners["q"]] != group[partners["m"]]).all()
    # M's combination has no other recording: P has M's material but the other action, and is flagged
    assert not partners["p_other_fixed"].any() and (action[partners["p"]] != action[partners["m"]]).all()
    assert partners["q_other_fixed"].all()  # another material with M's action is another recording anyway
    with pytest.raises(ValueError, match="one entry per clip"):
        transfer.choose_partners(values, material, action, group[:-1], typical_quantile=0.5, max_clips=5,
                                 rng=rng)
    # editing action, each action class of wood alone is one recording: no P from another recording exists
    wood = material == "wood"
    with pytest.raises(ValueError, match=r"classes \['rub', 'tap'\] have clips of a single recording"):
        transfer.choose_partners(values[wood], action[wood], material[wood], group[wood], typical_quantile=0.5,
                                 max_clips=5, rng=rng)


def test_the_default_dataset_gives_every_combination_two_test_recordings():
    from audioprobe import config

    cfg = {"datasets": {"a": {"kind": "maas-synth"}}, "models": {"y": {"kind": "yamnet"}},
           "activations": {"runs": [{"model": "y", "dataset": "a"}]}}
    config.fill_defaults(cfg, config.load_schema())
    settings = cfg["latent"]["split"]
    clips = clips_table(takes=cfg["datasets"]["a"]["takes"], clips_per_take=2)
    for seed in range(5):
        split = split_groups(clips, ["material", "action"], val_fraction=settings["val_fraction"],
                             test_fraction=settings["test_fraction"], seed=seed)
        counts = (split.assign(combo=clips.label_material + clips.label_action).drop_duplicates("group")
                  .groupby(["combo", "split"]).size().unstack())
        assert (counts["test"] == 2).all() and (counts["val"] == 1).all() and (counts["train"] == 2).all()


def transfer_table(rng, recordings=12, clips=6, shift=0.0, shared=1.0):
    """A distances table of one factor: per M recording a shared effect (sd ``shared``) around ``shift``
    plus small clip noise, as overlapping clips of one recording behave."""
    rows = []
    for r in range(recordings):
        effect = shift + rng.normal(0, shared)
        for c in range(clips):
            pair = r * clips + c
            for reference in transfer.REFERENCES:
                base = 5 + rng.normal(0, 0.1)
                for condition, d in (("M", base), ("M->P", base - effect + rng.normal(0, 0.05)),
                                     ("M->Q", base + rng.normal(0, 0.05))):
                    rows.append({"pair": pair, "reference": reference, "condition": condition, "distance": d,
                                 "factor": "material", "group_m": f"rec{r}"})
    return pd.DataFrame(rows)


def test_transfer_tests_run_over_recordings_not_overlapping_clips():
    from scipy import stats as scipy_stats

    from audioprobe.latent.steps import recording_level_statistics

    rng = np.random.default_rng(0)
    table = transfer_table(rng, recordings=8, clips=10, shift=0.3, shared=1.0)
    statistics = recording_level_statistics(table)
    assert len(statistics) == 4 and (statistics["n"] == 8).all()
    assert (statistics["n_recordings"] == 8).all() and (statistics["n_pairs"] == 80).all()
    row = statistics[statistics["label_b"] == "material: d(P, M->P)"].iloc[0]
    means = table[table.reference == "P"].groupby(["group_m", "condition"])["distance"].mean().unstack()
    expected = scipy_stats.ttest_rel(means["M"], means["M->P"])
    assert row["t"] == pytest.approx(expected.statistic) and row["p_t"] == pytest.approx(expected.pvalue)
    assert row["df"] == 7
    # the clip-level test treats 80 overlapping clips as independent and claims far more certainty
    clip_level = scipy_stats.ttest_rel(
        table[(table.reference == "P") & (table.condition == "M")].sort_values("pair")["distance"],
        table[(table.reference == "P") & (table.condition == "M->P")].sort_values("pair")["distance"])
    assert clip_level.pvalue < row["p_t"] / 10
    significant = statistics["p_t_bonferroni"] < 0.05  # intervals still agree with the corrected tests
    assert (significant == ((statistics["ci_low"] > 0) | (statistics["ci_high"] < 0))).all()
    assert statistics["ci_level"].str.contains("over recordings").all()


def test_transfer_statistics_step_reads_recordings_and_writes_them(tmp_path):
    import h5py

    from audioprobe.io.atomic import read_csv, read_csv_config
    from audioprobe.latent.steps import transfer_statistics_step

    rng = np.random.default_rng(1)
    with h5py.File(tmp_path / "outputs.h5", "w") as file:
        file.attrs["layer"] = "layer9"
        file.attrs["config"] = "{}"
        for factor in ("material", "action"):
            group = file.create_group(factor)
            for name in ("M", "M->P", "M->Q", "P", "Q"):
                group.create_dataset(name, data=rng.normal(0, 1, (9, 1, 5)))
            group.create_dataset("group_m", data=np.array(["a", "a", "a", "b", "b", "c", "c", "c", "c"],
                                                          dtype=object), dtype=h5py.string_dtype())
            group.attrs["p_other_fixed"], group.attrs["q_other_fixed"] = 9, 9
    outputs = SimpleNamespace(distances=tmp_path / "d.csv", statistics=tmp_path / "s.csv",
                              figure=tmp_path / "figure2.png")
    transfer_statistics_step(tmp_path / "outputs.h5", outputs, settings={"distance_space": "logits"})
    statistics, distances = read_csv(outputs.statistics), read_csv(outputs.distances)
    assert len(statistics) == 8 and (statistics["n_recordings"] == 3).all() and (statistics["n_pairs"] == 9).all()
    assert set(distances["group_m"]) == {"a", "b", "c"}
    assert read_csv_config(outputs.statistics)["unit"].startswith("M's recording")
    assert outputs.figure.read_bytes()[:4] == b"\x89PNG"
    with h5py.File(tmp_path / "old.h5", "w") as file:  # an outputs file from before recordings were kept
        file.attrs["layer"], file.attrs["config"] = "layer9", "{}"
        file.create_group("material").create_dataset("M", data=np.zeros((2, 1, 5)))
    with pytest.raises(ValueError, match="rerun transfer_edit"):
        transfer_statistics_step(tmp_path / "old.h5", outputs, settings={"distance_space": "logits"})


def test_transfer_takes_exactly_two_factors():
    from audioprobe.latent.steps import other_factor

    assert other_factor(["material", "action"], "material") == "action"
    with pytest.raises(ValueError, match="exactly two latent.factors"):
        other_factor(["material", "action", "room"], "material")


def test_gram_and_svd_routes_give_the_same_components():
    from audioprobe.latent.projection import _principal_axes

    rng = np.random.default_rng(4)
    x = low_rank_data(rng, n=80, d=400, rank=12)
    standard = (x - x.mean(0)) / x.std(0)
    gram_basis, gram_ratio = _principal_axes(standard, 6, seed=0, gram_max_rows=1000)
    svd_basis, svd_ratio = _principal_axes(standard, 6, seed=0, gram_max_rows=10)  # above the cap: SVD
    np.testing.assert_allclose(gram_basis, svd_basis, atol=1e-4)
    np.testing.assert_allclose(gram_ratio, svd_ratio, rtol=1e-4)


def test_projection_memory_grows_with_the_layer_and_caps_the_gram_term():
    from audioprobe.latent.projection import GRAM_MAX_ROWS, projection_mem_mb

    small, large, huge = (projection_mem_mb(size, budget_mb=None) for size in (50, 5_000, 500_000))
    assert 1000 < small < large < huge
    assert large >= 1000 + 5 * 5_000  # the copies of the data alone
    assert huge - 5 * 500_000 - 1000 <= GRAM_MAX_ROWS ** 2 * 24 / 1e6  # n² bounded by the cap
    assert projection_mem_mb(5_000, compressed=True, budget_mb=None) > large
    assert projection_mem_mb(2_500, itemsize=2, budget_mb=None) == large  # float16 values are float32 in memory
    # with a budget (latent.projection_memory_mb) a large layer streams within it, whatever its size
    assert projection_mem_mb(50, budget_mb=4000) == small
    assert projection_mem_mb(5_000, budget_mb=4000) == projection_mem_mb(500_000, budget_mb=4000) == 4000


def test_log_probabilities_are_the_models_own():
    """A sigmoid model's log-probabilities are log sigma per class; a softmax model's sum to one."""
    from audioprobe.latent import transfer

    logits = np.array([[[2.0, -1.0, 0.5]], [[0.0, 0.0, 3.0]]])
    sigmoid = transfer.output_vectors(logits, "log_probabilities", "sigmoid")
    np.testing.assert_allclose(sigmoid, np.log(1 / (1 + np.exp(-logits[:, 0]))))
    softmax = transfer.output_vectors(logits, "log_probabilities", "softmax")
    np.testing.assert_allclose(np.exp(softmax).sum(axis=1), 1.0)
    np.testing.assert_allclose(softmax[:, 0] - softmax[:, 1], logits[:, 0, 0] - logits[:, 0, 1])
