"""Issue 13: extraction overlaps reading, computing and writing, stores float16 on request, and stores a layer
pooled or projected at extraction; a failure in any stage stops the others and leaves no file.

The model is a stand-in with YAMNet's axes and the shapes of three of its layers, whose activations are the
clip's own samples laid out in the layer's shape, so every stored value is known without TensorFlow.
"""

import math
import threading

import numpy as np
import pytest

from audioprobe import activations, config
from audioprobe.datasets import manifest, naming
from audioprobe.io.store import LayerFile, LayerWriter
from audioprobe.models import yamnet
from audioprobe.models.base import ModelAdapter
from tests.conftest import deadline as shared_deadline
from tests.conftest import tone

RECORD = {"config": {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}}
SAMPLES = 15600  # 0.975 s at 16 kHz


class PatternModel(ModelAdapter):
    """YAMNet's layer7, layer13 and layer14 shapes; values: the clip's samples repeated to fill the layer,
    times ``scale`` and the layer's position. ``fail_at`` (1-based) makes that batch's forward pass fail."""

    name = "pattern"
    sample_rate = 16000
    weights_sha256 = "0" * 64

    def __init__(self, fail_at=None, scale=1.0):
        self.fail_at, self.scale, self.batches = fail_at, scale, 0

    def layers(self):
        return ["layer7", "layer13", "layer14"]

    def layer_axes(self, layer):
        self.check_layers([layer])
        return yamnet.AXES

    def layer_shape(self, layer, clip_samples):
        return yamnet.layer_shape(layer, clip_samples)

    def activations(self, waveforms, layers):
        self.batches += 1
        if self.batches == self.fail_at:
            raise RuntimeError(f"the model failed at batch {self.batches}")
        return {layer: self.values(waveforms, layer) for layer in layers}

    def values(self, waveforms, layer):
        shape = self.layer_shape(layer, waveforms.shape[1])
        size = math.prod(shape)
        tiled = np.tile(waveforms, (1, -(-size // waveforms.shape[1])))[:, :size]
        return (tiled * self.scale * (1 + self.layers().index(layer))).astype(np.float32).reshape(-1, *shape)

    def forward_from(self, layer, activations, channel_masks=None):
        raise NotImplementedError

    def differentiable(self, layers, relu_gradient="true"):
        raise NotImplementedError


def deadline():
    return shared_deadline(30, "a stage waiting forever on a queue, or a thread never joined")


@pytest.fixture
def clips(tmp_path, write_wav):
    """13 clips of 0.975 s from four recordings (seven batches of two, the last one short)."""
    for i, name in enumerate(["WT_01.wav", "MR_01.wav", "GD_01.wav", "WT_02.wav"]):
        write_wav(f"audio/{name}", tone(1.6 + 0.5 * (i == 3), freq=200.0 * (i + 1)))
    root = tmp_path / "audio"
    table = manifest.ingest(root, naming.sources(root, {"scheme": "latentaudio"}), clip_seconds=0.975,
                            hop_seconds=0.3, min_seconds=0.1, on_bad_input="fail").clips
    assert len(table) == 13
    return table


def run(model, clips, tmp_path, folder, **options):
    out = tmp_path / folder
    outputs = {layer: out / f"{layer}.h5" for layer in model.layers()}
    with deadline():
        activations.extract(model, clips, tmp_path / "audio", outputs, clip_seconds=0.975, batch_size=2,
                            compression="none", attrs=RECORD, **options)
    return outputs


def waves(clips, tmp_path):
    return np.stack([manifest.load_clip(tmp_path / "audio", row, 16000, SAMPLES) for _, row in clips.iterrows()])


def no_stage_threads():
    return not [thread for thread in threading.enumerate() if thread.name.startswith("extract-")]


# --- overlap -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_overlapped_extraction_writes_the_bytes_of_the_sequential_one(clips, tmp_path, dtype):
    pooled = {"layer13": {"axes": ["time"], "stat": "max"}}
    overlapped = run(PatternModel(), clips, tmp_path, "overlapped", dtype=dtype, pooled=pooled)
    in_turn = run(PatternModel(), clips, tmp_path, "in_turn", dtype=dtype, pooled=pooled, overlap=False)
    for layer, path in overlapped.items():
        assert path.read_bytes() == in_turn[layer].read_bytes(), layer
    expected = PatternModel().values(waves(clips, tmp_path), "layer14").astype(dtype)
    with LayerFile(overlapped["layer14"]) as stored:
        assert stored.clip_ids == clips["clip_id"].tolist()
        np.testing.assert_array_equal(stored.activations[()], expected.astype(np.float32))
    assert sorted(p.name for p in (tmp_path / "overlapped").iterdir()) == ["layer13.h5", "layer14.h5", "layer7.h5"]
    assert no_stage_threads()


def test_batches_in_memory_stay_bounded_when_the_writer_is_slow(clips, tmp_path, monkeypatch):
    """The model runs ahead of a slow writer by at most the queue's depth plus the batch being written."""
    written, ahead = [], []
    slow_write = LayerWriter.write

    def write(self, batch):
        threading.Event().wait(0.02)  # a slow disk
        slow_write(self, batch)
        if self.layer == "layer14":
            written.append(batch.shape[0])

    class Watched(PatternModel):
        def activations(self, waveforms, layers):
            ahead.append(self.batches - len(written))
            return super().activations(waveforms, layers)

    monkeypatch.setattr(LayerWriter, "write", write)
    run(Watched(), clips, tmp_path, "out")
    assert sum(written) == len(clips)
    assert max(ahead) <= activations.COMPUTED_DEPTH + 1


def fail_loading_clip(index, monkeypatch):
    real = activations.load_clip

    def load(root, row, rate, samples):
        if row.name == index:
            raise OSError(f"clip {index} cannot be decoded")
        return real(root, row, rate, samples)

    monkeypatch.setattr(activations, "load_clip", load)


def fail_writing(call, monkeypatch):
    real, calls = LayerWriter.write, []

    def write(self, batch):
        calls.append(self.layer)
        if len(calls) == call:
            raise OSError(f"disk full at write {call}")
        real(self, batch)

    monkeypatch.setattr(LayerWriter, "write", write)


@pytest.mark.parametrize("stage, message, raised_in", [
    ("model", "the model failed at batch 3", "activations"),
    ("reader", "clip 6 cannot be decoded", "load"),
    ("writer", "disk full at write 5", "write"),
])
def test_a_failing_stage_stops_the_others_and_leaves_no_file(clips, tmp_path, monkeypatch, stage, message,
                                                             raised_in):
    if stage == "reader":
        fail_loading_clip(6, monkeypatch)
    if stage == "writer":
        fail_writing(5, monkeypatch)
    with pytest.raises((RuntimeError, OSError), match=message) as raised:
        run(PatternModel(fail_at=3 if stage == "model" else None), clips, tmp_path, "out")
    assert raised.traceback[-1].name == raised_in  # the original traceback, down to where it was raised
    assert list((tmp_path / "out").iterdir()) == []  # no final file and no temporary one
    assert no_stage_threads()


# --- float16 -------------------------------------------------------------------------------------------------


def test_float16_halves_the_file_and_reads_back_as_float32(clips, tmp_path):
    full = run(PatternModel(), clips, tmp_path, "f32", dtype="float32")
    half = run(PatternModel(), clips, tmp_path, "f16", dtype="float16")
    with LayerFile(full["layer7"]) as wide, LayerFile(half["layer7"]) as narrow:
        assert narrow.file["activations"].dtype == np.float16
        values = narrow.activations[()]
        assert values.dtype == np.float32 and narrow.activations.shape == wide.activations.shape
        np.testing.assert_array_equal(values, wide.activations[()].astype(np.float16).astype(np.float32))
        rows = narrow.activations[np.array([1, 4, 7])]
        assert rows.dtype == np.float32 and rows.shape == (3, *wide.activations.shape[1:])
    assert half["layer7"].stat().st_size < 0.55 * full["layer7"].stat().st_size
    summary = activations.summarise({"layer7": half["layer7"]}).iloc[0]
    assert summary["clips"] == len(clips) and np.isfinite(summary["mean"])


def test_a_value_beyond_float16_range_stops_the_extraction_naming_layer_and_file(clips, tmp_path):
    # the tones peak at 0.5: scaled by 1e5, layer7 (x1) stays within 65504, layer13 (x2) does not
    with pytest.raises(ValueError, match=r"out/layer13\.h5: layer layer13 has the value .* at clip 0, beyond "
                                         r"float16's range .*set activations.dtype to float32"):
        run(PatternModel(scale=1.0e5), clips, tmp_path, "out", dtype="float16")
    assert list((tmp_path / "out").iterdir()) == []


def test_float16_keeps_values_up_to_its_largest(tmp_path):
    writer = LayerWriter(tmp_path / "l.h5", 1, (2,), dtype="float16", attrs={"layer": "l"})
    writer.write(np.array([[65504.0, -65504.0]], np.float32))
    writer.finish(["a"], {})
    with pytest.raises(ValueError, match="layer m has the value -70000 at clip 1"):
        other = LayerWriter(tmp_path / "m.h5", 2, (2,), dtype="float16", attrs={"layer": "m"})
        other.write(np.array([[1.0, 2.0], [3.0, -70000.0]], np.float32))
    other.abort()


# --- pooled storage ------------------------------------------------------------------------------------------


POOLED = {"layer7": {"axes": ["patch", "time", "freq"], "stat": "mean"}, "layer13": {"axes": ["time"], "stat": "max"}}


def test_a_layer_stored_pooled_holds_what_pooling_the_full_layer_gives(clips, tmp_path):
    full = run(PatternModel(), clips, tmp_path, "full")
    pooled = run(PatternModel(), clips, tmp_path, "pooled", pooled=POOLED)
    model = RECORD["config"]["model"]
    activations.pool(full["layer7"], tmp_path / "full_vectors.h5", axes=["patch", "time", "freq"])
    with LayerFile(pooled["layer7"], layer_shape=activations.model_layer_shape(
            model, "layer7", 0.975, pooled=["patch", "time", "freq"])) as stored, \
            LayerFile(tmp_path / "full_vectors.h5") as vectors:
        assert stored.activations.shape == (len(clips), 512) and stored.attrs["axes"] == "channel"
        assert stored.attrs["extraction_pool"] == POOLED["layer7"]
        np.testing.assert_array_equal(stored.activations[()], vectors.activations[()])
    with LayerFile(pooled["layer13"], layer_shape=(1, 2, 1024)) as stored, LayerFile(full["layer13"]) as whole:
        assert stored.attrs["axes"] == "patch,freq,channel"
        np.testing.assert_array_equal(stored.activations[()], whole.activations[()].max(axis=2))
    with LayerFile(pooled["layer14"]) as stored:
        assert stored.activations.shape == (len(clips), 1, 3, 2, 1024)  # not listed: stored full
    with pytest.raises(ValueError, match="the run's layer shape is 1x3x2x1024"):
        LayerFile(pooled["layer13"], layer_shape=activations.model_layer_shape(model, "layer13", 0.975))


def test_pooling_a_layer_stored_pooled_gives_the_vector_of_the_full_layer(clips, tmp_path):
    full = run(PatternModel(), clips, tmp_path, "full")
    stored = run(PatternModel(), clips, tmp_path, "stored", pooled={"layer13": {"axes": ["time"], "stat": "mean"}})
    for name, layers in (("from_full", full), ("from_stored", stored)):
        activations.pool(layers["layer13"], tmp_path / f"{name}.h5", axes=["patch", "time", "freq"])
    with LayerFile(tmp_path / "from_full.h5") as one, LayerFile(tmp_path / "from_stored.h5") as other:
        assert other.activations.shape == (len(clips), 1024) and other.attrs["kept_axes"] == "channel"
        np.testing.assert_allclose(other.activations[()], one.activations[()], rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="stored pooled over time at extraction .* without 'time'"):
        activations.pool(stored["layer13"], tmp_path / "x.h5", axes=["patch"])
    with pytest.raises(ValueError, match="stored as the mean over time at extraction .* pooling it by max"):
        activations.pool(stored["layer13"], tmp_path / "x.h5", axes=["time"], stat="max")


def test_pooled_storage_of_an_unknown_axis_or_layer_is_refused_before_any_file(clips, tmp_path):
    with pytest.raises(ValueError, match="cannot pool over 'space'"):
        run(PatternModel(), clips, tmp_path, "a", pooled={"layer7": {"axes": ["space"], "stat": "mean"}})
    with pytest.raises(ValueError, match="activations.store: 'layer2' is stored pooled but not extracted"):
        run(PatternModel(), clips, tmp_path, "b", pooled={"layer2": {"axes": ["time"], "stat": "mean"}})
    assert not any(p.is_file() for p in tmp_path.rglob("*.h5"))


def test_model_layer_shape_and_the_layer_file_agree_on_a_pooled_shape():
    model = {"kind": "yamnet"}
    assert activations.model_layer_shape(model, "layer9", 0.975) == (1, 6, 4, 512)
    assert activations.model_layer_shape(model, "layer9", 0.975, pooled=["time", "patch"]) == (4, 512)
    with pytest.raises(ValueError, match="cannot pool over 'space'"):
        activations.model_layer_shape(model, "layer9", 0.975, pooled=["space"])


# --- projected storage ---------------------------------------------------------------------------------------


PROJECTED = {"layer7": {"components": 64, "seed": 3}, "layer13": {"components": 256, "seed": 0}}


def dense_projection(values, components, seed):
    """Each clip's flattened values times the seeded matrix made dense, in float64: the projection computed
    apart from the extraction's sparse float32 product."""
    flat = values.reshape(len(values), -1).astype(np.float64)
    return flat @ activations.sparse_projection(flat.shape[1], components, seed).toarray().astype(np.float64).T


def assert_close_to(stored, expected):
    np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_a_layer_stored_projected_holds_the_projection_of_the_full_layer(clips, tmp_path):
    full = run(PatternModel(), clips, tmp_path, "full")
    stored = run(PatternModel(), clips, tmp_path, "projected", projected=PROJECTED,
                 pooled={"layer13": {"axes": ["time"], "stat": "max"}})
    with LayerFile(full["layer7"]) as whole, LayerFile(stored["layer7"], layer_shape=(64,)) as projected:
        assert projected.activations.shape == (len(clips), 64) and projected.attrs["axes"] == "component"
        assert_close_to(projected.activations[()], dense_projection(whole.activations[()], 64, 3))
        record = projected.attrs["extraction_projection"]
        assert "extraction_pool" not in projected.attrs
    assert record["kind"].startswith("very sparse random projection") and record["data_independent"]
    assert (record["components"], record["seed"], record["source_shape"]) == (64, 3, [1, 6, 4, 512])
    assert record["source_axes"] == ["patch", "time", "freq", "channel"]
    assert record["density"] == pytest.approx(1 / math.sqrt(12288))
    with LayerFile(full["layer13"]) as whole, LayerFile(stored["layer13"]) as projected:  # pooled, then projected
        assert_close_to(projected.activations[()], dense_projection(whole.activations[()].max(axis=2), 256, 0))
        assert projected.attrs["extraction_pool"] == {"axes": ["time"], "stat": "max"}
        assert projected.attrs["extraction_projection"]["source_axes"] == ["patch", "freq", "channel"]
        assert projected.attrs["extraction_projection"]["source_shape"] == [1, 2, 1024]
    with LayerFile(stored["layer14"]) as whole:
        assert whole.activations.shape == (len(clips), 1, 3, 2, 1024)  # not listed: stored full


def jl_epsilon(points: int, components: int) -> float:
    """The distortion the Johnson-Lindenstrauss lemma allows ``points`` projected to ``components``: the eps with
    components = 4 ln(points) / (eps^2 / 2 - eps^3 / 3) (Dasgupta and Gupta 2003; scikit-learn's
    johnson_lindenstrauss_min_dim)."""
    low, high = 1e-6, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if 4 * math.log(points) / (middle ** 2 / 2 - middle ** 3 / 3) > components \
            else (low, middle)
    return high


def squared_distances(rows):
    rows = rows.astype(np.float64)
    norms = (rows ** 2).sum(axis=1)
    pairs = np.triu_indices(len(rows), 1)
    return (norms[:, None] + norms[None, :] - 2 * rows @ rows.T)[pairs]


def maas_synth_clips(root):
    """The default run's synthetic impacts, one 1 s take per material x action pair: 24 distinct clips."""
    from audioprobe.datasets import maas_synth
    from audioprobe.datasets.generate import generate_maas_synth

    generate_maas_synth(root, {"seed": 1, "takes": 1, "sample_rate": 16000, "recording_seconds": 1.0,
                               "materials": list(maas_synth.MATERIALS), "actions": list(maas_synth.ACTIONS)})
    return manifest.ingest(root, naming.sources(root, {"scheme": "latentaudio"}), clip_seconds=0.975,
                           hop_seconds=0.48, min_seconds=0.1, on_bad_input="fail").clips


def distortions(values, components, seeds, first=None):
    """Per seed, every pair's squared distance after the projection over before it (``first``: the projected
    rows of ``seeds[0]``, as stored, instead of computing them)."""
    original = squared_distances(values.reshape(len(values), -1))
    assert original.min() > 0
    flat = values.reshape(len(values), -1).astype(np.float64)
    rows = [first if first is not None and i == 0 else
            (activations.sparse_projection(flat.shape[1], components, seed).astype(np.float64) @ flat.T).T
            for i, seed in enumerate(seeds)]
    return np.stack([squared_distances(projected) / original for projected in rows])


def assert_within_the_lemma(ratios, points, components):
    """The Johnson-Lindenstrauss lemma as Dasgupta and Gupta prove it: each pair's squared distance leaves
    1 +- eps with probability at most 2 / points^2 (so, over all pairs, all stay within with probability at
    least 1 / points, not with certainty). Over many pairs and seeds the share that leaves must be at most
    that, and the ratios average 1 (distances kept in expectation)."""
    eps = jl_epsilon(points, components)
    outside = float(np.mean(np.abs(ratios - 1) > eps))
    assert outside <= 2 / points ** 2, (outside, eps, ratios.min(), ratios.max())
    assert abs(ratios.mean() - 1) < 0.02


def test_projection_keeps_pairwise_distances_as_the_johnson_lindenstrauss_lemma_bounds(tmp_path):
    """maas-synth impacts (24 distinct clips, 276 pairs) in the stand-in's three layers (6,144 to 12,288 values per
    clip) projected to 256 components: the stored projection (seed 0) and nine other seeds."""
    clips = maas_synth_clips(tmp_path / "audio")
    full = run(PatternModel(), clips, tmp_path, "full")
    projected = {layer: {"components": 256, "seed": 0} for layer in full}
    stored = run(PatternModel(), clips, tmp_path, "projected", projected=projected)
    ratios = []
    for layer in full:
        with LayerFile(full[layer]) as whole, LayerFile(stored[layer]) as components:
            ratios.append(distortions(whole.activations[()], 256, range(10), first=components.activations[()]))
    assert len(clips) == 24 and 0.3 < jl_epsilon(24, 256) < 0.4
    assert_within_the_lemma(np.stack(ratios), len(clips), 256)


def test_the_projection_is_very_sparse_seeded_and_keeps_norms_in_expectation():
    features, components = 400_000, 1024  # about YAMNet's largest layers: dense, 1.6 GB in float32
    matrix = activations.sparse_projection(features, components, seed=0)
    assert matrix.shape == (components, features) and matrix.dtype == np.float32
    assert matrix.nnz == pytest.approx(components * math.sqrt(features), rel=0.01)  # density 1 / sqrt(features)
    assert set(np.unique(np.abs(matrix.data))) == {np.float32(math.sqrt(math.sqrt(features) / components))}
    again = activations.sparse_projection(features, components, seed=0)
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(again, part), getattr(matrix, part))
    assert (activations.sparse_projection(features, components, seed=1) != matrix).nnz > 0
    # E ||R x||^2 = ||x||^2: every column's squared norm is 1 on average
    column_norms = np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel()
    assert column_norms.mean() == pytest.approx(1.0, rel=0.01)


def test_the_same_seed_stores_the_same_bytes_and_another_seed_other_components(clips, tmp_path):
    seeded = {"layer14": {"components": 128, "seed": 5}}
    one = run(PatternModel(), clips, tmp_path, "one", projected=seeded)
    two = run(PatternModel(), clips, tmp_path, "two", projected=seeded, overlap=False)
    for layer, path in one.items():
        assert path.read_bytes() == two[layer].read_bytes(), layer
    other = run(PatternModel(), clips, tmp_path, "other", projected={"layer14": {"components": 128, "seed": 6}})
    with LayerFile(one["layer14"]) as first, LayerFile(other["layer14"]) as second:
        assert not np.allclose(first.activations[()], second.activations[()])
        assert first.attrs["extraction_projection"]["matrix_sha256"] != \
            second.attrs["extraction_projection"]["matrix_sha256"]


def test_pooling_a_projected_layer_copies_its_components_and_records_why(clips, tmp_path):
    stored = run(PatternModel(), clips, tmp_path, "stored", projected=PROJECTED)
    model = RECORD["config"]["model"]
    shape = activations.model_layer_shape(model, "layer13", 0.975, components=256)
    assert shape == (256,)
    activations.pool(stored["layer13"], tmp_path / "vectors.h5", axes=["patch", "time", "freq"], stat="max",
                     layer_shape=shape)
    with LayerFile(stored["layer13"]) as projected, LayerFile(tmp_path / "vectors.h5") as vectors:
        np.testing.assert_array_equal(vectors.activations[()], projected.activations[()])
        assert (vectors.attrs["pooled_axes"], vectors.attrs["kept_axes"]) == ("", "component")
        assert vectors.attrs["pool_requested_axes"] == "patch,time,freq"
        assert "no axis is left to pool" in vectors.attrs["pool_passed_through"]
        assert vectors.attrs["extraction_projection"] == projected.attrs["extraction_projection"]
        assert vectors.clip_ids == projected.clip_ids


def test_projected_storage_larger_than_the_layer_or_of_a_layer_not_extracted_is_refused_before_any_file(
        clips, tmp_path):
    with pytest.raises(ValueError, match=r"activations.store.layer14.project: 6145 components are more than the "
                                         r"6144 values per clip .* use at most 6144"):
        run(PatternModel(), clips, tmp_path, "a", projected={"layer14": {"components": 6145}})
    with pytest.raises(ValueError, match=r"activations.store.layer13.project: 2048 components are more than the "
                                         r"1024 values"):  # pooled first: 1024 values left
        run(PatternModel(), clips, tmp_path, "b", projected={"layer13": {"components": 2048}},
            pooled={"layer13": {"axes": ["patch", "time", "freq"], "stat": "mean"}})
    with pytest.raises(ValueError, match="activations.store: 'layer2' is stored projected but not extracted"):
        run(PatternModel(), clips, tmp_path, "c", projected={"layer2": {"components": 64}})
    with pytest.raises(ValueError, match="activations.store.layer7.seed: -1 is not a seed"):
        run(PatternModel(), clips, tmp_path, "d", projected={"layer7": {"components": 64, "seed": -1}})
    with pytest.raises(ValueError, match="activations.store.layer14.project: 6145 components"):
        activations.model_layer_shape(RECORD["config"]["model"], "layer14", 0.975, components=6145)
    assert not any(p.is_file() for p in tmp_path.rglob("*.h5"))


# --- the config ----------------------------------------------------------------------------------------------


def storage_config(store, **sections):
    from tests.unit.test_config_checks import full_config

    return full_config(**{**sections, "activations": {**sections.get("activations", {}), "store": store}})


def check_storage(cfg):
    from tests.unit.test_config_checks import check_all, layer_names

    check_all(cfg)
    config.check_storage(cfg, layer_names)


ELSEWHERE = {"dissect": {"runs": []}, "latent": {"flow": {"layer": "layer12"}}}


def test_the_schema_takes_full_pooled_or_the_axes_to_pool():
    check_storage(storage_config({}))
    check_storage(storage_config({"layer3": "pooled", "layer5": {"pool": ["time", "freq"]}, "layer12": "full"},
                                 **ELSEWHERE))
    for value in ("half", {"pool": ["channel"]}, {"pool": []}, {"axes": ["time"]}):
        with pytest.raises(config.ConfigError, match="activations.store.layer3"):
            check_storage(storage_config({"layer3": value}, **ELSEWHERE))


@pytest.mark.parametrize("store, sections, message", [
    ({"layer3": "pooled"}, {"latent": {"flow": {"layer": "layer12"}}, "dissect": {"layers": "all"}},
     r"activations.store.layer3: layer3 is stored pooled, but Study 3 continues the network from it "
     r"\(dissect.layers: all, for dissect.runs\[0\]\) and needs its full activations: remove layer3 from "
     r"activations.store to store it full, or list dissect.layers without it"),
    ({"layer13": "pooled"}, {"dissect": {"layers": ["layer12", "layer13"]}, "latent": {"flow": {"layer": 1}}},
     r"activations.store.layer13: .* \(dissect.layers: lists it, for dissect.runs\[0\]\)"),
    ({"layer3": {"pool": ["time"]}}, {"dissect": {"runs": []}},
     r"activations.store.layer3: .* Study 1's transfer may continue the network from it \(latent.flow.layer: "
     r"'best'\) .* or set latent.flow.layer to a layer stored full"),
    ({"layer12": "pooled"}, ELSEWHERE,
     r"activations.store.layer12: .* transfer continues .* \(latent.flow.layer: 'layer12'\)"),
    ({"layer3": {"pool": ["time"]}}, {**ELSEWHERE, "activations": {"pool": {"axes": ["patch", "freq"]}}},
     r"activations.store.layer3.pool: 'time' is not in activations.pool.axes \(patch, freq\)"),
    ({"layer99": "pooled"}, ELSEWHERE, r"activations.store.layer99: 'layer99' is not an extracted layer"),
    ({"layer3": "pooled"}, {**ELSEWHERE, "activations": {"layers": ["layer5", "layer12"]}},
     r"activations.store.layer3: 'layer3' is not an extracted layer of any run's model \(extracted: layer5, "
     r"layer12\)"),
])
def test_pooled_storage_that_a_study_or_the_pooling_cannot_use_is_refused_naming_both_keys(store, sections,
                                                                                         message):
    with pytest.raises(config.ConfigError, match=message):
        check_storage(storage_config(store, **sections))
