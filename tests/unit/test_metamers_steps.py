"""The Study 2 steps as the workflow runs them (synthesise -> validate -> pass rates -> listening package), on a
small network the test builds, with planted answers: each layer's null comes from that layer, and a
metamer whose synthesis diverges is kept and flagged, not a crash."""

import h5py
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import require

tf = require("tensorflow")

from audioprobe.io.atomic import read_csv  # noqa: E402
from audioprobe.io.store import STRING  # noqa: E402
from audioprobe.metamers import synthesis_step, validation, validation_step  # noqa: E402
from audioprobe.metamers.listening_steps import listening_package_step  # noqa: E402
from audioprobe.metamers.pass_rates import pass_rates_step  # noqa: E402

RATE = 16000
CLIPS = 20
NULL = {"seed": 0, "pairs": 100, "threshold": "max"}


class ToyNetwork:
    """Two linear layers of a waveform: ``own`` = x W2, whose random pairs of natural clips are barely
    correlated (null maximum about 0.4), and ``shared`` = x W1 + c, whose constant part c makes every pair
    of clips correlate (null maximum about 0.97). ``cube`` = (x^3) W1 * 1000 overflows once the waveform is
    large. Every clip is predicted as class 0."""

    framework = "tensorflow"

    def __init__(self, layers):
        rng = np.random.default_rng(0)
        self.layers = list(layers)
        self.w1 = tf.constant((rng.standard_normal((RATE, 32)) / np.sqrt(RATE)).astype(np.float32))
        self.w2 = tf.constant((rng.standard_normal((RATE, 32)) / np.sqrt(RATE)).astype(np.float32))
        self.c = tf.constant((0.4 * rng.standard_normal(32)).astype(np.float32))

    def forward(self, waveforms, relu_gradient="true"):
        values = {"own": lambda: waveforms @ self.w2, "shared": lambda: waveforms @ self.w1 + self.c,
                  "cube": lambda: (waveforms ** 3) @ self.w1 * 1000.0}
        return {layer: values[layer]() for layer in self.layers}

    def predict(self, waveforms):
        return np.zeros(len(waveforms), np.int64)


def write_waveforms(folder):
    """20 one-second noise clips, words yes/no, five speakers; speakers s0 and s1 are the test split."""
    rng = np.random.default_rng(1)
    waves = (0.1 * rng.standard_normal((CLIPS, RATE))).astype(np.float32)
    clip_id = [f"{'yes' if i % 2 == 0 else 'no'}_s{i % 5}_{i:02d}" for i in range(CLIPS)]
    word = ["yes" if i % 2 == 0 else "no" for i in range(CLIPS)]
    group = [f"s{i % 5}" for i in range(CLIPS)]
    path = folder / "waveforms.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("waveforms", data=waves)
        for key, values in (("clip_id", clip_id), ("word", word), ("group", group)):
            file.create_dataset(key, data=np.array(values, dtype=object), dtype=STRING)
        file.create_dataset("silent", data=np.zeros(CLIPS, bool))
        file.create_dataset("clipped", data=np.zeros(CLIPS, bool))
        file.attrs["complete"] = True
    split = pd.DataFrame({"clip_id": clip_id, "group": group,
                          "split": ["test" if g in ("s0", "s1") else "val" if g == "s2" else "train" for g in group]})
    split.to_csv(folder / "split.csv", index=False)
    return path, folder / "split.csv", waves, clip_id, word


def write_made(path, metamers, targets, clip_id, word, layers):
    with h5py.File(path, "w") as file:
        file.create_dataset("metamers", data=metamers.astype(np.float32))
        file.create_dataset("loss", data=np.ones((2, len(layers), len(clip_id)), np.float32))
        file.create_dataset("targets", data=targets.astype(np.float32))
        for key, values in (("clip_id", clip_id), ("word", word), ("layers", layers)):
            file.create_dataset(key, data=np.array(values, dtype=object), dtype=STRING)
        file.attrs["complete"] = True


