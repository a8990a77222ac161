"""Study 1 (latent disentanglement, Dick et al.) end to end: the session's tiny run and a folder of real
recordings."""

import json
from math import factorial, log10

import h5py
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from audioprobe.datasets.manifest import read_manifest
from audioprobe.io.atomic import read_csv
from tests import snakemake_cli
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


# --- checks of the values, shared by both runs ------------------------------------------------------------------
# Each reads the labels and recordings from the manifest (by clip id), not from the file it checks, so a step that
# decoded another factor's labels or used clip ids as recordings gives other numbers than these.

def check_groups(base, clips):
    """Every recording sits in one split and, outside the test split, in one decoding fold."""
    recording = clips.set_index("clip_id")["group"]
    split, folds = read_csv(base / "split.csv"), read_csv(base / "cv_folds.csv")
    assert list(split["group"]) == list(recording.loc[split["clip_id"]])
    assert list(folds["group"]) == list(recording.loc[folds["clip_id"]])
    assert split.groupby("group")["split"].nunique().max() == 1
    assert folds.groupby("group")["fold"].nunique().max() == 1
    return split, folds


def check_decoding(base, clips, folds, factors, k=3):
    """folds.csv is scikit-learn's KNN on each layer's per-fold projection with the manifest's labels of each
    factor, and the null shuffles whole recordings within the folds."""
    labels = clips.set_index("clip_id").loc[folds["clip_id"]]
    table, summary, null = (read_csv(base / f"decoding/{name}.csv") for name in ("folds", "summary", "null"))
    fold = folds["fold"].to_numpy()
    for layer in dict.fromkeys(table["layer"]):
        with h5py.File(base / f"projection_folds/{layer}.h5", "r") as file:
            projected = file["projected"][()]
            assert list(file["clip_id"].asstr()[()]) == list(folds["clip_id"])
        for factor in factors:
            y = labels[f"label_{factor}"].to_numpy()
            expected = [np.mean(KNeighborsClassifier(n_neighbors=k, algorithm="brute")
                                .fit(projected[f][fold != f], y[fold != f]).predict(projected[f][fold == f])
                                == y[fold == f]) for f in range(projected.shape[0])]
            got = table[(table["layer"] == layer) & (table["factor"] == factor)].sort_values("fold")["accuracy"]
            np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=f"{layer}, {factor}")
    recordings = labels.assign(fold=fold).drop_duplicates("group")
    for factor in factors:
        reach = sum(log10(factorial(len(part)) / np.prod([factorial(c) for c in part[f"label_{factor}"].value_counts()
                                                          ])) for _, part in recordings.groupby("fold"))
        rows = summary[summary["factor"] == factor]
        assert rows["null_relabelings_log10"].to_numpy() == pytest.approx(reach, abs=1e-3)
        # a shuffle of recordings within folds reaches only so many labellings: so many distinct accuracies
        distinct = null[null["factor"] == factor].groupby("layer")["accuracy"].apply(lambda a: a.round(6).nunique())
        assert distinct.max() <= 10 ** reach + 1e-6
    return summary


def best_rows(summary):
    """Each factor's row of its best layer (highest mean accuracy)."""
    return summary.loc[summary.groupby("factor", sort=False)["mean_accuracy"].idxmax()].set_index("factor")


def check_manipulation_check(base, clips, split, factors, components):
    """The check runs on the test clips only, grouped by recording, over the flow's dimensions."""
    test = clips.set_index("clip_id").loc[split.loc[split["split"] == "test", "clip_id"]]
    check = read_csv(base / "manipulation_check.csv")
    assert (check["clips"] == len(test)).all() and (check["folds"] == min(4, test["group"].nunique())).all()
    assert check["features"].tolist() == ["own dimension", "other factor's dimension", "residual dimensions"] * 2
    assert check["dimensions"].tolist() == [1, 1, components - 2] * 2
    for factor in factors:
        uniform = check.loc[check["factor"] == factor, "chance_uniform"]
        assert uniform.to_numpy() == pytest.approx(1 / test[f"label_{factor}"].nunique())
    assert (check["null_unit"] == "recording").all()
    return check.set_index(["factor", "features"])


