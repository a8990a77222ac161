"""Study 2's keyword networks as a model kind (kind: keyword): the trained classifier behind its front end."""

import json

import numpy as np
import pytest

from tests.conftest import require

tf = require("tensorflow")

from audioprobe.metamers import architectures, frontends  # noqa: E402
from audioprobe.metamers import training as fit  # noqa: E402
from audioprobe.models import load, registry  # noqa: E402

FRONTEND = {"kind": "cochleagram", "n": 10, "sample_factor": 1, "kernel_taps": 161, "envelope_oversampling": 4}


@pytest.fixture(params=["conv2d", "grouped_temporal"])
def trained(request, tmp_path, monkeypatch):
    """A keyword classifier saved where rule train_keyword_model writes it, with its evaluation record."""
    monkeypatch.chdir(tmp_path)
    arch = request.param
    frontend = frontends.build_frontend(FRONTEND)
    shape = frontend.output_shape(16000)
    classifier = architectures.build_classifier(arch, shape, 3, groups=2, sizes="seed", seed=0)
    entry = {"kind": "keyword", "arch": arch, "dataset": "words"}
    weights = registry.spec_of("keyword").weights_file("kw", entry)
    fit.save_weights(classifier, weights)
    (tmp_path / weights).with_name("evaluation.json").write_text(json.dumps(
        {"arch": arch, "class_names": ["no", "yes", "go"], "input_shape": list(shape), "test": {}}))
    config = {"models": {"kw": entry}, "metamers": {"frontend": FRONTEND, "groups": 2, "sizes": "seed"},
              "datasets": {"words": {"clip_seconds": 1.0}}}
    return classifier, frontend, registry.completed(entry, config), weights


def waves(clips=2, samples=16000, seed=0):
    return (np.random.default_rng(seed).standard_normal((clips, samples)) * 0.05).astype(np.float32)


def test_the_adapter_is_the_classifier_on_the_front_end(trained):
    classifier, frontend, entry, weights = trained
    adapter = load("kw", entry, weights)
    x = waves()
    expected = classifier(frontend(tf.constant(x)), training=False).numpy()
    acts = adapter.activations(x, list(registry.layer_names(entry)))
    np.testing.assert_allclose(acts["logits"].reshape(2, -1), expected, atol=1e-5)
    # the input representation is the classifier's Keras Input: continuing from it runs the whole classifier
    for layer in ("input_representation", "conv_0", "conv_1", "dense"):
        logits = adapter.forward_from(layer, acts[layer])["logits"]
        np.testing.assert_allclose(logits.reshape(2, -1), expected, atol=1e-4)
    assert acts["input_representation"].shape[-1] == frontend.output_shape(16000)[0]  # bands are its channels


def test_clips_of_another_length_are_cut_or_padded_to_the_trained_length(trained):
    _, _, entry, weights = trained
    adapter = load("kw", entry, weights)
    x = waves(samples=17000)
    longer = adapter.activations(x, ["logits"])["logits"]
    np.testing.assert_allclose(longer, adapter.activations(x[:, :16000], ["logits"])["logits"], atol=1e-6)
    shorter = adapter.activations(x[:, :15600], ["logits"])["logits"]
    padded = np.pad(x[:, :15600], ((0, 0), (0, 400)))
    np.testing.assert_allclose(shorter, adapter.activations(padded, ["logits"])["logits"], atol=1e-6)


def test_the_entry_inherits_study_2s_settings_and_names_its_weights(trained):
    _, _, entry, weights = trained
    assert entry["frontend"] == FRONTEND and entry["groups"] == 2 and entry["clip_seconds"] == 1.0
    assert weights.endswith("results/metamers/words/models/" + entry["arch"] + "/weights.weights.h5")
    assert registry.spec_of("keyword").framework == "tensorflow"
