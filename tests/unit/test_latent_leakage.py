"""Study 1: nothing a model is tested on may have shaped it (issue 10, points 4 and 5).

The steps run on small synthetic layer files exactly as the workflow runs them. Then the test clips'
activations and labels are replaced by other values and everything is run again: the flow's projection,
every fold's projection and decoder, the permutation null, the best-layer choice and the flow's early
stopping must come out the same, byte for byte where they are arrays.
"""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.io.store import write_arrays
from audioprobe.latent import steps
from audioprobe.latent.projection import Projection

FACTORS = ["material", "action"]
MATERIALS, ACTIONS, TAKES, CLIPS = ("wood", "metal", "glass"), ("tap", "rub"), 4, 5


def dataset():
    """Clips of 3 materials x 2 actions x 4 recordings x 5 clips, with a 2 / 1 / 1 split per combination."""
    rows = []
    for m, material in enumerate(MATERIALS):
        for a, action in enumerate(ACTIONS):
            for take in range(TAKES):
                for clip in range(CLIPS):
                    rows.append({"clip_id": f"{material}-{action}-{take}-{clip}",
                                 "path": f"{material}{action}{take}.wav",
                                 "offset": 0.48 * clip, "duration": 0.975, "sample_rate": 16000, "channels": 1,
                                 "group": f"{material}-{action}-{take}", "label_material": material,
                                 "label_action": action, "m": m, "a": a,
                                 "split": ("train", "train", "val", "test")[(take + m + a) % TAKES]})
    return pd.DataFrame(rows)


def layer_values(clips, width, seed):
    rng = np.random.default_rng(seed)
    centres_m, centres_a = rng.normal(0, 2, (3, width)), rng.normal(0, 2, (2, width))
    per_group = {g: rng.normal(0, 1, width) for g in clips["group"].unique()}
    return (centres_m[clips["m"]] + centres_a[clips["a"]] + np.stack([per_group[g] for g in clips["group"]])
            + rng.normal(0, 0.5, (len(clips), width))).astype(np.float32)


# YAMNet's layer13 and layer14 for 0.975 s clips: a layer file records the model, layer and clip length it was
# made with, and readers check its shape against them
SHAPE, WIDTH = (1, 3, 2, 1024), 6144
LAYER_OF = {"early": "layer13", "late": "layer14", "layer": "layer14"}


def write_inputs(folder, clips, layers, labels):
    folder.mkdir(parents=True, exist_ok=True)
    manifest = clips.drop(columns=["m", "a", "split"]).assign(label_material=labels["material"],
                                                              label_action=labels["action"])
    write_csv(folder / "manifest.csv", manifest)
    write_csv(folder / "split.csv", clips[["clip_id", "group", "split"]])
    for name, values in layers.items():
        write_arrays(folder / f"{name}.h5", {"activations": values.reshape(len(values), *SHAPE)},
                     clip_ids=list(clips["clip_id"]), labels=labels,
                     attrs={"layer": LAYER_OF[name], "axes": "patch,time,freq,channel",
                            "config": {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}})


def run_study1(folder, clips, layers, labels):
    """Split (given) -> folds -> the flow's projection and the per-fold projections -> decoding -> flow."""
    write_inputs(folder, clips, layers, labels)
    decode = {"k": 3, "metric": "euclidean", "folds": 4, "permutations": 50, "seed": 0}
    steps.make_folds(folder / "manifest.csv", folder / "split.csv", folder / "cv_folds.csv", FACTORS, decode)
    for name in layers:
        steps.project_layer(folder / f"{name}.h5", folder / "split.csv", folder / f"projection_{name}.h5",
                            components=6, seed=0)
        steps.project_folds(folder / f"{name}.h5", folder / "cv_folds.csv", folder / f"folds_{name}.h5",
                            components=6, seed=0)
    outputs = SimpleNamespace(**{name: folder / f"decoding_{name}.csv" for name in ("folds", "null", "summary",
                                                                                      "tests")},
                              figure=folder / "decoding.png")
    steps.decode_all_layers({name: folder / f"folds_{name}.h5" for name in layers}, folder / "cv_folds.csv",
                            FACTORS, decode, outputs)
    best = steps.best_layer(outputs.summary)
    flow = SimpleNamespace(checkpoint=folder / "flow.pt", curve=folder / "curve.csv",
                           curve_figure=folder / "curve.png", latents=folder / "latents.h5",
                           invertibility=folder / "invertibility.json")
    steps.train_flow_step(folder / f"projection_{best}.h5", folder / "split.csv", flow, layer=best, factors=FACTORS,
                          settings=FLOW, threads=1)
    return best