def outputs_in(folder):
    """validate_step's outputs in ``folder``, as its keyword arguments."""
    return {"wav_dir": folder / "wav", "null_csv": folder / "null.csv", "figure_png": folder / "metamers.png",
            "validation_csv": folder / "validation.csv"}


@pytest.fixture
def use_network(monkeypatch):
    def use(net):
        for module in (synthesis_step, validation_step):
            monkeypatch.setattr(module, "load_network", lambda settings, samples, threads, **paths: net)
    return use


def test_each_layers_null_comes_from_that_layer(tmp_path, use_network):
    """Planted: at ``own`` each metamer is its target plus noise (Pearson about 0.9 with the target:
    above own's null, about 0.4, but below shared's, about 0.97); at ``shared`` each "metamer" is three
    times another clip (about 0.77: above own's null, within shared's). With each layer's own null the
    ``own`` metamers pass and the ``shared`` ones fail; a null taken from the other layer (or one layer's
    threshold used for both) turns both verdicts round, and the thresholds no longer equal the maximum of
    the layer's rows in null.csv."""
    waveforms, _, waves, clip_id, word = write_waveforms(tmp_path)
    rng = np.random.default_rng(2)
    targets = [0, 1, 5, 6]
    own = waves[targets] + 0.05 * rng.standard_normal((4, RATE))
    shared = 3 * waves[[10, 11, 15, 16]]
    write_made(tmp_path / "metamers.h5", np.stack([shared, own]), waves[targets], [clip_id[i] for i in targets],
               [word[i] for i in targets], ["shared", "own"])
    net = ToyNetwork(["shared", "own"])
    use_network(net)
    out = outputs_in(tmp_path / "toy")
    validation_step.validate_step(metamers_path=tmp_path / "metamers.h5", waveforms_path=waveforms, **out,
                                  network={"kind": "toy"}, null=NULL, net_name="toy", threads=1)
    table = read_csv(out["validation_csv"])
    null = read_csv(out["null_csv"])

    assert null.groupby("layer").size().to_dict() == {"own": NULL["pairs"], "shared": NULL["pairs"]}
    for layer, rows in table.groupby("layer"):
        for measure in validation.MEASURES:
            assert (rows[f"null_{measure}"] == null.loc[null.layer == layer, measure].max()).all(), (layer, measure)
    # the null of each layer is made of that layer's pairs of natural clips, and the two differ as planted
    acts = {layer: np.asarray(value) for layer, value in net.forward(tf.constant(waves)).items()}
    for layer in ("own", "shared"):
        pairs = np.corrcoef(acts[layer])[np.triu_indices(CLIPS, 1)]
        rows = null[null.layer == layer]
        assert np.abs(rows["pearson"].to_numpy()[:, None] - pairs[None, :]).min(axis=1).max() < 1e-5, layer
    assert null.loc[null.layer == "own", "pearson"].max() < 0.6 and null.loc[null.layer == "shared", "pearson"].min() > 0.85

    verdict = table.set_index(["layer", "clip_id"])
    assert verdict.loc["own", "passed"].all() and verdict.loc["own", "reason"].isna().all()
    assert not verdict.loc["shared", "passed"].any()
    assert verdict.loc["shared", "reason"].str.startswith("spearman within null; pearson within null").all()
    # the planted similarities sit between the two layers' thresholds
    own_rows, shared_rows = verdict.loc["own"], verdict.loc["shared"]
    assert (own_rows["pearson"] > own_rows["null_pearson"]).all()
    assert (own_rows["pearson"] < shared_rows["null_pearson"].iloc[0]).all()
    assert (shared_rows["pearson"] > own_rows["null_pearson"].iloc[0]).all()


