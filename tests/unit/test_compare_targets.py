"""Targets: reading and checking responses at ingest, and RSA and encoding of planted targets, step by step."""

import h5py
import numpy as np
import pandas as pd
import pytest

from audioprobe.compare import target_steps, targets
from audioprobe.io.atomic import read_csv_config
from tests.unit.test_compare_steps import layer_files, manifest_of
from tests.unit.test_latent_steps import WIDTH, clips_table

pytest.importorskip("rsatoolbox")
pytest.importorskip("himalaya")

SETTINGS = {"stimuli": "sounds", "axes": ["stimuli", "channels"], "id_key": "stimulus_id",
            "responses_key": "responses"}
RSA = {"rdm": "correlation", "methods": ["spearman"], "bootstrap": 40, "ci": 0.95, "seed": 0}
ENCODING = {"splits": 3, "train_fraction": 0.5, "alpha_exponents": [-3, 6], "inner_folds": 5, "scale": "demean",
            "seed": 0}


def write_h5(path, ids, values):
    with h5py.File(path, "w") as handle:
        handle["stimulus_id"] = np.asarray(ids, dtype=object).astype("S")
        handle["responses"] = values


# --- ingest -----------------------------------------------------------------------------------------------

@pytest.fixture
def stimuli(tmp_path):
    clips = clips_table(recordings=2, clips=3)
    return clips, manifest_of(clips, tmp_path / "manifest.csv")


def test_hdf5_npz_and_csv_give_the_same_responses_in_the_manifests_order(tmp_path, stimuli):
    clips, manifest = stimuli
    ids = clips["clip_id"].tolist()[::-1][:10]  # a subset, in another order
    values = np.random.default_rng(0).normal(size=(10, 3))
    write_h5(tmp_path / "r.h5", ids, values)
    np.savez(tmp_path / "r.npz", stimulus_id=np.asarray(ids), responses=values)
    pd.DataFrame(values, columns=["a", "b", "c"]).assign(stimulus_id=ids).to_csv(tmp_path / "r.csv", index=False)
    written = []
    for name in ("r.h5", "r.npz", "r.csv"):
        result = targets.ingest(tmp_path / name, manifest, SETTINGS, tmp_path / f"{name}.out.h5")
        stored = targets.read_target(tmp_path / f"{name}.out.h5")
        assert stored.clip_ids == [c for c in clips["clip_id"] if c in ids] == result.clip_ids
        written.append(stored.values)
    np.testing.assert_allclose(written[0], values[::-1])
    np.testing.assert_allclose(written[1], written[0]) and np.testing.assert_allclose(written[2], written[0])


@pytest.mark.parametrize("ids, values, axes, message", [
    (["nope@1", "wood-tap-0@0", "wood-tap-0@1", "wood-tap-0@2"], np.zeros((4, 2)), ["stimuli", "channels"],
     r"stimulus ids \['nope@1'\] \(1 in all\) are not clip ids"),
    (["wood-tap-0@0"] * 4, np.zeros((4, 2)), ["stimuli", "channels"], "appear more than once"),
    ([f"wood-tap-0@{i}" for i in range(3)] + ["wood-tap-1@0"], np.where(np.eye(4, 2) > 0, np.nan, 1.0),
     ["stimuli", "channels"], r"responses of stimuli \['wood-tap-0@0', 'wood-tap-0@1'\] hold NaN or infinite values \(2 values\)"),
    ([f"wood-tap-0@{i}" for i in range(3)] + ["wood-tap-1@0"], np.ones((4, 2)),
     ["stimuli", "channels", "repetitions"], "responses have 2 dimensions .* but axes says 3"),
    ([f"wood-tap-0@{i}" for i in range(3)] + ["wood-tap-1@0"], np.ones((4, 2, 1)),
     ["stimuli", "channels", "participants"], "too small"),
    ([f"wood-tap-0@{i}" for i in range(3)], np.ones((3, 2)), ["stimuli", "channels"], "too small"),
])
def test_bad_responses_are_refused_naming_the_file(tmp_path, stimuli, ids, values, axes, message):
    _, manifest = stimuli
    write_h5(tmp_path / "bad.h5", ids, values)
    with pytest.raises(ValueError, match=message) as error:
        targets.ingest(tmp_path / "bad.h5", manifest, {**SETTINGS, "axes": axes}, tmp_path / "out.h5")
    assert str(tmp_path / "bad.h5") in str(error.value) and not (tmp_path / "out.h5").exists()


