"""Study 1's glue, with planted answers: the steps that read files, call the analysis and write files.

Each test builds small synthetic files where the right answer is known (a factor on a known layer or latent
dimension, recordings that share an offset as overlapping clips of one sound do) and checks the step's output
against it, so that wiring the wrong labels, the wrong groups, the wrong dimension or the wrong rows fails.
"""

from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import KNeighborsClassifier

from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.io.store import write_arrays
from audioprobe.latent import decode, steps
from audioprobe.latent.projection import Projection, fold_projections

FACTORS = ["material", "action"]
MATERIALS, ACTIONS = ("wood", "metal", "glass"), ("tap", "rub")
DECODE = {"k": 3, "metric": "euclidean", "folds": 4, "permutations": 100, "seed": 0}
WIDTH = 24  # YAMNet's layer9 pooled over patch and channel keeps time x freq = 6 x 4 values


def clips_table(recordings=4, clips=5, split=None):
    """Clips of 3 materials x 2 actions x ``recordings`` recordings x ``clips`` clips; ``split(take)`` gives a
    recording's split (all train by default)."""
    rows = []
    for m, material in enumerate(MATERIALS):
        for a, action in enumerate(ACTIONS):
            for take in range(recordings):
                group = f"{material}-{action}-{take}"
                for clip in range(clips):
                    rows.append({"clip_id": f"{group}@{clip}", "group": group, "material": material,
                                 "action": action, "m": m, "a": a,
                                 "split": split(take) if split else "train"})
    return pd.DataFrame(rows)


def labels_of(clips) -> dict[str, list[str]]:
    return {factor: list(clips[factor]) for factor in FACTORS}


def write_layer(path, values, clips):
    """A pooled layer file as the workflow writes it (it records the model, layer and clip length)."""
    attrs = {"config": {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}, "layer": "layer9",
             "axes": "patch,time,freq,channel", "model": "yamnet", "pooled_axes": "patch,channel",
             "pool_stat": "mean", "kept_axes": "time,freq"}
    write_arrays(path, {"activations": np.asarray(values, np.float32)}, clip_ids=list(clips["clip_id"]),
                 labels=labels_of(clips), attrs=attrs)


def offsets(clips, rng, scale, width):
    """One random vector per recording, repeated over its clips: what makes clips of a recording neighbours."""
    per_group = {g: rng.normal(0, scale, width) for g in clips["group"].unique()}
    return np.stack([per_group[g] for g in clips["group"]])


# --- groups_of ------------------------------------------------------------------------------------------------

def test_groups_of_gives_each_clip_its_recording_in_the_order_asked(tmp_path):
    clips = clips_table(recordings=2, clips=3)
    write_csv(tmp_path / "split.csv", clips[["clip_id", "group", "split"]])
    asked = list(clips["clip_id"].sample(frac=1, random_state=0))[:20]
    groups = steps.groups_of(tmp_path / "split.csv", asked)
    expected = [clip.split("@")[0] for clip in asked]
    assert list(groups) == expected  # the recording, not the clip id, and in the order of ``asked``
    assert len(set(groups)) < len(groups)  # clips of one recording share it
    with pytest.raises(KeyError):
        steps.groups_of(tmp_path / "split.csv", ["no-such-clip"])


# --- decode_all_layers ---------------------------------------------------------------------------------------

def planted_layers(clips, rng):
    """Three layers over the clips: material alone moves the first, action alone the second, neither the
    third; every layer has a strong per-recording offset (the leak a clip-level split would exploit)."""
    width = 6
    material = rng.normal(0, 4, (3, width))[clips["m"]]
    action = rng.normal(0, 4, (2, width))[clips["a"]]

    def layer(signal):
        return signal + offsets(clips, rng, 1.0, width) + rng.normal(0, 0.3, (len(clips), width))

    return {"material_layer": layer(material), "action_layer": layer(action), "no_factor": layer(0 * material)}


