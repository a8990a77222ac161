"""Study 3 pieces: neuron pooling and top clips, concept files, the pruning mask, pruning selections, the
last-layer and cluster evaluations, and the LLM cache that makes a rerun free."""

import copy

import numpy as np
import pandas as pd
import pytest

from audioprobe.dissect import neurons
from audioprobe.dissect.cache import TextCache
from audioprobe.dissect.evaluation import (last_layer_accuracy, pruning_selections, uninterpretable_share)
from audioprobe.dissect.steps import channel_masks, fit_head, read_concepts


# --- neurons ---------------------------------------------------------------------------------------------


def test_pooling_reduces_everything_but_the_channel():
    x = np.arange(2 * 2 * 3 * 2 * 4, dtype=float).reshape(2, 2, 3, 2, 4)  # clips, patch, time, freq, channel
    assert np.allclose(neurons.pool_neurons(x, "mean"), x.mean(axis=(1, 2, 3)))
    assert np.allclose(neurons.pool_neurons(x, "max"), x.max(axis=(1, 2, 3)))
    assert np.allclose(neurons.pool_neurons(x, "first"), x[:, 0, 0].mean(axis=1))
    with pytest.raises(ValueError, match="dissect.pool"):
        neurons.pool_neurons(x, "median")


def test_top_and_bottom_clips_are_ordered_and_ties_go_to_the_earlier_clip():
    values = np.array([[1.0, 5.0], [3.0, 5.0], [2.0, 0.0], [0.0, 1.0], [3.0, 2.0]])
    top, bottom = neurons.top_and_bottom(values, 2)
    assert top.tolist() == [[1, 4], [0, 1]]
    assert bottom.tolist() == [[3, 0], [2, 3]]
    with pytest.raises(ValueError, match="at least 6 probe clips"):
        neurons.top_and_bottom(values, 3)


def test_neuron_sample_is_seeded_per_layer():
    a = neurons.sample_neurons(512, 3, 0, "layer8")
    assert a.tolist() == neurons.sample_neurons(512, 3, 0, "layer8").tolist() and len(set(a)) == 3
    assert a.tolist() != neurons.sample_neurons(512, 3, 0, "layer9").tolist()
    assert neurons.sample_neurons(4, "all", 0, "x").tolist() == [0, 1, 2, 3]


# --- concepts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [("dog\n\nrain\n", "line 2 is empty"),
                                           ("dog\nrain\nDog\n", "line 3: 'Dog' repeats line 1")])
def test_a_concept_file_with_empty_lines_or_duplicates_is_refused(tmp_path, text, message):
    path = tmp_path / "concepts.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_concepts(path)


def test_a_clean_concept_file_is_read_in_order(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("dog\nsea_waves\nrain\n")
    assert read_concepts(path) == ["dog", "sea_waves", "rain"]


# --- the head ---------------------------------------------------------------------------------------------


def test_a_two_class_head_has_one_output_neuron_per_class_with_logistic_probabilities():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1, 1, (40, 3)), rng.normal(1, 1, (40, 3))])
    labels = ["metal"] * 40 + ["wood"] * 40
    head = fit_head(x, labels, {"C": 1.0, "max_iter": 500})
    assert head.classes == ["metal", "wood"] and head.coef.shape == (2, 3)
    from sklearn.linear_model import LogisticRegression

    reference = LogisticRegression(C=1.0, max_iter=500, random_state=0).fit(x, np.array(labels) == "wood")
    assert np.allclose(head.probabilities(x)[:, 1], reference.predict_proba(x)[:, 1], atol=1e-9)


# --- pruning --------------------------------------------------------------------------------------------------


def test_channel_masks_switch_off_exactly_the_chosen_neurons():
    masks = channel_masks([("layer2", 1), ("layer2", 3), ("layer5", 0)], {"layer2": 4, "layer5": 2})
    assert masks["layer2"].tolist() == [1, 0, 1, 0] and masks["layer5"].tolist() == [0, 1]


