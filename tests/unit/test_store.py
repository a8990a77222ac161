import os

import h5py
import numpy as np
import pytest

from audioprobe import activations
from audioprobe.datasets import manifest, naming
from audioprobe.io.store import LayerFile, LayerWriter
from tests.conftest import require, tone

LAYER14 = (1, 3, 2, 1024)  # YAMNet's layer14 for 0.975 s clips
RECORD = {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}  # what an extraction's config must record


def extracted(clip_seconds=0.975, layer="layer14") -> dict:
    """The attributes the extraction records (LayerFile checks a layer file's shape against them)."""
    return {"config": {"clip_seconds": clip_seconds, "model": {"kind": "yamnet", "numerics": "float"}},
            "layer": layer, "axes": "patch,time,freq,channel", "model": "yamnet"}


def test_layer_files_appear_only_when_complete(tmp_path):
    path = tmp_path / "layer.h5"
    writer = LayerWriter(path, 3, LAYER14, attrs=extracted())
    writer.write(np.ones((2, *LAYER14), np.float32))
    assert not path.exists()
    writer.write(np.full((1, *LAYER14), 2.0, np.float32))
    writer.finish(["a", "b", "c"], {"material": ["wood", "wood", "metal"]})
    with LayerFile(path) as layer:
        assert layer.activations.shape == (3, *LAYER14)
        assert layer.clip_ids == ["a", "b", "c"]
        assert layer.labels == {"material": ["wood", "wood", "metal"]}
        assert layer.attrs["config"] == extracted()["config"] and layer.attrs["model"] == "yamnet"
        np.testing.assert_array_equal(layer.activations[2], 2.0)
    assert [p.name for p in tmp_path.iterdir()] == ["layer.h5"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_an_aborted_or_short_write_leaves_nothing(tmp_path):
    writer = LayerWriter(tmp_path / "layer.h5", 3, (4,))
    writer.write(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="wrote 2 of 3"):
        writer.finish(["a", "b", "c"], {})
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_incomplete_files_are_refused(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as file:
        file.attrs["complete"] = False
    with pytest.raises(ValueError, match="incomplete"):
        LayerFile(path)


def test_pooling_reduces_named_axes(tmp_path):
    data = np.random.default_rng(0).standard_normal((5, 3, 3, 2, 1024)).astype(np.float32)  # layer14, 1.5 s clips
    writer = LayerWriter(tmp_path / "l.h5", 5, data.shape[1:], attrs=extracted(clip_seconds=1.5))
    writer.write(data)
    writer.finish(list("abcde"), {"k": list("xxyyz")})
    activations.pool(tmp_path / "l.h5", tmp_path / "mean.h5", axes=["patch", "time", "freq"], stat="mean")
    activations.pool(tmp_path / "l.h5", tmp_path / "max.h5", axes=["time"], stat="max")
    with LayerFile(tmp_path / "mean.h5") as pooled:
        np.testing.assert_allclose(pooled.activations[()], data.mean(axis=(1, 2, 3)), rtol=1e-6)
        assert pooled.labels == {"k": list("xxyyz")} and pooled.attrs["kept_axes"] == "channel"
    with LayerFile(tmp_path / "max.h5") as pooled:
        np.testing.assert_array_equal(pooled.activations[()], data.max(axis=2).reshape(5, -1))
    with pytest.raises(ValueError, match="cannot pool over 'space'"):
        activations.pool(tmp_path / "l.h5", tmp_path / "bad.h5", axes=["space"])


def test_summary_matches_numpy(tmp_path):
    data = np.maximum(np.random.default_rng(1).standard_normal((70, *LAYER14)), 0).astype(np.float32)
    writer = LayerWriter(tmp_path / "l.h5", 70, LAYER14, attrs=extracted())
    writer.write(data)
    writer.finish([str(i) for i in range(70)], {})
    row = activations.summarise({"l": tmp_path / "l.h5"}).iloc[0]
    assert row["shape"] == "1x3x2x1024" and row["clips"] == 70
    assert row["mean"] == pytest.approx(data.mean(), rel=1e-6)
    assert row["std"] == pytest.approx(data.std(), rel=1e-5)
    assert row["fraction_zero"] == pytest.approx((data == 0).mean())


def projected_file(path, source, components=96, seed=4, source_shape=LAYER14):
    """A layer file as the extraction writes layer14 stored projected: ``source`` [clips, *layer14] projected."""
    matrix = activations.sparse_projection(int(np.prod(source_shape)), components, seed)
    record = activations.projection_record(matrix, seed, source_shape, ["patch", "time", "freq", "channel"])
    writer = LayerWriter(path, len(source), (components,),
                         attrs={**extracted(), "axes": "component", "extraction_projection": record})
    writer.write(activations.project_rows(source, matrix))
    writer.finish([f"c{i}" for i in range(len(source))], {"k": ["x"] * len(source)})
    return matrix


def test_a_projected_layer_file_holds_its_components_and_is_checked_against_its_source(tmp_path):
    source = np.random.default_rng(2).standard_normal((6, *LAYER14)).astype(np.float32)
    matrix = projected_file(tmp_path / "p.h5", source)
    with LayerFile(tmp_path / "p.h5", layer_shape=(96,)) as layer:
        np.testing.assert_allclose(layer.activations[()], source.reshape(6, -1) @ matrix.toarray().T,
                                   rtol=1e-4, atol=1e-4)
        assert layer.attrs["extraction_projection"]["source_shape"] == list(LAYER14)
    with pytest.raises(ValueError, match=r"the run's layer shape is 1x3x2x1024"):
        LayerFile(tmp_path / "p.h5", layer_shape=LAYER14)
    other = np.zeros((6, 2, 3, 2, 1024), np.float32)  # what 1.5 s clips give, recorded as 0.975 s ones
    projected_file(tmp_path / "wrong.h5", other, source_shape=other.shape[1:])
    with pytest.raises(ValueError, match=r"wrong.h5: .*extraction_projection records a source of \[2, 3, 2, 1024\] "
                                         r"values, but what yamnet gives at layer14 for 0.975 s clips is "
                                         r"\[1, 3, 2, 1024\]"):
        LayerFile(tmp_path / "wrong.h5")


def test_pooling_passes_a_projected_layer_through_and_the_pooled_file_reads_back(tmp_path):
    source = np.random.default_rng(3).standard_normal((5, *LAYER14)).astype(np.float32)
    projected_file(tmp_path / "p.h5", source)
    activations.pool(tmp_path / "p.h5", tmp_path / "pooled.h5", axes=["patch", "time", "freq"], layer_shape=(96,))
    with LayerFile(tmp_path / "p.h5") as layer, LayerFile(tmp_path / "pooled.h5") as pooled:
        np.testing.assert_array_equal(pooled.activations[()], layer.activations[()])
        assert pooled.attrs["pooled_axes"] == "" and pooled.attrs["kept_axes"] == "component"
        assert "projected to 96 components at extraction" in pooled.attrs["pool_passed_through"]
        assert pooled.labels == {"k": ["x"] * 5}


@pytest.fixture(scope="module")
def yamnet(yamnet_tflite):
    require("tensorflow")
    from audioprobe import models

    return models.load("yamnet", {"kind": "yamnet"}, str(yamnet_tflite))


def small_dataset(tmp_path, write_wav):
    for i, name in enumerate(["WT_01.wav", "MR_01.wav", "GD_01.wav"]):
        write_wav(name, tone(1.5, freq=300.0 * (i + 1)))
    sources = naming.sources(tmp_path, {"scheme": "latentaudio"})
    return manifest.ingest(tmp_path, sources, clip_seconds=0.975, hop_seconds=0.48, min_seconds=0.1,
                           on_bad_input="fail").clips


def test_extraction_streams_every_layer_in_one_pass(tmp_path, write_wav, yamnet):
    clips = small_dataset(tmp_path, write_wav)
    outputs = {layer: tmp_path / "out" / f"{layer}.h5" for layer in ("layer1", "layer9", "layer14")}
    activations.extract(yamnet, clips, tmp_path, outputs, clip_seconds=0.975, batch_size=2,
                        attrs={"config": {"batch_size": 2, **RECORD}})
    waves = np.stack([manifest.load_clip(tmp_path, row, 16000, 15600) for _, row in clips.iterrows()])
    direct = yamnet.activations(waves, list(outputs))
    for layer, path in outputs.items():
        with LayerFile(path) as stored:
            assert stored.clip_ids == clips["clip_id"].tolist()
            assert stored.labels["material"] == clips["label_material"].tolist()
            assert stored.attrs["weights_sha256"] == yamnet.weights_sha256 and stored.attrs["layer"] == layer
            np.testing.assert_allclose(stored.activations[()], direct[layer], rtol=1e-5, atol=1e-5)


def test_real_yamnet_activations_keep_their_distances_as_the_johnson_lindenstrauss_lemma_bounds(tmp_path, yamnet):
    """YAMNet's 14 layers on maas-synth impacts (24 clips), each projected to 256 components with five seeds."""
    from tests.unit.test_extraction_pipeline import assert_within_the_lemma, distortions, maas_synth_clips

    clips = maas_synth_clips(tmp_path)
    waves = np.stack([manifest.load_clip(tmp_path, row, 16000, 15600) for _, row in clips.iterrows()])
    ratios = [distortions(values, 256, range(5)) for values in yamnet.activations(waves, yamnet.layers()).values()]
    assert_within_the_lemma(np.stack(ratios), len(clips), 256)


def test_a_failing_extraction_leaves_no_output(tmp_path, write_wav, yamnet):
    clips = small_dataset(tmp_path, write_wav)
    (tmp_path / "GD_01.wav").write_bytes(b"corrupted after the manifest was made")
    out = tmp_path / "out"
    with pytest.raises(Exception, match="GD_01.wav"):
        activations.extract(yamnet, clips, tmp_path, {"layer1": out / "layer1.h5", "layer2": out / "layer2.h5"},
                            clip_seconds=0.975, batch_size=2, attrs={"config": RECORD})
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("config", [None, {"batch_size": 2}, {**RECORD, "clip_seconds": 1.5},
                                    {**RECORD, "model": {"numerics": "float"}}])
def test_an_extraction_that_would_not_record_its_model_and_clip_length_is_refused_before_any_work(tmp_path, config):
    """Readers refuse a layer file without those records, so the extraction does not write one."""
    class Unused:
        def __getattr__(self, name):
            raise AssertionError(f"the model was used ({name})")

    with pytest.raises(ValueError, match=r"must record the model's config with its kind and clip_seconds \(0.975\)"):
        activations.extract(Unused(), None, tmp_path, {"layer1": tmp_path / "out" / "layer1.h5"}, clip_seconds=0.975,
                            attrs=None if config is None else {"config": config})
    assert list(tmp_path.iterdir()) == []