@pytest.fixture(scope="module")
def decoded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("decode")
    rng = np.random.default_rng(0)
    clips = clips_table(recordings=4, clips=5)
    fold_list = decode.group_folds(clips["group"].to_numpy(), (clips["material"] + clips["action"]).to_numpy(),
                                   4, seed=0)
    fold = np.empty(len(clips), int)
    for number, (_, test) in enumerate(fold_list):
        fold[test] = number
    write_csv(folder / "cv_folds.csv", clips[["clip_id", "group"]].assign(fold=fold))
    layers = planted_layers(clips, rng)
    paths = {}
    for name, values in layers.items():  # one matrix per fold, as project_folds writes them (here: the same)
        paths[name] = folder / f"folds_{name}.h5"
        per_fold = np.stack([values + 0.01 * f for f in range(4)]).astype(np.float32)
        write_arrays(paths[name], {"projected": per_fold, "fold": fold}, clip_ids=list(clips["clip_id"]),
                     labels=labels_of(clips))
    outputs = SimpleNamespace(**{name: folder / f"{name}.csv" for name in ("folds", "null", "summary", "tests")},
                              figure=folder / "decoding.png")
    steps.decode_all_layers(paths, folder / "cv_folds.csv", FACTORS, DECODE, outputs)
    return SimpleNamespace(clips=clips, fold=fold, layers=layers, paths=paths, outputs=outputs, folder=folder,
                           **{name: read_csv(getattr(outputs, name)) for name in ("folds", "null", "summary",
                                                                                   "tests")})


def test_decoding_finds_each_factor_on_its_own_layer_and_chance_elsewhere(decoded):
    summary = decoded.summary.set_index(["factor", "layer"])
    for factor, own in (("material", "material_layer"), ("action", "action_layer")):
        part = summary.loc[factor]
        assert part["mean_accuracy"].idxmax() == own
        assert part.loc[own, "mean_accuracy"] > 0.95 > part.loc[own, "null_p95"] + 0.2
        assert part.loc[own, "p_permutation"] == pytest.approx(1 / 101)  # no permutation reaches it
        for other in part.index.drop(own):  # the other factor's layer and the empty one sit at chance
            assert part.loc[other, "p_permutation"] > 0.05
            assert abs(part.loc[other, "mean_accuracy"] - part.loc[other, "null_mean"]) < 0.2
        assert decoded.tests.loc[decoded.tests["factor"] == factor, "best_layer"].eq(own).all()
    assert decoded.outputs.figure.read_bytes()[:4] == b"\x89PNG"


def test_decoding_scores_each_folds_own_matrix_with_the_labels_of_its_factor(decoded):
    """folds.csv against scikit-learn's KNN, fitted here on each fold's matrix with the labels read from the
    clips table (not from the files): a wrong factor, layer, fold or k would give other accuracies."""
    for (factor, layer), part in decoded.folds.groupby(["factor", "layer"]):
        with h5py.File(decoded.paths[layer], "r") as file:
            projected = file["projected"][()]
        labels = decoded.clips[factor].to_numpy()
        expected = []
        for f in range(4):
            train, test = decoded.fold != f, decoded.fold == f
            knn = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(projected[f][train], labels[train])
            expected.append(np.mean(knn.predict(projected[f][test]) == labels[test]))
        np.testing.assert_allclose(part.sort_values("fold")["accuracy"], expected, atol=1e-6)  # csv keeps 6 digits
        assert part["n_test"].sum() == len(labels)


def test_the_null_shuffles_whole_recordings_within_the_folds(decoded):
    """The null's unit is the recording (from cv_folds.csv's groups), not the clip: its reach is the number of
    ways to relabel each fold's recordings, counted here from the clips table."""
    from math import factorial, log10

    per_recording = decoded.clips.assign(fold=decoded.fold).drop_duplicates("group")
    for factor in FACTORS:
        reach = 0.0
        for _, fold in per_recording.groupby("fold"):
            counts = fold[factor].value_counts()
            reach += log10(factorial(len(fold)) / np.prod([factorial(c) for c in counts]))
        row = decoded.summary[decoded.summary["factor"] == factor].iloc[0]
        assert row["null_unit"] == "recording"
        assert row["null_relabelings_log10"] == pytest.approx(reach, abs=1e-3)
    # and the permutations themselves are those of whole recordings (same seed, same folds, recording groups)
    features = {layer: np.stack([values + 0.01 * f for f in range(4)]).astype(np.float32)
                for layer, values in decoded.layers.items()}
    expected = decode.null_distribution(features, {f: decoded.clips[f].to_numpy() for f in FACTORS},
                                        decoded.clips["group"].to_numpy(), permutations=100, folds=decoded.fold,
                                        k=3, metric="euclidean", seed=0)
    np.testing.assert_allclose(decoded.null["accuracy"], expected["accuracy"], atol=1e-6)
    assert list(decoded.null["factor"]) == list(expected["factor"])


