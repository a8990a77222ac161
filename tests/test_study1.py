"""Study 1 (latent disentanglement, Dick et al.) end to end: the session's tiny run and a folder of real
recordings."""

import json

import h5py
import pytest

from audioprobe.datasets.manifest import read_manifest
from audioprobe.io.atomic import read_csv
from tests import snakemake_cli
from tests.conftest import shared_path

pytestmark = pytest.mark.slow


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
