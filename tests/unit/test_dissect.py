"""Study 3 pieces: neuron pooling and top clips, concept files, the linear head, the pruning mask, pruning
selections, the last-layer and cluster evaluations, and the LLM cache that makes a rerun free."""

import copy
import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import require

from audioprobe.dissect import neurons
from audioprobe.dissect.cache import TextCache
from audioprobe.dissect.evaluation import (_ablated, caption_clusters, caption_sentences, last_layer_accuracy,
                                           pos_ablation, pos_ablation_figure, pruning_effects, pruning_figure,
                                           pruning_selections, uninterpretable_share)
from audioprobe.dissect.neurons import channel_masks
from audioprobe.dissect.probing import Head, fit_head, head_step
from audioprobe.dissect.readers import Neurons, read_concepts, read_heldout


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


class MeanEmbedding:
    """A stand-in network whose embedding, continued from any layer, is that layer's values (averaged over
    its positions by the head step, as YAMNet's global pooling does)."""

    name = "planted"

    def forward_from(self, layer, activations, channel_masks=None):
        values = np.asarray(activations, dtype=np.float64)
        return {"embedding": values.reshape(len(values), -1, values.shape[-1])}


def test_the_head_step_fits_on_the_probe_clips_only_and_writes_its_outputs(tmp_path):
    """Twelve clips of YAMNet's layer14 shape whose channel 0 is +1 for metal and -1 for wood on the eight probe
    clips, and the other way round on the four held-out ones. A head fitted on the probe clips only is right on
    every probe clip and wrong on every held-out one; one fitted on all clips could not be both. Its logits over
    the probe clips, in the split's order, are the head's neuron file, named by class."""
    from audioprobe.io.atomic import write_csv
    from audioprobe.io.store import write_arrays

    ids = [f"c{i:02d}" for i in range(12)]
    material = ["metal" if i % 2 == 0 else "wood" for i in range(12)]
    split = ["heldout" if i >= 8 else "probe" for i in range(12)]
    values = np.zeros((12, 1, 3, 2, 1024), np.float32)
    for i in range(12):
        sign = 1.0 if material[i] == "metal" else -1.0
        values[i, ..., 0] = sign if split[i] == "probe" else -sign
    write_arrays(tmp_path / "layer14.h5", {"activations": values}, clip_ids=ids, labels={"material": material},
                 attrs={"config": {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}, "layer": "layer14"})
    order = [3, 0, 7, 5, 1, 6, 2, 4, 11, 8, 10, 9]  # the split lists the clips in another order
    write_csv(tmp_path / "split.csv", pd.DataFrame({"clip_id": [ids[i] for i in order],
                                                    "group": [f"g{i}" for i in order],
                                                    "split": [split[i] for i in order]}))
    settings = {"head": {"C": 1.0, "max_iter": 500}, "top_k": 2}
    paths = {"head_h5": tmp_path / "head.h5", "neurons_h5": tmp_path / "neurons_head.h5",
             "heldout_h5": tmp_path / "heldout_head.h5", "evaluation_json": tmp_path / "head.json"}
    head_step(layer_path=tmp_path / "layer14.h5", split_path=tmp_path / "split.csv", **paths, label="material",
              settings=settings, model=MeanEmbedding())

    evaluation = json.loads(paths["evaluation_json"].read_text())
    assert evaluation["classes"] == ["metal", "wood"] and evaluation["embedding_layer"] == "layer14"
    assert evaluation["accuracy"] == {"probe": 1.0, "heldout": 0.0}
    assert evaluation["clips"] == {"probe": 8, "heldout": 4}
    head = Head.load(paths["head_h5"])
    stored = Neurons(paths["neurons_h5"])
    probe = [ids[i] for i in order if split[i] == "probe"]
    assert stored.layer == "head" and stored.names == ["metal", "wood"] and stored.clip_ids == probe
    embedding = values[[ids.index(c) for c in probe]].reshape(8, -1, 1024).mean(axis=1)
    np.testing.assert_allclose(stored.values, head.logits(embedding), rtol=1e-6)
    is_metal = np.array([material[ids.index(c)] == "metal" for c in probe])
    assert ((stored.values[:, 0] > stored.values[:, 1]) == is_metal).all()
    assert stored.sampled.tolist() == [0, 1]  # every output neuron is summarised
    # the held-out logits, on which the head's explanations are scored: the same head, the held-out clips
    (heldout,) = read_heldout([paths["heldout_h5"]]).values()
    kept = [ids[i] for i in order if split[i] == "heldout"]
    assert heldout.layer == "head" and heldout.clip_ids == kept and heldout.labels["material"] == [
        material[ids.index(c)] for c in kept]
    embedding = values[[ids.index(c) for c in kept]].reshape(4, -1, 1024).mean(axis=1)
    np.testing.assert_allclose(heldout.values, head.logits(embedding), rtol=1e-6)
    is_metal = np.array([material[ids.index(c)] == "metal" for c in kept])
    assert ((heldout.values[:, 0] > heldout.values[:, 1]) != is_metal).all()  # channel 0 flips on these clips

    with pytest.raises(ValueError, match="dissect.label: .* has no label 'word'"):
        head_step(layer_path=tmp_path / "layer14.h5", split_path=tmp_path / "split.csv", **paths, label="word",
                  settings=settings, model=MeanEmbedding())


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
                                               "seed": 20, "random_seeds": 2, "pool": "summarised"}}
    chosen = pruning_selections(["rain", "train"], concepts, tops, open_table, ["layer1"], settings)
    assert chosen[("db", "rain")] == [[("layer1", 0)]] and chosen[("db", "train")] == [[("layer1", 1)]]
    # Whole words: "rain" does not prune the "train" neuron, and "trainer" is not "train".
    assert chosen[("ocp", "rain")] == [[("layer1", 0)]] and chosen[("ocp", "train")] == [[("layer1", 1)]]
    assert [len(draw) for draw in chosen[("random_db", "rain")]] == [1, 1]
    assert [len(draw) for draw in chosen[("random_ocp", "train")]] == [1, 1]
    assert ("tab", "rain") not in chosen and ("random_tab", "rain") not in chosen


