"""Issue 11, points 10-11: reading a shared results folder never reads or writes outside it."""

import os
import re

import h5py
import numpy as np
import pandas as pd
import pytest

from audioprobe import activations
from audioprobe.io import atomic
from audioprobe.io.atomic import OutsideResultsError, check_results_links, links_leaving, write_csv
from audioprobe.io.store import LayerFile, LayerWriter, UnsafeHDF5Error, open_h5, write_arrays

YAMNET = {"kind": "yamnet", "numerics": "float"}
SHAPE = (1, 48, 32, 32)  # YAMNet layer1 for 0.975 s clips
LAYER14 = (1, 3, 2, 1024)  # YAMNet layer14 for 0.975 s clips
EXTRACTED = {"config": {"clip_seconds": 0.975, "model": YAMNET}, "layer": "layer14",
             "axes": "patch,time,freq,channel", "model": "yamnet"}  # what the extraction records
SECRET = b"TOP-SECRET-PASSWORD-0123456789ab"


def layer_file(path, *, data=None, clips=3, shape=SHAPE, layer_shape=None, clip_seconds=0.975, layer="layer1",
               store=None, ids=None):
    """A layer file as the extraction writes one (attributes, clip ids ``c0``, ``c1``... or ``ids``, labels),
    with /activations made by ``store(file, shape)`` when given (external storage, a virtual dataset...)."""
    if ids is not None:
        clips = len(ids)
    with h5py.File(path, "w") as file:
        if store is None:
            file.create_dataset("activations", data=data if data is not None else np.ones((clips, *shape), np.float32))
        else:
            store(file, (clips, *shape))
        file.create_dataset("clip_id", data=np.array(ids or [f"c{i}" for i in range(clips)], dtype=object),
                            dtype=h5py.string_dtype())
        file.create_group("labels").create_dataset("material", data=np.array(["wood"] * clips, dtype=object),
                                                   dtype=h5py.string_dtype())
        file.attrs["layer"] = layer
        file.attrs["axes"] = "patch,time,freq,channel"
        file.attrs["model"] = "yamnet"
        if clip_seconds is not None:  # as the extraction records its settings
            file.attrs["config"] = f'{{"clip_seconds":{clip_seconds},"model":{{"kind":"yamnet","numerics":"float"}}}}'
        file.attrs["layer_shape"] = np.asarray(layer_shape or shape, np.int64)
        file.attrs["complete"] = True
    return path