def test_decoding_refuses_projections_of_other_clips_than_the_folds(decoded, tmp_path):
    folds = read_csv(decoded.folder / "cv_folds.csv")
    write_csv(tmp_path / "cv_folds.csv", folds.iloc[::-1].reset_index(drop=True))
    outputs = SimpleNamespace(**{name: tmp_path / f"{name}.csv" for name in ("folds", "null", "summary", "tests")},
                              figure=tmp_path / "decoding.png")
    with pytest.raises(ValueError, match="rerun project_folds"):
        steps.decode_all_layers(decoded.paths, tmp_path / "cv_folds.csv", FACTORS, DECODE, outputs)


# --- Figure 1 and the manipulation check ---------------------------------------------------------------------

def test_the_manipulation_check_finds_each_factor_on_its_own_dimension_of_the_test_clips(tmp_path, monkeypatch):
    """Latents with material on dimension 6, action on dimension 7 and six residual dimensions that hold only
    each recording's identity. Decoded over test recordings, each factor's own dimension wins and the residual
    dimensions sit at chance; clips of a recording split over folds would let them "decode" the recording."""
    from audioprobe import plots

    rng = np.random.default_rng(1)
    clips = clips_table(recordings=6, clips=5, split=lambda take: "test" if take >= 2 else "train")
    n = len(clips)
    latents = np.empty((n, 8), np.float32)
    latents[:, :6] = offsets(clips, rng, 3.0, 6) + rng.normal(0, 0.2, (n, 6))
    latents[:, 6] = np.array([-4.0, 0.0, 4.0])[clips["m"]] + rng.normal(0, 0.4, n)
    latents[:, 7] = np.array([-3.0, 3.0])[clips["a"]] + rng.normal(0, 0.4, n)
    train = (clips["split"] == "train").to_numpy()
    latents[train] = rng.normal(0, 1, (train.sum(), 8))  # the flow's training clips carry no answer
    record = {"layer": "layer9", "factors": FACTORS, "factor_dims": [6, 7], "dim": 8, "n_factors": 2}
    write_arrays(tmp_path / "latents.h5", {"latents": latents}, clip_ids=list(clips["clip_id"]),
                 labels=labels_of(clips), attrs={"config": record, "layer": "layer9"})
    write_csv(tmp_path / "split.csv", clips[["clip_id", "group", "split"]])
    drawn = []
    draw = plots.plot_factor_scatter
    monkeypatch.setattr(plots, "plot_factor_scatter", lambda *args, **kw: (drawn.append(args), draw(*args, **kw)))
    outputs = SimpleNamespace(figure=tmp_path / "figure1.png", check=tmp_path / "check.csv")
    steps.figure1_step(tmp_path / "latents.h5", tmp_path / "split.csv", outputs, factors=FACTORS, decode=DECODE)

    check = read_csv(outputs.check).set_index(["factor", "features"])
    test = ~train
    assert (check["clips"] == test.sum()).all() and (check["folds"] == 4).all()
    assert check["dimensions"].tolist() == [1, 1, 6] * 2
    for factor in FACTORS:
        own, other, residual = (check.loc[(factor, name)] for name in ("own dimension", "other factor's dimension",
                                                                        "residual dimensions"))
        assert own["mean_accuracy"] > 0.95 and own["mean_accuracy"] > own["null_p95"] + 0.2
        assert own["p_permutation"] < 0.05
        for chance in (other, residual):
            assert chance["mean_accuracy"] < own["mean_accuracy"] - 0.3
            assert chance["p_permutation"] > 0.05
    assert check.loc[("material", "own dimension"), "chance_uniform"] == pytest.approx(1 / 3)
    # Figure 1 plots the test clips' two factor dimensions, coloured by their own labels
    (points, labels, factors, path), = drawn
    np.testing.assert_array_equal(points, latents[test][:, [6, 7]])
    for factor in FACTORS:
        np.testing.assert_array_equal(labels[factor], clips.loc[test, factor].to_numpy())
    assert factors == FACTORS and path == outputs.figure and outputs.figure.read_bytes()[:4] == b"\x89PNG"


# --- chunked projections --------------------------------------------------------------------------------------