def test_each_strategy_has_a_random_baseline_of_its_own_count_from_the_shared_pool():
    concepts = ["rain", "dog", "wind"]
    # Six neurons per layer; only 0-3 of layer1 and 1, 4 of layer2 are summarised: the candidate pool.
    tops = {"layer1/db/cos3": [[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 1, 0], [0, 1, 2], [0, 1, 2]],
            "layer2/db/cos3": [[0, 1, 2], [0, 1, 2], [1, 2, 0], [2, 1, 0], [0, 1, 2], [2, 0, 1]]}
    tops.update({key.replace("db/cos3", "tab/soft_wpmi"): np.roll(top, 1, axis=1) for key, top in tops.items()})
    tops = {key: np.asarray(top) for key, top in tops.items()}
    open_table = pd.DataFrame({"layer": ["layer1"] * 4 + ["layer2"] * 2 + ["head"],
                               "neuron": [0, 1, 2, 3, 1, 4, 0],
                               "nouns": ["dog", "rain", "wind rain", "", "rain", "", "rain"]})
    settings = {"methods": ["db", "tab"], "pruning": {"top": 1, "db_function": "cos3", "tab_function": "soft_wpmi",
                                                      "seed": 20, "random_seeds": 1, "pool": "summarised"}}
    chosen = pruning_selections(["rain", "dog"], concepts, tops, open_table, ["layer1", "layer2"], settings)
    chosen = {key: draws[0] for key, draws in chosen.items()}  # one draw each
    pool = {("layer1", 0), ("layer1", 1), ("layer1", 2), ("layer1", 3), ("layer2", 1), ("layer2", 4)}
    # db: top-1 "rain" among the pool only (layer1 4 and 5, layer2 0 are not summarised, the head not pruned)
    assert chosen[("db", "rain")] == [("layer1", 0), ("layer1", 1), ("layer2", 1), ("layer2", 4)]
    assert chosen[("tab", "rain")] == [("layer1", 3)]                 # rolled tops: rain first only there
    assert chosen[("ocp", "rain")] == [("layer1", 1), ("layer1", 2), ("layer2", 1)]
    for strategy in ("db", "tab", "ocp"):
        for name in ("rain", "dog"):
            matched = chosen[(f"random_{strategy}", name)]
            assert len(matched) == len(chosen[(strategy, name)]), (strategy, name)
            assert set(matched) <= pool and len(set(matched)) == len(matched)
    assert chosen[("db", "dog")] == [("layer1", 2)] and len(chosen[("random_db", "dog")]) == 1
    # Seeded: the same call draws the same neurons; another seed draws other ones for the 4-of-6 draw.
    again = pruning_selections(["rain", "dog"], concepts, tops, open_table, ["layer1", "layer2"], settings)
    assert {key: draws[0] for key, draws in again.items()} == chosen
    draws = {tuple(pruning_selections(["rain"], concepts, tops, open_table, ["layer1", "layer2"],
                                      {**settings, "pruning": {**settings["pruning"], "seed": seed}})
                   [("random_db", "rain")][0]) for seed in range(10)}
    assert len(draws) > 1
    # pool "all": db and its baseline range over every neuron of the pruned layers; OCP, which needs a
    # summary, is left out because layer1 4-5 and layer2 0, 2, 3, 5 have none.
    every = pruning_selections(["rain"], concepts, tops, open_table, ["layer1", "layer2"],
                               {**settings, "pruning": {**settings["pruning"], "pool": "all"}})
    every = {key: draws[0] for key, draws in every.items()}
    assert every[("db", "rain")] == [("layer1", 0), ("layer1", 1), ("layer1", 4), ("layer1", 5), ("layer2", 0),
                                     ("layer2", 1), ("layer2", 4)]
    assert len(every[("random_db", "rain")]) == 7 and not any(key[0].endswith("ocp") for key in every)


