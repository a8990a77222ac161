"""The comparison branch in the tiny run: CKA of YAMNet with itself, RSA of its layers with the label RDMs, what
adding a model to a comparison reruns, and a planted target's RSA and encoding."""

import h5py
import numpy as np
import pytest

from audioprobe.io.atomic import read_csv
from audioprobe.io.store import LayerFile
from tests import snakemake_cli
from tests.conftest import copy_run
from tests.snakemake_cli import scheduled

COMPARE = "results/compare/maas-synth"
COMPARE_RULES = ("cka_pair", "label_rsa", "layer_profiles")
LAYERS = [f"layer{i}" for i in range(1, 15)]


@pytest.mark.slow
def test_cka_of_yamnet_with_itself_is_one_on_the_diagonal_and_symmetric(tiny_run):
    table = read_csv(tiny_run / f"{COMPARE}/cka/yamnet/yamnet.csv")
    matrix = table.pivot(index="layer_a", columns="layer_b", values="cka").loc[LAYERS, LAYERS].to_numpy()
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-9)
    assert (matrix[~np.eye(14, dtype=bool)] < 1.0 - 1e-6).all() and set(table["clips"]) == {36}
    assert (tiny_run / f"{COMPARE}/cka/yamnet/yamnet.png").stat().st_size > 0


@pytest.mark.slow
def test_label_rsa_scores_every_layer_against_both_labels_with_intervals(tiny_run):
    table = read_csv(tiny_run / f"{COMPARE}/label_rsa/yamnet.csv")
    assert table[table.label == "material"]["layer"].tolist() == LAYERS
    assert set(table["label"]) == {"material", "action"} and set(table["groups"]) == {12}
    assert table["depth"].iloc[0] == 0 and table["depth"].iloc[-1] == 1
    assert (table["ci_low"] <= table["score"]).all() and (table["score"] <= table["ci_high"]).all()
    assert (tiny_run / f"{COMPARE}/label_rsa/profiles.png").stat().st_size > 0


@pytest.mark.slow
def test_adding_a_model_to_a_comparison_computes_only_its_comparisons(tiny_run, yamnet_tflite):
    """A second network (YAMNet again, under another name) joins: its pairs with itself and with YAMNet and its
    label RSA are new, and the profile figure is redrawn; YAMNet's own CKA and RSA files stay."""
    second = {"kind": "yamnet", "weights": str(yamnet_tflite),
              "class_map": str(yamnet_tflite.with_name("yamnet_class_map.csv"))}
    override = {"models": {"second": second},
                "activations": {"runs": [{"model": "yamnet", "dataset": "maas-synth"},
                                         {"model": "second", "dataset": "maas-synth"}]},
                "compare": {"runs": [{"dataset": "maas-synth", "models": ["yamnet", "second"]}]}}
    jobs = scheduled(snakemake_cli.run(tiny_run, "-n", config=override, weights=yamnet_tflite))
    assert {rule: n for rule, n in jobs.items() if rule in COMPARE_RULES} == \
        {"cka_pair": 2, "label_rsa": 1, "layer_profiles": 1}
    assert jobs["extract_activations_second"] == 1 and "extract_activations_yamnet" not in jobs


@pytest.mark.slow
def test_a_target_dataset_adds_rsa_and_encoding_with_noise_ceilings_and_nothing_else(tiny_run, yamnet_tflite,
                                                                                        tmp_path):
    """Planted responses: six channels read linearly from YAMNet's pooled layer8, three noisy repetitions."""
    run = copy_run(tiny_run, tmp_path / "run")
    with LayerFile(run / "results/activations/yamnet/maas-synth/pooled/layer8.h5") as layer:
        features, clip_ids = layer.activations[()], layer.clip_ids
    rng = np.random.default_rng(0)
    signal = features @ rng.normal(size=(features.shape[1], 6))
    with h5py.File(tmp_path / "responses.h5", "w") as handle:
        handle["stimulus_id"] = np.asarray(clip_ids, dtype="S")
        handle["responses"] = signal[:, :, None] + rng.normal(0, signal.std(), (len(clip_ids), 6, 3))
    override = {"datasets": {"brain": {"kind": "target", "stimuli": "maas-synth",
                                       "responses": str(tmp_path / "responses.h5"),
                                       "axes": ["stimuli", "channels", "repetitions"]}},
                "compare": {"runs": [{"dataset": "maas-synth", "models": ["yamnet"], "targets": ["brain"]}],
                            "target_rsa": {"bootstrap": 20},
                            "encoding": {"splits": 3, "inner_folds": 4, "alpha_exponents": [-2, 8]}}}
    result = snakemake_cli.run(run, config=override, weights=yamnet_tflite)
    assert scheduled(result) == {"ingest_target": 1, "target_rsa": 1, "target_encoding": 1, "target_profiles": 1,
                                 "all": 1}
    rsa = read_csv(run / f"{COMPARE}/brain/rsa/yamnet.csv").set_index("layer")
    assert rsa.index.tolist() == LAYERS and set(rsa["rdms_over"]) == {"repetitions"}
    assert (0 < rsa["ceiling_low"]).all() and (rsa["ceiling_low"] < rsa["ceiling_high"]).all()
    encoding = read_csv(run / f"{COMPARE}/brain/encoding/yamnet.csv").set_index("layer")
    # On 36 clips (18 to train) YAMNet's neighbouring layers predict layer8's read-out about as well as layer8
    # does; the ends of the network do not.
    corrected = encoding["r2_corrected"]
    assert corrected.idxmax() in {"layer7", "layer8", "layer9"} and corrected["layer8"] > 0.5
    assert corrected["layer8"] > 5 * max(corrected["layer1"], corrected["layer14"])
    assert (run / f"{COMPARE}/brain/profiles.png").stat().st_size > 0