def test_files_without_the_arrays_or_of_another_kind_are_refused(tmp_path, stimuli):
    _, manifest = stimuli
    np.savez(tmp_path / "r.npz", ids=np.asarray(["a"]), responses=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="has no 'stimulus_id'.*set id_key"):
        targets.ingest(tmp_path / "r.npz", manifest, SETTINGS, tmp_path / "out.h5")
    pd.DataFrame({"stimulus_id": ["a"], "x": ["high"]}).to_csv(tmp_path / "r.csv", index=False)
    with pytest.raises(ValueError, match="column 'x' is not numeric"):
        targets.ingest(tmp_path / "r.csv", manifest, SETTINGS, tmp_path / "out.h5")
    (tmp_path / "r.mat").write_text("")
    with pytest.raises(ValueError, match=r"HDF5 \(.h5, .hdf5\), NPZ \(.npz\) or CSV"):
        targets.ingest(tmp_path / "r.mat", manifest, SETTINGS, tmp_path / "out.h5")
    with pytest.raises(FileNotFoundError, match="datasets.<target>.responses"):
        targets.ingest(tmp_path / "none.h5", manifest, SETTINGS, tmp_path / "out.h5")


# --- planted targets --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Three layers of unrelated activations; a target of 8 channels read from the middle one plus noise, with
    4 repetitions (or participants) of independent noise."""
    folder = tmp_path_factory.mktemp("planted")
    clips = clips_table(recordings=4, clips=5)
    rng = np.random.default_rng(3)
    layers = {name: rng.normal(size=(len(clips), WIDTH)) for name in ("early", "middle", "late")}
    files = layer_files(folder / "layers", layers, clips)
    signal = layers["middle"] @ rng.normal(size=(WIDTH, 8))
    values = signal[:, :, None] + rng.normal(0, signal.std(), (len(clips), 8, 4))
    manifest = manifest_of(clips, folder / "manifest.csv")
    paths = {}
    for third in ("repetitions", "participants"):
        write_h5(folder / f"{third}.h5", clips["clip_id"].tolist(), values)
        paths[third] = folder / f"{third}.target.h5"
        targets.ingest(folder / f"{third}.h5", manifest, {**SETTINGS, "axes": ["stimuli", "channels", third]},
                       paths[third])
    return files, paths, {"early": 0.0, "middle": 0.5, "late": 1.0}, folder


def test_rsa_with_a_planted_target_peaks_at_its_layer_below_the_noise_ceiling(planted):
    files, paths, depth, folder = planted
    table = target_steps.target_rsa(files, paths["participants"], "net", depth, RSA, folder / "rsa.csv")
    score = table.set_index("layer")["score"]
    assert score.idxmax() == "middle" and score["middle"] > 0.2 > max(score["early"], score["late"])
    low, high = table["ceiling_low"].iloc[0], table["ceiling_high"].iloc[0]
    assert 0 < low < high and score["middle"] <= high
    assert set(table["target_rdms"]) == {4} and set(table["rdms_over"]) == {"participants"}
    assert read_csv_config(folder / "rsa.csv") == {"model": "net", **RSA}


def test_encoding_of_a_planted_target_peaks_at_its_layer_and_the_noise_correction_raises_it(planted):
    files, paths, depth, folder = planted
    table = target_steps.target_encoding(files, paths["repetitions"], "net", depth, ENCODING,
                                         folder / "encoding.csv").set_index("layer")
    assert table["r2"].idxmax() == "middle" and table.loc["middle", "r2"] > 0.3
    # the target is a linear read-out of the layer plus noise: corrected for that noise, the layer explains it all
    assert table.loc["middle", "r2"] < 0.8 and table.loc["middle", "r2_corrected"] == pytest.approx(1.0, abs=0.1)
    assert max(table.loc[["early", "late"], "r2"]) < 0.1
    assert set(table["splits"]) == {3} and set(table["train"]) == {60} and set(table["channels"]) == {8}


def test_encoding_of_participants_scores_each_participants_channels(planted):
    files, paths, depth, folder = planted
    table = target_steps.target_encoding(files, paths["participants"], "net", depth, ENCODING,
                                         folder / "encoding_p.csv").set_index("layer")
    assert table["r2"].idxmax() == "middle" and table["r2_corrected"].isna().all()
    assert set(table["channels"]) == {32}  # 8 channels x 4 participants


def test_target_profiles_draw_both_measures(planted, tmp_path):
    files, paths, depth, folder = planted
    target_steps.target_rsa(files, paths["repetitions"], "net", depth, RSA, tmp_path / "rsa.csv")
    target_steps.target_encoding(files, paths["repetitions"], "net", depth, ENCODING, tmp_path / "enc.csv")
    target_steps.target_profiles({"net": tmp_path / "rsa.csv"}, {"net": tmp_path / "enc.csv"}, "planted",
                                 tmp_path / "profiles.png")
    assert (tmp_path / "profiles.png").stat().st_size > 0