def test_masking_a_channel_equals_zeroing_its_kernel_and_bias(yamnet_tflite):
    """The pruning mask does what AND's prune.custom_from_mask does: zero the channel's weights and bias."""
    from audioprobe.models.yamnet import Yamnet
    from audioprobe.models.yamnet_weights import load_weights

    weights = load_weights(str(yamnet_tflite))
    model = Yamnet(weights)
    rng = np.random.default_rng(1)
    wave = (0.1 * rng.standard_normal((2, 15600))).astype(np.float32)
    start = model.activations(wave, ["layer3"])["layer3"]
    pruned = {"layer5": [7, 100], "layer9": [3]}
    masks = channel_masks([(layer, c) for layer, cs in pruned.items() for c in cs], {"layer5": 256, "layer9": 512})
    masked = model.forward_from("layer3", start, masks)

    zeroed = copy.deepcopy(weights)
    for layer, channels in pruned.items():
        index = int(layer[5:]) - 1
        kernel, bias = (np.array(v) for v in zeroed.layers[index]["pointwise"])
        kernel[..., channels], bias[channels] = 0.0, 0.0
        zeroed.layers[index]["pointwise"] = (kernel, bias)
    reference = Yamnet(zeroed).forward_from("layer3", start)
    assert np.allclose(masked["embedding"], reference["embedding"], atol=1e-6)
    assert not np.allclose(masked["embedding"], model.forward_from("layer3", start)["embedding"], atol=1e-3)
    with pytest.raises(ValueError, match="cannot mask layer2"):
        model.forward_from("layer3", start, {"layer2": np.ones(64)})


def _tops(layer_tops):
    return {f"{layer}/db/cos3": np.asarray(top) for layer, top in layer_tops.items()}


def test_pruning_selections_match_classes_by_top_concepts_and_whole_words():
    concepts = ["rain", "train", "dog"]
    tops = _tops({"layer1": [[0, 2, 1], [1, 0, 2], [2, 1, 0], [2, 0, 1]]})
    open_table = pd.DataFrame({"layer": ["layer1", "layer1", "layer1"], "neuron": [0, 1, 2],
                               "nouns": ["rain drop", "train", "trainer"]})
    settings = {"methods": ["db"], "pruning": {"top": 1, "db_function": "cos3", "tab_function": "soft_wpmi",
                                               "seed": 20}}
    chosen = pruning_selections(["rain", "train"], concepts, tops, open_table, ["layer1"], settings)
    assert chosen[("db", "rain")] == [("layer1", 0)] and chosen[("db", "train")] == [("layer1", 1)]
    # Whole words: "rain" does not prune the "train" neuron, and "trainer" is not "train".
    assert chosen[("ocp", "rain")] == [("layer1", 0)] and chosen[("ocp", "train")] == [("layer1", 1)]
    assert len(chosen[("random", "rain")]) == 1
    assert ("tab", "rain") not in chosen


# --- last layer and clusters --------------------------------------------------------------------------------


class WordVectors:
    """A deterministic encoder for tests: one axis per known word."""

    words = ["dog", "rain", "sea waves", "cat"]

    def encode(self, texts):
        return np.array([[float(t == w) for w in self.words] for t in texts])


def test_last_layer_accuracy_counts_top1_top5_and_cosine_and_skips_unnamed_neurons():
    rows = []
    for neuron, cls, tops in [(0, "dog", ["dog", "cat", "", "", ""]), (1, "rain", ["sea_waves", "rain", "", "", ""]),
                              (2, "sea_waves", ["", "", "", "", ""])]:
        rows.append({"layer": "head", "neuron": neuron, "class": cls, "method": "db", "function": "cos",
                     **{f"top{i}": t for i, t in enumerate(tops, 1)}})
    closed = pd.DataFrame(rows)
    icl = pd.DataFrame({"layer": ["head"] * 3, "neuron": [0, 1, 2], "concept": ["cat", "rain", "sea_waves"]})
    table = last_layer_accuracy(closed, icl, ["dog", "rain", "sea_waves"], ["dog", "rain", "sea waves", "cat"],
                                WordVectors()).set_index("method")
    assert table.loc["db", "neurons"] == 2 and table.loc["db", "skipped"] == 1
    assert (table["not_in_concepts"] == 0).all()
    assert table.loc["db", "top1_accuracy"] == 0.5 and table.loc["db", "top5_accuracy"] == 1.0
    assert table.loc["db", "cosine"] == 0.5  # dog-dog 1, sea waves-rain 0
    assert table.loc["icl", "top1_accuracy"] == pytest.approx(2 / 3)