def check_transfer(base, clips, split, factors):
    """The round trip of the unedited clips is exact; M, P and Q are test clips, P and Q from other recordings
    than M (by the manifest), P of M's class and Q of another."""
    by_id = clips.set_index("clip_id")
    test = set(split.loc[split["split"] == "test", "clip_id"])
    with h5py.File(base / "transfer/edited.h5", "r") as edited:
        for factor in factors:
            group = edited[factor]
            assert group.attrs["round_trip_error"] < 1e-3
            m, p, q = (by_id.loc[group[f"clip_{x}"].asstr()[()]] for x in "mpq")
            for x, table in zip("mpq", (m, p, q)):
                assert set(table.index) <= test
                assert list(group[f"group_{x}"].asstr()[()]) == list(table["group"])
            assert (p["group"].to_numpy() != m["group"].to_numpy()).all()
            assert (q["group"].to_numpy() != m["group"].to_numpy()).all()
            label = f"label_{factor}"
            assert json.loads(group.attrs["class_m"]) == list(m[label])
            assert (p[label].to_numpy() == m[label].to_numpy()).all()
            assert (q[label].to_numpy() != m[label].to_numpy()).all()
    assert json.loads((base / "flow/invertibility.json").read_text())["max_abs_round_trip_error"] <= 1e-4


