"""The comparison branch's steps on planted layer files: CKA between two models' layers, RSA with the label RDMs
(with a bootstrap over recordings), and the layer profiles."""

import numpy as np
import pytest
from scipy.stats import ortho_group

from audioprobe.compare import rsa, steps
from audioprobe.io.atomic import read_csv, read_csv_config
from tests.unit.test_latent_steps import WIDTH, clips_table, write_layer

pytest.importorskip("rsatoolbox")

CKA = {"unbiased": True, "max_clips": None, "seed": 0}
LABEL_RSA = {"labels": ["material", "action"], "rdm": "correlation", "methods": ["spearman"], "bootstrap": 50,
             "ci": 0.95, "unit": "group", "max_clips": None, "seed": 0}


def layer_files(folder, layers: dict, clips) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, values in layers.items():
        paths[name] = str(folder / f"{name}.h5")
        write_layer(paths[name], values, clips)
    return paths


def class_signal(codes, rng, scale=1.0):
    """One random pattern per class, repeated over the clips of the class."""
    patterns = rng.normal(0, scale, (codes.max() + 1, WIDTH))
    return patterns[codes]


def test_cka_pair_finds_the_rotated_layer_and_not_the_unrelated_one(tmp_path):
    clips = clips_table(recordings=4, clips=5)
    rng = np.random.default_rng(0)
    first = rng.normal(size=(len(clips), WIDTH))
    rotated = 3.0 * first @ ortho_group.rvs(WIDTH, random_state=1)
    files_a = layer_files(tmp_path / "a", {"early": first, "late": rng.normal(size=first.shape)}, clips)
    files_b = layer_files(tmp_path / "b", {"rotated": rotated, "noise": rng.normal(size=first.shape)}, clips)

    table = steps.cka_pair(files_a, files_b, ("net_a", "net_b"), CKA, tmp_path / "cka.csv", tmp_path / "cka.png")

    cka = table.set_index(["layer_a", "layer_b"])["cka"]
    assert cka["early", "rotated"] == pytest.approx(1.0, abs=1e-6)
    assert abs(cka["early", "noise"]) < 0.1 and abs(cka["late", "rotated"]) < 0.1
    assert set(table.model_a) == {"net_a"} and set(table.model_b) == {"net_b"} and set(table.clips) == {120}
    written = read_csv(tmp_path / "cka.csv")
    assert list(written.columns) == ["model_a", "layer_a", "model_b", "layer_b", "cka", "clips"]
    assert read_csv_config(tmp_path / "cka.csv") == {"models": ["net_a", "net_b"], **CKA}
    assert (tmp_path / "cka.png").stat().st_size > 0


def test_cka_pair_on_a_clip_subset_draws_the_same_clips_for_both_models(tmp_path):
    clips = clips_table(recordings=4, clips=5)
    values = np.random.default_rng(0).normal(size=(len(clips), WIDTH))
    files = layer_files(tmp_path / "a", {"only": values}, clips)
    table = steps.cka_pair(files, files, ("net", "net"), {**CKA, "max_clips": 30}, tmp_path / "c.csv",
                           tmp_path / "c.png")
    assert table["cka"].item() == pytest.approx(1.0) and table["clips"].item() == 30


def test_cka_pair_refuses_models_extracted_on_other_clips(tmp_path):
    clips = clips_table(recordings=4, clips=5)
    values = np.random.default_rng(0).normal(size=(len(clips), WIDTH))
    files_a = layer_files(tmp_path / "a", {"x": values}, clips)
    files_b = layer_files(tmp_path / "b", {"y": values[::-1]}, clips.iloc[::-1])
    with pytest.raises(ValueError, match="do not hold the same clips in the same order.*first difference at row 0"):
        steps.cka_pair(files_a, files_b, ("a", "b"), CKA, tmp_path / "c.csv", tmp_path / "c.png")
    assert not (tmp_path / "c.csv").exists()