FLOW = {"stages": 1, "hidden": 8, "householder": 2, "sigma": 0.9, "epochs": 12, "batch_size": 16,
        "learning_rate": 0.005, "patience": 3, "pairing": "balanced", "seed": 0}


def arrays(path, *names):
    import h5py

    with h5py.File(path, "r") as file:
        return {name: file[name][()] for name in names}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    clips = dataset()
    layers = {"early": layer_values(clips, WIDTH, 1), "late": layer_values(clips, WIDTH, 2) * 3}
    labels = {"material": list(clips["label_material"]), "action": list(clips["label_action"])}
    test = (clips["split"] == "test").to_numpy()
    rng = np.random.default_rng(9)
    changed = {name: np.where(test[:, None], rng.normal(50, 9, values.shape), values).astype(np.float32)
               for name, values in layers.items()}
    shuffled = {f: list(np.where(test, rng.permutation(np.asarray(v)), np.asarray(v))) for f, v in labels.items()}
    first, second = tmp_path_factory.mktemp("original"), tmp_path_factory.mktemp("changed_test_clips")
    return (clips, test, first, run_study1(first, clips, layers, labels), second,
            run_study1(second, clips, changed, shuffled))


def test_test_clips_are_in_no_fold_and_shape_no_projection(two_runs):
    clips, test, first, _, second, _ = two_runs
    folds = read_csv(first / "cv_folds.csv")
    assert set(folds["clip_id"]) == set(clips.loc[~test, "clip_id"])
    assert folds.groupby("group")["fold"].nunique().max() == 1
    pd.testing.assert_frame_equal(folds, read_csv(second / "cv_folds.csv"))
    for name in ("early", "late"):
        a, b = Projection.load(first / f"projection_{name}.h5"), Projection.load(second / f"projection_{name}.h5")
        for field in ("mean_in", "scale_in", "components", "mean_out", "scale_out"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        fold_a, fold_b = (arrays(folder / f"folds_{name}.h5", "projected", "explained_variance_ratio")
                          for folder in (first, second))
        np.testing.assert_array_equal(fold_a["projected"], fold_b["projected"])
        np.testing.assert_array_equal(fold_a["explained_variance_ratio"], fold_b["explained_variance_ratio"])
        # the flow's projection does see the new test values when it projects them: the run did change
        z_a = arrays(first / f"projection_{name}.h5", "projected")["projected"]
        z_b = arrays(second / f"projection_{name}.h5", "projected")["projected"]
        assert not np.allclose(z_a[test], z_b[test]) and np.array_equal(z_a[~test], z_b[~test])


def test_the_streamed_projections_ignore_the_test_clips_too(tmp_path):
    """The route for layers too large for memory (latent.projection_memory_mb) reads the test clips' rows with
    the others (project_layer) but gives them weight exactly zero: replacing them changes no fitted array,
    no fold's coordinates and no training or validation clip's coordinates, bit for bit."""
    clips = dataset()
    test = (clips["split"] == "test").to_numpy()
    values = layer_values(clips, WIDTH, 4)
    changed = np.where(test[:, None], np.random.default_rng(5).normal(50, 9, values.shape), values)
    labels = {"material": list(clips["label_material"]), "action": list(clips["label_action"])}
    decode = {"k": 3, "metric": "euclidean", "folds": 4, "permutations": 50, "seed": 0}
    runs = []
    for name, layer in (("original", values), ("changed", changed)):
        folder = tmp_path / name
        write_inputs(folder, clips, {"layer": layer.astype(np.float32)}, labels)
        steps.make_folds(folder / "manifest.csv", folder / "split.csv", folder / "cv_folds.csv", FACTORS, decode)
        steps.project_layer(folder / "layer.h5", folder / "split.csv", folder / "projection.h5", components=6,
                            seed=0, chunk=16, route="streamed")
        steps.project_folds(folder / "layer.h5", folder / "cv_folds.csv", folder / "folds.h5", components=6,
                            seed=0, chunk=16, route="streamed")
        runs.append(folder)
    first, second = runs
    a, b = Projection.load(first / "projection.h5"), Projection.load(second / "projection.h5")
    for field in ("mean_in", "scale_in", "components", "explained_variance_ratio", "mean_out", "scale_out"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    z_a, z_b = (arrays(folder / "projection.h5", "projected")["projected"] for folder in runs)
    np.testing.assert_array_equal(z_a[~test], z_b[~test])
    fold_a, fold_b = (arrays(folder / "folds.h5", "projected", "explained_variance_ratio") for folder in runs)
    np.testing.assert_array_equal(fold_a["projected"], fold_b["projected"])
    np.testing.assert_array_equal(fold_a["explained_variance_ratio"], fold_b["explained_variance_ratio"])


def test_decoders_null_and_best_layer_ignore_the_test_clips(two_runs):
    _, _, first, best_first, second, best_second = two_runs
    for name in ("folds", "null", "summary", "tests"):
        pd.testing.assert_frame_equal(read_csv(first / f"decoding_{name}.csv"),
                                      read_csv(second / f"decoding_{name}.csv"))
    assert best_first == best_second
    summary = read_csv(first / "decoding_summary.csv")
    assert summary["decoded_on"].str.contains("test split is never decoded").all()
    assert (summary["n_folds"] == 4).all() and summary["permutations"].eq(50).all()
    # the null's unit and reach are in the summary; the layer tests carry their caveat
    assert (summary["null_unit"] == "recording").all() and (summary["null_relabelings_log10"] > 2).all()
    assert summary["null_min_p"].to_numpy() == pytest.approx(1 / 51, rel=1e-5)
    from audioprobe.io.atomic import read_csv_config

    caveat = read_csv_config(first / "decoding_tests.csv")["caveat"]
    assert "share training clips" in caveat and "chosen on the same folds" in caveat


def test_the_flow_early_stops_on_validation_clips_only(two_runs):
    clips, test, first, _, second, _ = two_runs
    curve_a, curve_b = read_csv(first / "curve.csv"), read_csv(second / "curve.csv")
    pd.testing.assert_frame_equal(curve_a, curve_b)
    assert curve_a["val_loss"].notna().all() and curve_a["kept"].sum() == 1
    assert curve_a["early_stopping"].iloc[0].startswith("on the validation split (30 clips")
    latents_a, latents_b = (arrays(folder / "latents.h5", "latents")["latents"] for folder in (first, second))
    np.testing.assert_array_equal(latents_a[~test], latents_b[~test])


def projected_flow_inputs(folder, clips):
    """Write a layer and split for ``clips``, project it, and name the flow step's outputs in ``folder``."""
    values = layer_values(clips, WIDTH, 3)
    labels = {"material": list(clips["label_material"]), "action": list(clips["label_action"])}
    write_inputs(folder, clips, {"layer": values}, labels)
    steps.project_layer(folder / "layer.h5", folder / "split.csv", folder / "projection.h5", components=6, seed=0)
    return SimpleNamespace(checkpoint=folder / "flow.pt", curve=folder / "curve.csv",
                           curve_figure=folder / "curve.png", latents=folder / "latents.h5",
                           invertibility=folder / "invertibility.json")


def test_without_a_validation_split_the_flow_trains_every_epoch_and_says_so(tmp_path):
    clips = dataset()
    clips["split"] = clips["split"].replace({"val": "train"})
    outputs = projected_flow_inputs(tmp_path, clips)
    steps.train_flow_step(tmp_path / "projection.h5", tmp_path / "split.csv", outputs, layer="layer",
                          factors=FACTORS, settings={**FLOW, "patience": 1}, threads=1)
    curve = read_csv(tmp_path / "curve.csv")
    assert list(curve["epoch"]) == list(range(1, 13))  # patience 1 would have stopped a validated run early
    assert curve["val_loss"].isna().all() and list(curve["kept"]) == [False] * 11 + [True]
    assert curve["early_stopping"].iloc[0].startswith("off: the validation split is empty")


def test_a_validation_split_missing_some_combinations_is_named(tmp_path, caplog):
    clips = dataset()
    lacking = (clips["label_material"] == "glass") & (clips["label_action"] == "rub") & (clips["split"] == "val")
    clips.loc[lacking, "split"] = "train"
    outputs = projected_flow_inputs(tmp_path, clips)
    with caplog.at_level("WARNING"):
        steps.train_flow_step(tmp_path / "projection.h5", tmp_path / "split.csv", outputs, layer="layer",
                              factors=FACTORS, settings={**FLOW, "epochs": 2}, threads=1)
    assert any("no recording of glass x rub" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    note = read_csv(tmp_path / "curve.csv")["early_stopping"].iloc[0]
    assert note.startswith("on the validation split (25 clips") and "1 label combination(s) (glass x rub)" in note