class PrunableNetwork:
    """A head whose true-class probability drops by the summed weight of the masked neurons, times
    (1 + the clip's class index), so every neuron set gives its own change."""

    def __init__(self, weights: dict, truth: list[str]):
        from types import SimpleNamespace

        self.weights = weights
        self.head = SimpleNamespace(classes=sorted(set(truth)))
        self.truth = np.searchsorted(self.head.classes, truth)
        self.baseline = self.outputs({})

    def off(self, neurons) -> float:
        return sum(self.weights[neuron] for neuron in neurons)

    def outputs(self, masks):
        masked = [(layer, n) for layer, mask in masks.items() for n in np.flatnonzero(mask == 0)]
        probability = 0.9 - self.off(masked) * (1 + self.truth)
        return {"probability": probability, "logit": np.log(probability / (1 - probability))}


def test_random_baselines_are_several_seeded_draws_and_the_tables_give_their_mean_and_sd():
    concepts = ["rain", "dog"]
    pool = [("layer1", n) for n in range(8)]
    tops = {"layer1/db/cos3": np.array([[0, 1], [0, 1], [0, 1], [1, 0], [1, 0], [1, 0], [1, 0], [1, 0]])}
    open_table = pd.DataFrame({"layer": ["layer1"] * 8, "neuron": range(8), "nouns": ["rain"] * 2 + [""] * 6})
    settings = {"methods": ["db"], "pruning": {"top": 1, "db_function": "cos3", "tab_function": "soft_wpmi",
                                               "seed": 20, "random_seeds": 5, "pool": "summarised"}}
    chosen = pruning_selections(concepts, concepts, tops, open_table, ["layer1"], settings)
    assert chosen[("db", "rain")] == [pool[:3]] and chosen[("db", "dog")] == [pool[3:]]
    for strategy in ("db", "ocp"):
        for name in concepts:
            draws = chosen[(f"random_{strategy}", name)]
            count = len(chosen[(strategy, name)][0])
            # five draws, each of exactly the strategy's count, distinct neurons from the pool
            assert len(draws) == 5 and all(len(set(draw)) == len(draw) == count for draw in draws)
            assert all(set(draw) <= set(pool) for draw in draws)
            if 0 < count < len(pool):
                assert len({tuple(draw) for draw in draws}) > 1, (strategy, name)  # the draws differ
    assert chosen == pruning_selections(concepts, concepts, tops, open_table, ["layer1"], settings)  # seeded

    rng = np.random.default_rng(3)
    weights = {neuron: float(w) for neuron, w in zip(pool, rng.uniform(0.005, 0.03, len(pool)))}
    truth = ["dog", "rain", "rain", "dog", "rain", "dog", "dog"]
    network = PrunableNetwork(weights, truth)
    per_class, summary = pruning_effects(network, chosen, {"layer1": 8})
    per_class = per_class.set_index(["strategy", "class"])
    summary = summary.set_index("strategy")
    factor = 1 + network.truth

    def change(neurons, name):  # (target, rest) change of the true-class probability, by hand
        delta = -network.off(neurons) * factor
        target = np.asarray(truth) == name
        return delta[target].mean(), delta[~target].mean()

    for strategy in ("random_db", "random_ocp"):
        by_draw = {name: np.array([change(draw, name) for draw in chosen[(strategy, name)]]) for name in concepts}
        for name in concepts:
            row = per_class.loc[(strategy, name)]
            assert row["draws"] == 5 and row["pruned"] == len(chosen[(strategy, name)][0])
            assert row["delta_target_probability"] == pytest.approx(by_draw[name][:, 0].mean())
            assert row["delta_rest_probability"] == pytest.approx(by_draw[name][:, 1].mean())
            assert row["delta_target_probability_sd"] == pytest.approx(np.std(by_draw[name][:, 0], ddof=1))
        # per strategy: each draw's mean over classes, then their mean and SD (ddof 1) over the five draws
        overall = np.mean([by_draw[name][:, 0] for name in concepts], axis=0)
        assert summary.loc[strategy, "delta_target_probability"] == pytest.approx(overall.mean())
        assert summary.loc[strategy, "delta_target_probability_sd"] == pytest.approx(np.std(overall, ddof=1))
        assert summary.loc[strategy, "delta_target_probability_sd"] > 0 and summary.loc[strategy, "draws"] == 5
    # the strategies themselves are one draw: their value is exact and they have no SD
    assert per_class.loc[("db", "rain"), "delta_target_probability"] == pytest.approx(change(pool[:3], "rain")[0])
    assert summary.loc["db", "draws"] == 1 and np.isnan(summary.loc["db", "delta_target_probability_sd"])

    # The figure draws +- 1 SD over draws on the random baselines' bars, and on nothing else.
    figure = pruning_figure(summary.reset_index())
    bars = [c for c in figure.axes[0].containers if c.__class__.__name__ == "ErrorbarContainer"]
    heights = sorted(float(np.diff(segment[:, 1])[0]) for c in bars for segment in c.lines[2][0].get_segments())
    expected = sorted(2 * summary.loc[s, f"{m}_sd"] for s in ("random_db", "random_ocp")
                      for m in ("delta_target_probability", "delta_rest_probability"))
    assert heights == pytest.approx(expected)
    import matplotlib.pyplot as plt

    plt.close(figure)


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
    assert (table["top1_chance"] == 0.25).all() and table.loc["db", "top5_chance"] == 1.0  # 4 concepts
    assert np.isnan(table.loc["icl", "top5_chance"])


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