def test_output_neurons_of_classes_missing_from_the_concept_set_are_left_out_and_counted(caplog):
    closed = pd.DataFrame([{"layer": "head", "neuron": n, "class": cls, "method": "db", "function": "cos",
                            "top1": top, **{f"top{i}": "" for i in range(2, 6)}}
                           for n, cls, top in [(0, "dog", "dog"), (1, "rain", "dog"), (2, "cat", "cat")]])
    icl = pd.DataFrame({"layer": ["head"] * 3, "neuron": [0, 1, 2], "concept": ["dog", "dog", "dog"]})
    table = last_layer_accuracy(closed, icl, ["dog", "rain", "cat"], ["dog", "cat"], WordVectors())
    table = table.set_index("method")
    # rain cannot be named: without it db is right on both dog and cat, and icl on dog only.
    assert table.loc["db", "not_in_concepts"] == 1 and table.loc["db", "neurons"] == 2
    assert table.loc["db", "top1_accuracy"] == 1.0 and table.loc["icl", "top1_accuracy"] == 0.5
    assert "classes missing from the concept set" in caplog.text and "rain" in caplog.text


def test_a_neuron_is_uninterpretable_when_no_cluster_holds_enough_of_its_top_clips():
    clip_clusters = [{0}, {0, 1}, {1}, {2}, {2}]
    top = np.array([[0, 1, 2], [2, 3, 4], [0, 3, 4]])
    constant = np.array([False, False, True])
    # neuron 0: cluster 0 holds clips 0 and 1, cluster 1 holds 1 and 2 -> at most 2 shared
    # neuron 1: cluster 2 holds clips 3 and 4 -> 2 shared; neuron 2 is constant and not counted
    assert uninterpretable_share(top, constant, clip_clusters, 2) == (0.0, 2)
    assert uninterpretable_share(top, constant, clip_clusters, 3) == (1.0, 2)


# --- the LLM cache ---------------------------------------------------------------------------------------------


def test_the_text_cache_answers_repeated_keys_and_counts(tmp_path):
    cache = TextCache(tmp_path)
    made = []
    make = lambda: made.append(1) or "a summary"  # noqa: E731
    assert cache.get_or_make({"prompt": "p", "model": "m"}, make) == "a summary"
    again = TextCache(tmp_path)
    assert again.get_or_make({"model": "m", "prompt": "p"}, make) == "a summary"  # key order does not matter
    assert len(made) == 1 and again.hits == 1
    again.get_or_make({"model": "m", "prompt": "q"}, make)
    assert len(made) == 2


@pytest.mark.llm
def test_a_rerun_with_unchanged_prompts_makes_no_llm_call_and_loads_no_model(tmp_path):
    pytest.importorskip("llama_cpp")
    from audioprobe.llm import CachedLLM

    settings = {"gguf": None, "seed": 0, "context": 512, "threads": 2, "repeat_penalty": 1.3}
    prompt = "Word: loud\nDescribes a sound: yes\n\nWord: quiet\nDescribes a sound:"
    first = CachedLLM(settings, TextCache(tmp_path / "llm"), model_cache_dir=tmp_path / "models")
    reply = first(prompt, max_tokens=3, stop=("\n",))
    assert first.calls == 1 and first.tokens >= 1 and isinstance(reply, str)
    rerun = CachedLLM(settings, TextCache(tmp_path / "llm"), model_cache_dir=tmp_path / "models")
    assert rerun(prompt, max_tokens=3, stop=("\n",)) == reply
    assert rerun.calls == 0 and rerun._model is None and rerun.cache.hits == 1
    changed = CachedLLM({**settings, "repeat_penalty": 1.0}, TextCache(tmp_path / "llm"),
                        model_cache_dir=tmp_path / "models")
    changed(prompt, max_tokens=3, stop=("\n",))
    assert changed.calls == 1