def chunk_inputs(folder, rng):
    clips = clips_table(recordings=3, clips=4, split=lambda take: ("train", "test", "train")[take])
    x = (rng.normal(0, 1, (len(clips), 5)) @ rng.normal(0, 2, (5, WIDTH)) + rng.normal(0, 0.1, (len(clips), WIDTH))
         + 3).astype(np.float32)
    write_layer(folder / "layer.h5", x, clips)
    write_csv(folder / "split.csv", clips[["clip_id", "group", "split"]])
    return clips, x


@pytest.mark.parametrize("chunk", [1, 5, 7])
def test_the_chunked_projection_equals_the_unchunked_fit(tmp_path, chunk):
    """72 clips read in chunks of 1, 5 or 7 (the last one partial) give the projection of the whole matrix,
    fitted on the training rows only."""
    clips, x = chunk_inputs(tmp_path, np.random.default_rng(2))
    train = (clips["split"] == "train").to_numpy()
    steps.project_layer(tmp_path / "layer.h5", tmp_path / "split.csv", tmp_path / "chunked.h5", components=4,
                        seed=0, chunk=chunk)
    chunked = Projection.load(tmp_path / "chunked.h5")
    whole = Projection.fit(x[train], 4, seed=0)
    for field in ("mean_in", "scale_in", "components", "mean_out", "scale_out"):
        np.testing.assert_allclose(getattr(chunked, field), getattr(whole, field), rtol=1e-5, atol=1e-6)
    z, ids, _ = steps.projected(tmp_path / "chunked.h5")
    assert ids == list(clips["clip_id"]) and z.shape == (len(clips), 4)
    np.testing.assert_allclose(z, whole.transform(x), atol=1e-4)


@pytest.mark.parametrize("chunk", [1, 5, 7])
def test_the_chunked_fold_projections_equal_the_unchunked_fits(tmp_path, chunk):
    """cv_folds.csv lists the clips in another order than the layer file: each clip's row must still be its own,
    and each fold's projection the fit on the other folds' clips."""
    clips, x = chunk_inputs(tmp_path, np.random.default_rng(3))
    outside = np.flatnonzero((clips["split"] != "test").to_numpy())
    order = np.random.default_rng(4).permutation(outside)
    fold_of = {g: i % 3 for i, g in enumerate(sorted(clips["group"].unique()))}
    folds = clips.iloc[order][["clip_id", "group"]].assign(fold=lambda t: t["group"].map(fold_of))
    write_csv(tmp_path / "cv_folds.csv", folds.reset_index(drop=True))
    steps.project_folds(tmp_path / "layer.h5", tmp_path / "cv_folds.csv", tmp_path / "folds.h5", components=4,
                        seed=0, chunk=chunk)
    z, ids, labels = steps.projected(tmp_path / "folds.h5")
    assert ids == list(folds["clip_id"]) and labels["material"] == list(clips["material"].iloc[order])
    expected, _ = fold_projections(x[order], folds["fold"].to_numpy(), 4, seed=0)
    np.testing.assert_allclose(z, expected, atol=1e-4)


# --- transfer edit and continuation --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edited(tmp_path_factory):
    """A layer, its projection (fitted on the training clips), a flow with random weights over 6 dimensions
    (material on dimension 4, action on 5), the latents and the transfer edit of the test clips."""
    torch = pytest.importorskip("torch")
    from audioprobe.latent import flow as flows

    folder = tmp_path_factory.mktemp("transfer")
    rng = np.random.default_rng(5)
    clips = clips_table(recordings=5, clips=4, split=lambda take: "train" if take < 2 else "test")
    n = len(clips)
    x = (np.eye(WIDTH)[clips["m"]] * 4 + np.eye(WIDTH)[3 + clips["a"]] * 3 + offsets(clips, rng, 0.5, WIDTH)
         + rng.normal(0, 0.3, (n, WIDTH))).astype(np.float32)
    write_layer(folder / "layer.h5", x, clips)
    write_csv(folder / "split.csv", clips[["clip_id", "group", "split"]])
    steps.project_layer(folder / "layer.h5", folder / "split.csv", folder / "projection.h5", components=6, seed=0)
    z, _, _ = steps.projected(folder / "projection.h5")
    model = flows.build_flow(6, stages=1, hidden=8, householder=2, seed=0)
    flows.initialize_actnorm(model, z)
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    record = {"layer": "layer9", "factors": FACTORS, "dim": 6, "n_factors": 2, "factor_dims": [4, 5], "stages": 1,
              "hidden": 8, "householder": 2, "seed": 0}
    flows.save_flow(folder / "flow.pt", model, record)
    latents = flows.forward(model, z)
    write_arrays(folder / "latents.h5", {"latents": latents}, clip_ids=list(clips["clip_id"]),
                 labels=labels_of(clips), attrs={"config": record, "layer": "layer9"})
    inputs = SimpleNamespace(checkpoint=folder / "flow.pt", latents=folder / "latents.h5",
                             projection=folder / "projection.h5", activations=folder / "layer.h5",
                             split=folder / "split.csv")
    settings = {"clips": "held_out", "seed": 0, "typical_quantile": 0.5, "max_clips": 100}
    steps.transfer_edit_step(inputs, folder / "edited.h5", factors=FACTORS, settings=settings)
    return SimpleNamespace(folder=folder, clips=clips.set_index("clip_id"), x=x, latents=latents, model=model,
                           projection=Projection.load(folder / "projection.h5"), flows=flows,
                           index={c: i for i, c in enumerate(clips["clip_id"])}, inputs=inputs, settings=settings)