class KeywordVectors:
    """One axis per keyword found in a sentence; junk sentences would make a cluster of their own."""

    keywords = ["dog", "rain", "sure", "know"]

    def encode(self, texts):
        return np.array([[float(k in t.lower()) for k in self.keywords] for t in texts]) + 1e-3


def test_junk_sentences_are_dropped_before_clustering():
    captions = ["A dog barks. Sure, here is a description of the audio.", "Rain falls on a roof.",
                "Let me know if you need any more help!", "A dog howls. Rain again."]
    sentences, owner = caption_sentences(captions)
    assert sentences == ["A dog barks.", "Rain falls on a roof.", "A dog howls.", "Rain again."]
    assert owner == [0, 1, 3, 3]
    clusters = caption_clusters(captions, KeywordVectors(), {"clusters": 2, "seed": 0})
    assert clusters[2] == set() and len(clusters[0]) == len(clusters[1]) == 1
    assert clusters[0] != clusters[1] and clusters[3] == clusters[0] | clusters[1]


class FakeNetwork:
    """Held-out clips stay correct unless a neuron of ``vital`` is masked; probability 0.8, or 0.4 pruned."""

    def __init__(self, vital, clips=10):
        self.vital, self.clips, self.calls = vital, clips, 0
        self.baseline = self.outputs({})

    def outputs(self, masks):
        self.calls += 1
        hit = sum(int(masks[layer][n] == 0) for layer, n in self.vital if layer in masks)
        correct = np.arange(self.clips) >= hit * self.clips // 4
        return {"correct": correct, "probability": np.where(correct, 0.8, 0.4)}