def test_study1_outputs(tiny_run):
    base = tiny_run / "results/latent/yamnet/maas-synth"
    summary = read_csv(base / "decoding/summary.csv")
    assert len(summary) == 28 and set(summary["factor"]) == {"material", "action"}
    assert "StratifiedGroupKFold" in summary["split"].iloc[0]
    # decoding never sees a test clip: folds cover exactly the train and val clips
    split, folds = read_csv(base / "split.csv"), read_csv(base / "cv_folds.csv")
    assert set(folds["clip_id"]) == set(split.loc[split["split"] != "test", "clip_id"])
    assert summary["decoded_on"].str.contains("test split is never decoded").all()
    assert (summary["permutations"] == 200).all() and summary["p_permutation"].between(1 / 201, 1).all()
    assert (summary["null_mean"] <= summary["null_p95"]).all()
    assert len(read_csv(base / "decoding/null.csv")) == 28 * 200
    # tiny has 3 recordings per pair: no validation split, so no early stopping, and curve.csv says so
    curve = read_csv(base / "flow/curve.csv")
    assert len(curve) == 5 and curve["val_loss"].isna().all() and curve["kept"].tolist() == [False] * 4 + [True]
    assert curve["early_stopping"].iloc[0].startswith("off: the validation split is empty")
    tests = read_csv(base / "decoding/tests.csv")
    assert {"p_t_bonferroni", "p_t_holm"} <= set(tests.columns) and len(tests) == 6
    assert json.loads((base / "flow/invertibility.json").read_text())["max_abs_round_trip_error"] <= 1e-4
    statistics = read_csv(base / "transfer/statistics.csv")
    assert len(statistics) == 8 and statistics["p_t_holm"].between(0, 1).all()
    assert (summary["null_unit"] == "recording").all()
    # the transfer is tested over M's recordings, and no partner comes from M's recording
    distances = read_csv(base / "transfer/distances.csv")
    per_factor = distances.groupby("factor").agg(recordings=("group_m", "nunique"), pairs=("pair", "nunique"))
    factor_of = statistics["label_a"].str.split(": ").str[0]
    assert (statistics["n"] == statistics["n_recordings"]).all()
    assert (statistics["n_recordings"].to_numpy() == per_factor.loc[factor_of, "recordings"].to_numpy()).all()
    assert (statistics["n_pairs"].to_numpy() == per_factor.loc[factor_of, "pairs"].to_numpy()).all()
    with h5py.File(base / "transfer/edited.h5", "r") as edited:
        for factor in ("material", "action"):
            m, p, q = (edited[factor][f"group_{x}"].asstr()[()] for x in "mpq")
            assert (m != p).all() and (m != q).all()
    significant = statistics["p_t_bonferroni"] < 0.05  # Figure 2's intervals agree with its stars
    assert (significant == ((statistics["ci_low"] > 0) | (statistics["ci_high"] < 0))).all()
    for figure in ("decoding/decoding.png", "flow/curve.png", "figure1.png", "transfer/figure2.png"):
        assert (base / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # the values (the tiny run, 0.975 s clips of 2 materials x 2 actions x 3 synthetic takes; seen: material best
    # layer 0.958 vs permutation mean 0.467, action 0.958 vs 0.520; round trips ~1e-6)
    clips = read_manifest(tiny_run / "results/datasets/maas-synth/manifest.csv")
    split, folds = check_groups(base, clips)
    summary = check_decoding(base, clips, folds, ["material", "action"])
    best = best_rows(summary)
    assert (best["mean_accuracy"] >= best["null_mean"] + 0.3).all()
    assert (best["mean_accuracy"] >= best["null_p95"]).all()
    # Not asserted here: a small p. Two of the four folds hold one class of each factor and the other two hold
    # two recordings, so the null reaches 4 labellings and no p can go below 0.25 (null_min_p).
    assert (summary["null_min_p"] == 0.25).all()
    check_transfer(base, clips, split, ["material", "action"])
    # Not asserted on the tiny run: the check's own dimension beating the residual ones. Its flow trains 5
    # epochs on 8 recordings and each test fold holds one recording, and it does not (action: own 0.0,
    # residual 0.67); tests/unit/test_latent_steps.py asserts it on a planted latent.
    check_manipulation_check(base, clips, split, ["material", "action"], components=8)


def test_study1_runs_on_a_folder_of_real_recordings(tmp_path, yamnet_tflite):
    """The real-recordings path: stereo 44.1 kHz WAVs (one of them float) with labels from a CSV."""
    root = shared_path("data", "materials_roll")
    config = {
        "datasets": {"rolling": {"kind": "folder", "root": str(root), "clip_seconds": 0.975, "hop_seconds": 0.48,
                                 "labels": {"scheme": "csv", "csv": "labels.csv",
                                            "columns": ["material", "class_name"]}}},
        "activations": {"runs": [{"model": "yamnet", "dataset": "rolling"}]},
        "latent": {"runs": [{"model": "yamnet", "dataset": "rolling"}], "factors": ["material", "class_name"],
                   "flow": {"layer": "layer9"},
                   # 4 recordings per class: 2 test ones, so a transfer partner can come from another recording
                   "split": {"val_fraction": 0.2, "test_fraction": 0.4}},
        "dissect": {"runs": []},
        "compare": {"runs": []},
    }
    base = "results/latent/yamnet/rolling"
    snakemake_cli.run(tmp_path, f"{base}/transfer/statistics.csv", f"{base}/figure1.png", f"{base}/decoding/summary.csv",
              config=config,
              weights=yamnet_tflite)
    clips = read_manifest(tmp_path / "results/datasets/rolling/manifest.csv")
    assert clips["path"].nunique() == 20 and set(clips["channels"]) == {2}
    summary = read_csv(tmp_path / f"{base}/decoding/summary.csv")
    assert set(summary["factor"]) == {"material", "class_name"} and len(summary) == 28
    assert read_csv(tmp_path / f"{base}/flow/curve.csv")["epoch"].max() >= 1

    # the values on real recordings (seen: material's best layer 0.514 vs permutation mean 0.240, p 0.095;
    # class_name's 0.507 vs 0.144, p 0.015; round trips ~3e-6)
    base = tmp_path / base
    factors = ["material", "class_name"]
    split, folds = check_groups(base, clips)
    assert split.drop_duplicates("group")["split"].value_counts().to_dict() == {"test": 10, "train": 5, "val": 5}
    summary = check_decoding(base, clips, folds, factors)
    best = best_rows(summary)
    assert (best["mean_accuracy"] >= best["null_mean"] + 0.15).all()
    assert best.loc["class_name", "p_permutation"] <= 0.05 and best.loc["class_name", "mean_accuracy"] > best.loc[
        "class_name", "null_p95"]
    # material's best layer is not significant on its own (p about 0.1): 4 materials over 10 decoded recordings
    check_transfer(base, clips, split, factors)
    # Not asserted: the manipulation check's own dimension beating the residual ones. With one training
    # recording per class the flow does not generalise to the test recordings (seen: own 0.15 and 0.14, residual
    # 0.48 and 0.54; also with 100 or 300 epochs, or two training recordings per class); the unit tests assert
    # it on a planted latent.
    check_manipulation_check(base, clips, split, factors, components=8)
