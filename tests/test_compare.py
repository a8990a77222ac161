"""The comparison branch in the tiny run: CKA of YAMNet with itself, RSA of its layers with the label RDMs, and
what adding a model to a comparison reruns."""

import numpy as np
import pytest

from audioprobe.io.atomic import read_csv
from tests import snakemake_cli
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