def read_group(path, factor):
    with h5py.File(path, "r") as file:
        group = file[factor]
        out = {name: group[name][()] for name in group}
        for name in group:
            if name.startswith(("clip_", "group_")):
                out[name] = group[name].asstr()[()]
        return out, dict(group.attrs)


def test_the_transfer_edits_its_own_factors_dimension_and_the_round_trip_is_exact(edited):
    """Mapping each edited activation back through the projection and the flow gives M's latents with only the
    factor's dimension replaced by P's (or Q's); the unedited M comes back as M's own activation."""
    for factor, dim in zip(FACTORS, (4, 5)):
        group, attrs = read_group(edited.folder / "edited.h5", factor)
        rows = {c: np.array([edited.index[i] for i in group[f"clip_{c}"]]) for c in "mpq"}
        assert attrs["round_trip_error"] < 1e-3 and len(rows["m"]) >= 4
        np.testing.assert_allclose(group["M"], edited.x[rows["m"]], atol=1e-3)
        np.testing.assert_allclose(group["P"], edited.x[rows["p"]], atol=1e-3)
        np.testing.assert_allclose(group["Q"], edited.x[rows["q"]], atol=1e-3)
        for name, partner in (("M->P", "p"), ("M->Q", "q")):
            back = edited.flows.forward(edited.model, edited.projection.transform(group[name]))
            want = edited.latents[rows["m"]].copy()
            want[:, dim] = edited.latents[rows[partner], dim]
            np.testing.assert_allclose(back, want, atol=2e-3)
            assert np.abs(back[:, dim] - edited.latents[rows["m"], dim]).max() > 0.1  # the edit did move it
            # ... and it moved M's activation only inside the projection's kept subspace: the rest is M's own
            change = (group[name] - edited.x[rows["m"]]) / edited.projection.scale_in
            components = edited.projection.components
            outside = change - (change @ components.T) @ components
            assert np.abs(outside).max() < 1e-3 * np.abs(change).max()


def whole_layer_partners(data, partners, chunk=256):
    """The transfer's previous reading: the whole layer (``layer_matrix``), then M's, P's and Q's rows of it."""
    whole = data[()].reshape(len(data), -1)
    return {column: whole[partners[column].to_numpy()] for column in ("m", "p", "q")}


def file_contents(path):
    with h5py.File(path, "r") as file:
        out = {"": dict(file.attrs)}
        file.visititems(lambda name, item: out.__setitem__(name, item[()] if isinstance(item, h5py.Dataset)
                                                           else dict(item.attrs)))
        return out


def test_the_transfer_reading_only_its_rows_writes_what_reading_the_whole_layer_wrote(edited, monkeypatch):
    monkeypatch.setattr(steps, "partner_activations", whole_layer_partners)
    steps.transfer_edit_step(edited.inputs, edited.folder / "edited_whole.h5", factors=FACTORS,
                             settings=edited.settings)
    rows_only, whole = (file_contents(edited.folder / name) for name in ("edited.h5", "edited_whole.h5"))
    assert rows_only.keys() == whole.keys()
    for name, value in whole.items():
        if isinstance(value, dict):
            assert rows_only[name] == value, name
        else:
            np.testing.assert_array_equal(rows_only[name], value, err_msg=name)