def test_a_diverged_metamer_is_kept_and_flagged_through_every_step(tmp_path, use_network):
    """A learning rate of 1000 makes the ``cube`` layer's synthesis overflow (NaN waveforms) while the
    ``own`` layer's stays finite. Nothing crashes: metamers.h5 keeps the NaN rows; validation lists every
    diverged metamer as failed with reason "diverged" and no WAV; the pass rates count it; the listening
    package plays the natural clip in its place (swapped). Every WAV written is 16-bit PCM at 16 kHz and one
    second long, the loud metamers scaled down rather than clipped."""
    waveforms, split, _, clip_id, _ = write_waveforms(tmp_path)
    net = ToyNetwork(["own", "cube"])
    use_network(net)
    metamers = tmp_path / "toy" / "metamers.h5"
    metamers.parent.mkdir()
    synthesis_step.synthesise_step(waveforms_path=waveforms, split_path=split, out_h5=metamers, network={"kind": "toy"},
                                   synthesis_settings={"iterations": 10, "learning_rate": 1000.0, "log_every": 5},
                                   targets={"per_word": 2, "seed": 0}, threads=1)
    made = synthesis_step.read_metamers(metamers)
    assert made["layers"] == ["own", "cube"] and made["metamers"].shape == (2, 4, RATE)
    assert set(made["clip_id"]) <= {c for c in clip_id if "_s0_" in c or "_s1_" in c}  # test speakers only
    assert np.isfinite(made["metamers"][0]).all() and not np.isfinite(made["metamers"][1]).any()
    assert np.isnan(made["loss"][-1, 1]).all() and np.isfinite(made["loss"][-1, 0]).all()
    assert np.abs(made["metamers"][0]).max() > 1  # loud: the WAV must scale it down

    out = outputs_in(tmp_path / "toy")
    validation_step.validate_step(metamers_path=metamers, waveforms_path=waveforms, **out, network={"kind": "toy"},
                                  null=NULL, net_name="toy", threads=1)
    table = read_csv(out["validation_csv"])
    assert len(table) == 8
    cube, own = table[table.layer == "cube"], table[table.layer == "own"]
    assert cube["diverged"].all() and not cube["passed"].any() and (cube["reason"] == "diverged").all()
    assert cube["wav"].isna().all() and cube[["spearman", "pearson", "snr_db"]].isna().all().all()
    assert not own["diverged"].any() and (own["wav"] == [f"own/{c}.wav" for c in own["clip_id"]]).all()

    wavs = out["wav_dir"]
    written = sorted(p.relative_to(wavs).as_posix() for p in wavs.rglob("*.wav"))
    assert written == sorted([f"natural/{c}.wav" for c in made["clip_id"]] + list(own["wav"]))
    for path in wavs.rglob("*.wav"):
        info = sf.info(path)
        assert (info.format, info.subtype, info.samplerate, info.frames, info.channels) == \
               ("WAV", "PCM_16", RATE, RATE, 1), path
    for index, clip in enumerate(made["clip_id"]):
        heard, _ = sf.read(wavs / "own" / f"{clip}.wav")
        metamer = made["metamers"][0, index]
        assert np.abs(heard).max() == pytest.approx(0.99, abs=1e-4)  # scaled to just below full scale
        np.testing.assert_allclose(heard, metamer / np.abs(metamer).max() * 0.99, atol=1 / 2 ** 15)

    pass_rates_step(validation_paths=[out["validation_csv"]], out_csv=tmp_path / "pass_rates.csv")
    rates = read_csv(tmp_path / "pass_rates.csv").set_index("layer")
    assert rates.loc["cube", ["metamers", "passed", "diverged"]].tolist() == [4, 0, 4]
    assert rates.loc["own", ["metamers", "diverged"]].tolist() == [4, 0]

    package = tmp_path / "listening"
    listening_package_step(validation_paths=[out["validation_csv"]], wav_dirs=[wavs], waveforms_path=waveforms,
                           out_dir=package, settings={"participants": 3, "catch_trials": 1, "seed": 0})
    trials = read_csv(package / "trials.csv")
    cube_trials = trials[trials.layer == "cube"]
    assert len(cube_trials) > 0 and cube_trials["swapped"].all()
    assert (cube_trials["swap_reason"] == "failed validation").all()
    assert all(src.endswith(f"natural/{c}.wav") for src, c in zip(cube_trials["source"], cube_trials["clip_id"]))