def secret_file(tmp_path, size):
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes((SECRET * (size // len(SECRET) + 1))[:size])
    return secret


def no_secret_anywhere(folder):
    """No file under ``folder`` but the layer file holds the secret, as bytes or as pooled float32 values."""
    as_floats = np.frombuffer(SECRET[:8], np.uint8).astype(np.float32).tobytes()
    for root, _, files in os.walk(folder):
        for name in files:
            content = open(os.path.join(root, name), "rb").read()
            assert SECRET[:12] not in content and as_floats not in content, f"{name} holds the secret"


# --- point 10: HDF5 files that read other files --------------------------------------------------------------

def test_external_storage_is_refused_before_pooling_reads_the_secret(tmp_path):
    clips, shape = 2, (1, 2, 2, 4)  # 16 uint8 values per clip
    secret = secret_file(tmp_path, clips * 16)

    def external(file, full_shape):
        file.create_dataset("activations", shape=full_shape, dtype="u1", external=[(str(secret), 0, clips * 16)])

    out = tmp_path / "out"
    out.mkdir()
    path = layer_file(out / "layer1.h5", clips=clips, shape=shape, store=external, clip_seconds=None)
    with h5py.File(path, "r") as plain:  # what a plain open gives: the secret's bytes as activations
        assert plain["activations"][()].tobytes() == secret.read_bytes()
    with pytest.raises(UnsafeHDF5Error, match=r"dataset /activations is stored in other files \(HDF5 external "
                                              rf"storage: {secret}\)") as raised:
        activations.pool(path, out / "pooled.h5", axes=["patch"])  # unprotected, it stores the bytes as floats
    assert str(path) in str(raised.value)
    with pytest.raises(UnsafeHDF5Error, match="/activations"):
        activations.summarise({"layer1": path})
    assert sorted(p.name for p in out.iterdir()) == ["layer1.h5"]  # no pooled file, no leftover
    os.unlink(path)
    no_secret_anywhere(out)


def test_a_virtual_dataset_is_refused_naming_it_and_its_source(tmp_path):
    source = tmp_path / "elsewhere.h5"
    with h5py.File(source, "w") as file:
        file["values"] = np.full((3, *SHAPE), 7.0, np.float32)

    def virtual(file, full_shape):
        layout = h5py.VirtualLayout(shape=full_shape, dtype="f4")
        layout[:] = h5py.VirtualSource(str(source), "values", shape=full_shape)
        file.create_virtual_dataset("activations", layout)

    path = layer_file(tmp_path / "layer1.h5", store=virtual)
    with h5py.File(path, "r") as plain:
        assert plain["activations"][0, 0, 0, 0, 0] == 7.0
    with pytest.raises(UnsafeHDF5Error, match=rf"dataset /activations is a virtual dataset \(its data comes from "
                                              rf"{source}\)"):
        activations.pool(path, tmp_path / "pooled.h5", axes=["patch"])
    assert not (tmp_path / "pooled.h5").exists()


def test_external_links_are_refused_wherever_they_are(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as file:
        file["material"] = np.array(["secret"] * 3, dtype=object)
    path = layer_file(tmp_path / "layer1.h5")
    with h5py.File(path, "a") as file:
        del file["labels/material"]
        file["labels/material"] = h5py.ExternalLink(str(other), "/material")
    with pytest.raises(UnsafeHDF5Error, match=rf"/labels/material is an external link to '/material' in the file "
                                              rf"'{other}'"):
        LayerFile(path)
    with pytest.raises(UnsafeHDF5Error, match="external link"):
        open_h5(path)
    with pytest.raises(UnsafeHDF5Error):
        activations.pool(path, tmp_path / "pooled.h5", axes=["patch"])
    assert not (tmp_path / "pooled.h5").exists()


def test_files_audioprobe_writes_open_and_soft_links_inside_the_file_are_fine(tmp_path):
    values = np.arange(2 * np.prod(LAYER14), dtype=np.float32).reshape(2, *LAYER14)
    writer = LayerWriter(tmp_path / "l.h5", 2, LAYER14, attrs=EXTRACTED)
    writer.write(values)
    writer.finish(["a", "b"], {"k": ["x", "y"]})
    with h5py.File(tmp_path / "l.h5", "a") as file:
        file["alias"] = h5py.SoftLink("/activations")
    with open_h5(tmp_path / "l.h5") as file:
        np.testing.assert_array_equal(file["alias"][()], values)
    with LayerFile(tmp_path / "l.h5") as layer:
        assert layer.clip_ids == ["a", "b"]


# --- point 10: shapes ------------------------------------------------------------------------------------------

def test_a_layer_file_of_the_models_shape_pools_and_its_pooled_file_checks_too(tmp_path):
    assert activations.model_layer_shape(YAMNET, "layer1", 0.975) == SHAPE
    data = np.random.default_rng(0).standard_normal((3, *SHAPE)).astype(np.float32)
    path = layer_file(tmp_path / "layer1.h5", data=data)
    activations.pool(path, tmp_path / "pooled.h5", axes=["patch", "time", "freq"], layer_shape=SHAPE)
    with LayerFile(tmp_path / "pooled.h5") as pooled:  # checked as "layer1 pooled over patch,time,freq": (32,)
        np.testing.assert_allclose(pooled.activations[()], data.mean(axis=(1, 2, 3)), rtol=1e-6)


def test_a_layer_file_whose_shape_is_not_the_models_is_refused(tmp_path):
    # consistent with its own layer_shape attribute, but YAMNet's layer1 has 32 channels, not 16
    wrong = layer_file(tmp_path / "layer1.h5", shape=(1, 48, 32, 16))
    with pytest.raises(ValueError, match=r"/activations has 1x48x32x16 values per clip, but what yamnet gives at "
                                         r"layer1 for 0.975 s clips is 1x48x32x32"):
        activations.pool(wrong, tmp_path / "pooled.h5", axes=["patch"])
    assert not (tmp_path / "pooled.h5").exists()


def test_a_layer_file_of_another_clip_length_is_refused_by_the_runs_shape(tmp_path):
    three_patches = activations.model_layer_shape(YAMNET, "layer1", 1.5)
    assert three_patches == (3, 48, 32, 32)
    other_run = layer_file(tmp_path / "layer1.h5", shape=three_patches, clip_seconds=1.5)
    with LayerFile(other_run):  # right for what it records
        pass
    with pytest.raises(ValueError, match=r"but the run's layer shape is 1x48x32x32"):
        activations.pool(other_run, tmp_path / "pooled.h5", axes=["patch"],
                         layer_shape=activations.model_layer_shape(YAMNET, "layer1", 0.975))
    assert not (tmp_path / "pooled.h5").exists()


def test_a_layer_shape_attribute_that_disagrees_with_the_data_is_refused(tmp_path):
    path = tmp_path / "l.h5"
    write_arrays(path, {"activations": np.zeros((3, 2, 5), np.float32)}, clip_ids=["a", "b", "c"],
                 attrs={"layer_shape": [2, 4]})
    with pytest.raises(ValueError, match=r"/activations has 2x5 values per clip, but its layer_shape attribute "
                                         r"is 2x4"):
        LayerFile(path)


@pytest.mark.parametrize("rows", [{"clip_id": 2}, {"labels/material": 4}])
def test_rows_that_do_not_match_the_clips_are_refused(tmp_path, rows):
    path = layer_file(tmp_path / "layer1.h5")
    (name, count), = rows.items()
    with h5py.File(path, "a") as file:
        del file[name]
        file.create_dataset(name, data=np.array(["x"] * count, dtype=object), dtype=h5py.string_dtype())
    with pytest.raises(ValueError, match=rf"/activations has 3 rows but /{name} has {count}"):
        LayerFile(path)
    with pytest.raises(ValueError, match=r"the run's clip count has 2 rows but /activations has 3"):
        LayerFile(layer_file(tmp_path / "ok.h5"), clips=2)


def test_summaries_refuse_layers_of_one_run_that_list_different_clips(tmp_path):
    first = layer_file(tmp_path / "layer1.h5")
    second = tmp_path / "layer14.h5"
    writer = LayerWriter(second, 4, LAYER14, attrs=EXTRACTED)
    writer.write(np.zeros((4, *LAYER14), np.float32))
    writer.finish(["c0", "c1", "c2", "c3"], {})
    with pytest.raises(ValueError, match=rf"{second} and {first} list different clips \(4 and 3 clips, the same up "
                                         r"to clip 2; clip 3 of the longer one is 'c3'\)"):
        activations.summarise({"layer1": first, "layer14": second})


def test_summaries_name_the_first_clip_where_only_the_order_differs(tmp_path):
    ids = [f"c{i}" for i in range(100)]
    first = layer_file(tmp_path / "layer1.h5", ids=ids)
    swapped = ids[:41] + [ids[42], ids[41]] + ids[43:]
    second = layer_file(tmp_path / "layer2.h5", ids=swapped, shape=(1, 48, 32, 64), layer="layer2")
    with pytest.raises(ValueError, match=rf"{second} and {first} list different clips \(clip 41 is 'c42' in the "
                                         r"first and 'c41' in the second\); .* same clips in the same order") as err:
        activations.summarise({"layer1": first, "layer2": second})
    assert "100 and 100" not in str(err.value)


# --- point 10: a file with /activations must record what made it -------------------------------------------------

MISSING_RECORDS = {
    "no config": (None, "config, config.model.kind, config.clip_seconds"),
    "config without the model": ('{"clip_seconds":0.975}', "config.model.kind"),
    "model without its kind": ('{"clip_seconds":0.975,"model":{"numerics":"float"}}', "config.model.kind"),
    "no clip length": ('{"model":{"kind":"yamnet"}}', "config.clip_seconds"),
    "config that is not a record": ("yamnet, 0.975 s", "config, config.model.kind, config.clip_seconds"),
    "no layer": ("drop layer", "layer"),
}


def unrecorded_layer_file(path, case):
    """A layer file of the right shape for YAMNet's layer1 (and its layer_shape attribute) that lacks one of
    the records the shape check needs."""
    config, _ = MISSING_RECORDS[case]
    layer_file(path)
    with h5py.File(path, "a") as file:
        if config == "drop layer":
            del file.attrs["layer"]
        elif config is None:
            del file.attrs["config"]
        else:
            file.attrs["config"] = config
    return path


@pytest.mark.parametrize("case", MISSING_RECORDS)
def test_a_layer_file_without_the_records_of_its_extraction_is_refused_by_every_reader(tmp_path, case):
    from audioprobe.dissect.probing import neurons_step
    from audioprobe.io.store import NotExtractedError
    from audioprobe.latent import steps as latent_steps

    path = unrecorded_layer_file(tmp_path / "layer1.h5", case)
    split = tmp_path / "split.csv"
    write_csv(split, pd.DataFrame({"clip_id": ["c0", "c1", "c2"], "group": ["g0", "g1", "g2"],
                                   "split": ["train", "train", "probe"]}))
    missing = MISSING_RECORDS[case][1]
    expected = (rf"^{re.escape(str(path))}: it has /activations but no record of the model, layer and clip length "
                rf"they were made with \(missing or malformed attributes: {re.escape(missing)}\), so it was not made "
                r"by audioprobe's extraction .*: delete it and rerun")
    readers = {
        "LayerFile": lambda: LayerFile(path),
        "pool (even given the run's shape)": lambda: activations.pool(path, tmp_path / "out" / "pooled.h5",
                                                                      axes=["patch"], layer_shape=SHAPE),
        "summarise": lambda: activations.summarise({"layer1": path}),
        "latent layer_matrix": lambda: latent_steps.layer_matrix(path),
        "latent project_layer": lambda: latent_steps.project_layer(path, split, tmp_path / "out" / "projection.h5",
                                                                   components=2, seed=0),
        "dissect neurons_step": lambda: neurons_step(
            layer_path=path, split_path=split, out_h5=tmp_path / "out" / "neurons.h5",
            settings={"pool": "mean", "top_k": 1, "neurons": {"per_layer": 1, "seed": 0}}),
    }
    for read in readers.values():
        with pytest.raises(NotExtractedError, match=expected):
            read()
    assert not (tmp_path / "out").exists()


def test_a_pooled_file_without_the_records_is_refused_too(tmp_path):
    from audioprobe.io.store import NotExtractedError

    path = tmp_path / "pooled.h5"
    write_arrays(path, {"activations": np.zeros((3, 32), np.float32)}, clip_ids=["a", "b", "c"],
                 attrs={"pooled_axes": "patch,time,freq", "kept_axes": "channel", "axes": "patch,time,freq,channel"})
    with pytest.raises(NotExtractedError, match="not made by audioprobe's extraction"):
        LayerFile(path)


def test_outputs_without_activations_need_no_record_of_a_model(tmp_path):
    """Projections, latents, neuron, head and concept-score files are read through LayerFile too."""
    from audioprobe.latent import steps as latent_steps

    ids = ["a", "b", "c"]
    write_arrays(tmp_path / "projection.h5", {"projected": np.ones((3, 2))}, clip_ids=ids, labels={"k": list("xyz")},
                 attrs={"layer_shape": "[1, 6, 4, 512]", "config": {"components": 2, "seed": 0}})
    write_arrays(tmp_path / "latents.h5", {"latents": np.ones((3, 4))}, clip_ids=ids, labels={},
                 attrs={"config": {"factor_dims": [0, 1]}, "layer": "layer10"})
    write_arrays(tmp_path / "neurons.h5", {"values": np.ones((3, 5)), "top": np.zeros((5, 1), int)}, clip_ids=ids,
                 labels={}, attrs={"layer": "layer1", "config": {"pool": "mean"}})
    write_arrays(tmp_path / "head.h5", {"coef": np.ones((2, 3)), "classes": np.array(["p", "q"], dtype=object)},
                 attrs={"layer": "head"})
    values, clip_ids, labels = latent_steps.projected(tmp_path / "projection.h5")
    assert values.shape == (3, 2) and clip_ids == ids and labels == {"k": ["x", "y", "z"]}
    latents, clip_ids, _, record = latent_steps.latents_of(tmp_path / "latents.h5")
    assert latents.shape == (3, 4) and clip_ids == ids and record == {"factor_dims": [0, 1]}
    with LayerFile(tmp_path / "neurons.h5") as stored:
        assert stored.clip_ids == ids
    with LayerFile(tmp_path / "head.h5") as stored:
        assert stored.strings("classes") == ["p", "q"]


# --- point 11: writes through a symbolic link out of results/ ---------------------------------------------------

@pytest.fixture
def linked_results(tmp_path, monkeypatch):
    """A working directory whose results/activations is a symbolic link to a folder outside it."""
    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "results").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, work / "results" / "activations")
    monkeypatch.chdir(work)
    return work, outside


def test_an_atomic_write_through_a_link_out_of_results_is_refused(linked_results):
    work, outside = linked_results
    for target in ("results/activations/x.csv", work / "results/activations/x.csv",
                   "results/activations/new/deeper/x.csv", "results/../results/activations/x.csv"):
        expected = (f"refusing to write {re.escape(str(target))}: its folder is really {re.escape(str(outside))}.*, "
                    f"because {re.escape(str(work))}/results/activations is a symbolic link -> "
                    f"{re.escape(str(outside))}; remove the link")
        with pytest.raises(OutsideResultsError, match=expected):
            write_csv(target, pd.DataFrame({"a": [1]}))
    with pytest.raises(OutsideResultsError, match="results/activations is a symbolic link"):
        LayerWriter("results/activations/layer1.h5", 1, (2,))
    with pytest.raises(OutsideResultsError):
        write_arrays("results/activations/pooled/layer1.h5", {"x": np.zeros(3)})
    assert list(outside.iterdir()) == []  # no file, no temporary file, no folder
    assert sorted(os.listdir(work / "results")) == ["activations"]


def test_the_rename_checks_again(linked_results):
    work, outside = linked_results
    (work / "results" / "real").mkdir()
    with pytest.raises(OutsideResultsError):
        with atomic.atomic_path("results/real/x.txt") as tmp:
            open(tmp, "w").write("data")
            os.rename(work / "results" / "real", work / "results" / "moved")  # swapped for a link mid-write
            os.symlink(outside, work / "results" / "real")
    assert list(outside.iterdir()) == []


def test_writes_elsewhere_and_a_linked_results_folder_still_work(tmp_path, monkeypatch):
    scratch, work = tmp_path / "scratch", tmp_path / "work"
    (scratch / "results").mkdir(parents=True)
    work.mkdir()
    os.symlink(scratch / "results", work / "results")  # results/ itself may live elsewhere
    os.symlink(scratch / "results", work / "results_alias")
    (scratch / "results" / "inner").mkdir()
    os.symlink(scratch / "results" / "inner", scratch / "results" / "alias")  # a link that stays inside
    monkeypatch.chdir(work)
    atomic.write_text("results/a/b.txt", "1")
    atomic.write_text("results/alias/c.txt", "2")
    atomic.write_text(tmp_path / "anywhere" / "d.txt", "3")
    assert (scratch / "results/a/b.txt").read_text() == "1" and (scratch / "results/inner/c.txt").read_text() == "2"
    assert (tmp_path / "anywhere" / "d.txt").read_text() == "3"
    assert links_leaving("results") == []
    check_results_links("results")


def test_the_pre_run_check_names_every_link_leaving_results(linked_results, tmp_path):
    work, outside = linked_results
    (work / "results" / "logs" / "x").mkdir(parents=True)
    os.symlink(tmp_path / "secret.txt", work / "results" / "logs" / "x" / "manifest.csv")  # a file, even dangling
    assert links_leaving("results") == [("results/activations", str(outside)),
                                        ("results/logs/x/manifest.csv", str(tmp_path / "secret.txt"))]
    with pytest.raises(OutsideResultsError, match=rf"results/activations -> {outside}; "
                                                  rf"results/logs/x/manifest.csv -> {tmp_path}/secret.txt"):
        check_results_links()
    assert links_leaving(tmp_path / "missing") == []


def made_metamers(clips=2, samples=1600):
    """What read_metamers gives for a synthesis of two clips at one layer."""
    waves = np.sin(np.linspace(0, 60, clips * samples)).reshape(clips, samples).astype(np.float32) * 0.5
    return {"clip_id": [f"c{i}" for i in range(clips)], "word": ["yes"] * clips, "layers": ["layer2"],
            "targets": waves, "metamers": waves[None] * 0.9}


def test_the_metamer_wav_folder_is_written_whole_and_replaces_the_old_one(tmp_path, monkeypatch):
    from audioprobe.metamers.validation_step import write_wav_folder

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "results" / "metamers" / "d" / "yamnet" / "wavs"
    (folder / "stale").mkdir(parents=True)
    write_wav_folder(folder, made_metamers())
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.wav")) == [
        "layer2/c0.wav", "layer2/c1.wav", "natural/c0.wav", "natural/c1.wav"]
    assert not (folder / "stale").exists() and not (folder.parent / "wavs.part").exists()


def test_the_metamer_wav_folder_under_a_link_out_of_results_deletes_and_writes_nothing(tmp_path, monkeypatch):
    """results/metamers is a symbolic link to a folder outside: the old folder and a leftover .part folder
    there are someone else's files, and must survive; no WAV may be written there."""
    from audioprobe.metamers.validation_step import write_wav_folder

    work, outside = tmp_path / "work", tmp_path / "outside"
    (work / "results").mkdir(parents=True)
    for name in ("wavs", "wavs.part"):
        (outside / "d" / "yamnet" / name).mkdir(parents=True)
        (outside / "d" / "yamnet" / name / "precious.txt").write_text("keep")
    os.symlink(outside, work / "results" / "metamers")
    monkeypatch.chdir(work)
    before = sorted(str(p.relative_to(outside)) for p in outside.rglob("*"))
    for folder in ("results/metamers/d/yamnet/wavs", work / "results/metamers/d/yamnet/wavs",
                   "results/metamers/new/yamnet/wavs"):
        with pytest.raises(OutsideResultsError, match=r"results/metamers is a symbolic link"):
            write_wav_folder(folder, made_metamers())
        assert sorted(str(p.relative_to(outside)) for p in outside.rglob("*")) == before
    assert sorted(os.listdir(work / "results")) == ["metamers"]