def test_the_transfer_reads_only_m_p_and_q_rows_once_each_in_increasing_order(edited, tmp_path, monkeypatch):
    """Of the layer only the rows of M, P and Q (a few test clips) are read: never the whole layer, never a
    training clip."""
    reads, whole_reads = [], []
    read_direct, getitem = h5py.Dataset.read_direct, h5py.Dataset.__getitem__

    def counting_read_direct(self, out, source_sel=None, dest_sel=None):
        if self.name == "/activations":
            reads.append(np.arange(source_sel.start, source_sel.stop))
        return read_direct(self, out, source_sel, dest_sel)

    def counting_getitem(self, key, *args, **kwargs):
        if self.name == "/activations":
            whole_reads.append(key)
        return getitem(self, key, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "read_direct", counting_read_direct)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting_getitem)
    steps.transfer_edit_step(edited.inputs, tmp_path / "edited.h5", factors=FACTORS, settings=edited.settings)
    assert not whole_reads
    read = np.concatenate(reads)
    wanted = []
    for factor in FACTORS:
        group, _ = read_group(tmp_path / "edited.h5", factor)
        wanted.append(np.unique([edited.index[c] for column in "mpq" for c in group[f"clip_{column}"]]))
    np.testing.assert_array_equal(read, np.concatenate(wanted))  # per factor its own rows, once, increasing
    assert (edited.clips["split"].iloc[read] == "test").all()
    assert len(np.unique(read)) < len(edited.clips)


def test_the_transfer_takes_partners_of_the_right_classes_from_other_test_recordings(edited):
    clips = edited.clips
    for factor in FACTORS:
        other = next(f for f in FACTORS if f != factor)
        group, attrs = read_group(edited.folder / "edited.h5", factor)
        m, p, q = (clips.loc[group[f"clip_{c}"]] for c in "mpq")
        assert (m["split"] == "test").all() and (p["split"] == "test").all() and (q["split"] == "test").all()
        for c, table in zip("mpq", (m, p, q)):  # the recordings stored are the split's, not the clips' ids
            np.testing.assert_array_equal(group[f"group_{c}"], table["group"].to_numpy())
        assert (p["group"].to_numpy() != m["group"].to_numpy()).all()
        assert (q["group"].to_numpy() != m["group"].to_numpy()).all()
        import json

        np.testing.assert_array_equal(json.loads(attrs["class_m"]), m[factor].to_numpy())
        assert (p[factor].to_numpy() == m[factor].to_numpy()).all()
        assert (q[factor].to_numpy() != m[factor].to_numpy()).all()
        # with three test recordings per combination, P and Q always keep M's value of the other factor
        assert group["p_other_fixed"].all() and group["q_other_fixed"].all()
        assert (p[other].to_numpy() == m[other].to_numpy()).all() and (q[other].to_numpy() == m[other].to_numpy()).all()


def test_the_continuation_runs_every_condition_from_the_edited_layer(edited, tmp_path, monkeypatch):
    """The network (a stand-in) continues each of M, M->P, M->Q, P and Q from the layer the edit was made at;
    the recordings, clip ids and flags travel along for the statistics."""
    from audioprobe import models

    calls = []

    class Network:
        scores = "sigmoid"

        def forward_from(self, layer, values):
            calls.append(layer)
            flat = np.asarray(values).reshape(len(values), -1)
            return {"logits": (flat @ np.arange(flat.shape[1] * 3).reshape(-1, 3) / 100.0)[:, None, :]}

    monkeypatch.setattr(models, "load", lambda *args, **kw: Network())
    steps.transfer_continue_step(edited.folder / "edited.h5", tmp_path / "outputs.h5", model_name="yamnet",
                                 model_config={"kind": "yamnet"}, weights="unused", threads=1)
    assert set(calls) == {"layer9"} and len(calls) == 10
    with h5py.File(edited.folder / "edited.h5", "r") as source, h5py.File(tmp_path / "outputs.h5", "r") as out:
        assert out.attrs["layer"] == "layer9" and out.attrs["config"] == source.attrs["config"]
        for factor in FACTORS:
            for name in ("M", "M->P", "M->Q", "P", "Q"):
                np.testing.assert_allclose(out[factor][name][()],
                                           Network().forward_from("layer9", source[factor][name][()])["logits"])
            for name in ("clip_m", "clip_p", "clip_q", "group_m", "group_p", "group_q", "p_other_fixed"):
                np.testing.assert_array_equal(out[factor][name][()], source[factor][name][()])
            assert dict(out[factor].attrs).keys() == dict(source[factor].attrs).keys()