def test_figure4a_prunes_the_top_counts_per_fraction_and_averages_seeds():
    open_table = pd.DataFrame({"layer": ["l1"] * 8, "neuron": range(8),
                               "n_adjectives": [5, 0, 0, 4, 0, 0, 0, 0], "n_verbs": [0] * 8,
                               "n_nouns": [0, 3, 0, 0, 0, 0, 0, 1], "n_prepositions": [0] * 8,
                               "caption_len": [9, 8, 7, 6, 5, 4, 3, 2]})
    network = FakeNetwork(vital=[("l1", 0), ("l1", 3)])
    table = pos_ablation(network, open_table, {"l1": 8}, {"fractions": [0.25, 0.5], "seeds": 3})
    table = table.set_index(["fraction", "category"])
    assert table.loc[(0.25, "adjectives"), "pruned"] == 2 and table.loc[(0.5, "nouns"), "pruned"] == 4
    # the two neurons with most adjectives are the vital ones: half the clips go wrong at r = 25 %
    assert table.loc[(0.25, "adjectives"), "accuracy"] == 0.5
    assert table.loc[(0.25, "adjectives"), "accuracy_sd"] == 0.0
    assert table.loc[(0.25, "caption_len"), "accuracy"] == pytest.approx(0.8)   # neurons 0 and 1: one vital
    assert table.loc[(0.25, "adjectives"), "delta_accuracy"] == -0.5
    # verbs are all tied at 0: each seed breaks the tie differently, so the result is a mean over seeds
    verbs = table.loc[(0.5, "verbs")]
    assert verbs["accuracy_sd"] > 0 and 0.5 <= verbs["accuracy"] <= 1.0
    assert network.calls <= 1 + 2 * 6 * 3          # baseline, then at most one pass per distinct selection
    assert set(table.index.get_level_values("category")) == {"adjectives", "verbs", "nouns", "prepositions",
                                                              "caption_len", "random"}


def test_figure4a_reports_the_sample_sd_over_seeds_and_draws_it_on_every_line():
    open_table = pd.DataFrame({"layer": ["l1"] * 8, "neuron": range(8), "n_adjectives": [5, 0, 0, 4, 0, 0, 0, 0],
                               "n_verbs": [0] * 8, "n_nouns": [0, 3, 0, 0, 0, 0, 0, 1], "n_prepositions": [0] * 8,
                               "caption_len": [9, 8, 7, 6, 5, 4, 3, 2]})
    vital = [("l1", 0), ("l1", 3), ("l1", 5)]
    table = pos_ablation(FakeNetwork(vital), open_table, {"l1": 8}, {"fractions": [0.25, 0.5], "seeds": 4})
    neurons = [("l1", n) for n in range(8)]
    for category in ("verbs", "random"):  # tied counts and random draws: each seed prunes other neurons
        by_seed = []
        for seed in range(4):
            selected = _ablated(open_table, neurons, category if category == "random" else f"n_{category}", 4, seed)
            hit = sum(neuron in vital for neuron in selected)
            by_seed.append(np.mean(np.arange(10) >= hit * 10 // 4))
        row = table.set_index(["fraction", "category"]).loc[(0.5, category)]
        assert row["accuracy"] == pytest.approx(np.mean(by_seed))
        assert row["accuracy_sd"] == pytest.approx(np.std(by_seed, ddof=1)) and row["accuracy_sd"] > 0
    assert (table["seeds"] == 4).all()
    # Every line (not only random) gets +- 1 SD bars; a line without spread gets zero-length ones.
    figure = pos_ablation_figure(table)
    lines = [c for c in figure.axes[0].containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(lines) == 6 and all(c.has_yerr for c in lines)
    for container, (category, group) in zip(lines, table.groupby("category", sort=False)):
        heights = [float(np.diff(segment[:, 1])[0]) for segment in container.lines[2][0].get_segments()]
        assert heights == pytest.approx((200 * group["accuracy_sd"]).tolist()), category
    import matplotlib.pyplot as plt

    plt.close(figure)
    # One seed has no spread: NaN, and no bars.
    single = pos_ablation(FakeNetwork(vital), open_table, {"l1": 8}, {"fractions": [0.5], "seeds": 1})
    assert single["accuracy_sd"].isna().all()
    figure = pos_ablation_figure(single)
    assert not any(c.has_yerr for c in figure.axes[0].containers if c.__class__.__name__ == "ErrorbarContainer")
    plt.close(figure)


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
    require("llama_cpp")
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