def manifest_of(clips, path):
    from audioprobe.datasets.manifest import BASE_COLUMNS

    table = clips.assign(path=clips["group"] + ".wav", offset=0.0, duration=0.975, sample_rate=16000, channels=1)
    table = table[BASE_COLUMNS].assign(peak=0.5, label_material=clips["material"], label_action=clips["action"])
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def planted_rsa(tmp_path_factory):
    """Three layers: one carries the material, one the action, one neither; and the label-RSA table."""
    folder = tmp_path_factory.mktemp("rsa")
    clips = clips_table(recordings=4, clips=5)
    rng = np.random.default_rng(2)
    noise = lambda: rng.normal(0, 1.0, (len(clips), WIDTH))  # noqa: E731
    layers = {"material_layer": class_signal(clips["m"].to_numpy(), rng, 2.0) + noise(),
              "action_layer": class_signal(clips["a"].to_numpy(), rng, 2.0) + noise(),
              "noise_layer": noise()}
    files = layer_files(folder / "layers", layers, clips)
    depth = {"material_layer": 0.0, "action_layer": 0.5, "noise_layer": 1.0}
    table = steps.label_rsa(files, manifest_of(clips, folder / "manifest.csv"), "planted", depth, LABEL_RSA,
                            folder / "planted.csv")
    return table.set_index(["layer", "label"]), folder


def test_label_rsa_peaks_at_the_layer_that_carries_each_label(planted_rsa):
    table, _ = planted_rsa
    assert table.loc[("material_layer", "material"), "score"] > 0.3
    assert table.loc[("action_layer", "action"), "score"] > 0.3
    for label, other in [("material", "action_layer"), ("action", "material_layer"), ("material", "noise_layer")]:
        assert table.loc[(other, label), "score"] < 0.1 < table.loc[(f"{label}_layer", label), "ci_low"]


def test_label_rsa_intervals_resample_recordings_and_bracket_the_estimate(planted_rsa):
    table, folder = planted_rsa
    assert (table["ci_low"] <= table["score"]).all() and (table["score"] <= table["ci_high"]).all()
    assert set(table["groups"]) == {24} and set(table["clips"]) == {120}
    assert read_csv_config(folder / "planted.csv") == {"model": "planted", **LABEL_RSA}


def test_label_rsa_names_a_label_the_layer_files_do_not_carry(tmp_path):
    clips = clips_table(recordings=2, clips=3)
    files = layer_files(tmp_path, {"x": np.random.default_rng(0).normal(size=(len(clips), WIDTH))}, clips)
    with pytest.raises(ValueError, match=r"compare.label_rsa.labels names \['speaker'\]"):
        steps.label_rsa(files, manifest_of(clips, tmp_path / "m.csv"), "net", {"x": 0.0},
                        {**LABEL_RSA, "labels": ["speaker"]}, tmp_path / "t.csv")


def test_layer_profiles_overlay_every_model(planted_rsa, tmp_path):
    _, folder = planted_rsa
    frame = steps.layer_profiles({"planted": folder / "planted.csv"}, tmp_path / "profiles.png")
    assert len(frame) == 6 and (tmp_path / "profiles.png").stat().st_size > 0


# --- the bootstrap over recordings ------------------------------------------------------------------------

def test_a_group_bootstrap_of_single_stimulus_groups_is_the_stimulus_bootstrap():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    target = rsa.layer_rdm(X + rng.normal(size=X.shape))
    by_stimulus = rsa.bootstrap_ci(X, target, n_bootstrap=40, seed=5)
    by_group = rsa.bootstrap_ci(X, target, n_bootstrap=40, seed=5, groups=np.arange(30))
    np.testing.assert_allclose(by_group.samples, by_stimulus.samples, atol=1e-12)


def test_a_group_bootstrap_leaves_out_pairs_between_copies_of_a_recording():
    """Clips of a recording nearly identical and sharing their label: counting the pairs between two copies of a
    drawn recording (within-recording pairs the data hold once) would push every sample above the estimate."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(12), 6)
    labels = rng.integers(0, 3, 12)[groups]
    X = rng.normal(size=(12, 10))[groups] + 0.05 * rng.normal(size=(72, 10))
    result = rsa.bootstrap_ci(X, rsa.label_rdm(labels), n_bootstrap=200, seed=0, groups=groups)
    assert result.low < result.estimate < result.high
    assert abs(np.median(result.samples) - result.estimate) < 0.05  # 0.10 above it with those pairs counted


def test_a_group_bootstrap_needs_a_group_per_stimulus_and_three_groups():
    X = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(ValueError, match="one group id per stimulus"):
        rsa.bootstrap_ci(X, rsa.layer_rdm(X), n_bootstrap=5, groups=np.zeros(9))
    with pytest.raises(ValueError, match="at least 3 groups"):
        rsa.bootstrap_ci(X, rsa.layer_rdm(X), n_bootstrap=5, groups=np.repeat([0, 1], 5))
