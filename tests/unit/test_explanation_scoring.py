"""Scoring explanations (issue 16): the explanations gathered from Study 3's tables, the random-other baseline,
concept presence calibrated on labels, the simulation's expected value and the per-layer summary."""

import numpy as np
import pandas as pd
import pytest

from audioprobe.dissect import explanations, presence, scoring, simulation
from audioprobe.dissect.explanation_scores import METRICS


def closed_table():
    return pd.DataFrame({"layer": ["l1", "l1", "l1", "head"], "neuron": [0, 1, 2, 0], "method": "db",
                         "function": "cos", "constant": [False, False, True, False],
                         "top1": ["dog", "rain", "dog", "dog"]})


def test_explanations_keep_every_neuron_and_say_why_one_has_none():
    icl = pd.DataFrame({"layer": ["l1", "l1"], "neuron": [0, 1], "concept": ["dog", np.nan],
                        "status": ["ok", "no calibrated summary (not asked)"]})
    open_table = pd.DataFrame({"layer": ["l1", "l1"], "neuron": [0, 1], "adjectives": ["loud", np.nan],
                               "nouns": ["dog bark", np.nan], "verbs": ["bark", np.nan], "prepositions": ["of", ""]})
    rows = explanations.explanation_rows(closed_table(), icl, open_table)
    assert len(rows) == 4 + 2 + 2
    assert rows.loc[rows["status"] == "constant neuron", "explanation"].tolist() == [""]
    opened = rows[rows["method"] == "open"]
    assert opened["explanation"].tolist() == ["loud dog bark", ""]  # no repeats, no prepositions
    assert opened["status"].tolist() == ["ok", "no open concept"]
    assert rows.loc[rows["method"] == "icl", "status"].tolist()[1] == "no calibrated summary (not asked)"
    assert explanations.explanations_to_simulate(rows) == sorted({"dog", "rain", "loud dog bark", "an audio clip"})


def test_the_random_baseline_is_another_neurons_explanation_of_the_same_group():
    rows = pd.DataFrame({"layer": "l1", "neuron": range(6), "method": "db", "function": "cos",
                         "explanation": [f"c{i}" for i in range(6)], "status": "ok"})
    rows.loc[6] = ["head", 0, "db", "cos", "alone", "ok"]
    other = explanations.random_other(rows, seed=1)
    assert (other[:6] != rows["explanation"][:6]).all()
    assert sorted(other[:6]) == sorted(rows["explanation"][:6])  # a permutation of the group's explanations
    assert other[6] == ""  # no other neuron in its group
    assert other.equals(explanations.random_other(rows, seed=1))
    assert not other.equals(explanations.random_other(rows, seed=2))


def test_the_presence_calibration_recovers_a_planted_sigmoid():
    rng = np.random.default_rng(0)
    cos = rng.uniform(-0.2, 0.8, 4000)
    y = (rng.random(4000) < presence.sigmoid(20 * (cos - 0.3))).astype(float)
    slope, offset = presence.fit_sigmoid(cos, y)
    assert slope == pytest.approx(20, abs=4) and offset == pytest.approx(-0.3, abs=0.03)
    with pytest.raises(ValueError, match="targets of both kinds"):
        presence.fit_sigmoid(cos, np.zeros_like(cos))


def bag_of_words(texts):
    """A tiny encoder for the tests: normalised word counts over a fixed vocabulary."""
    vocabulary = ["dog", "rain", "bark", "wet", "loud", "recording", "crying", "baby"]
    rows = np.array([[text.lower().replace("_", " ").split().count(w) for w in vocabulary] for text in texts], float)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)


def test_presence_reads_the_labels_where_they_name_the_concept_and_captions_elsewhere():
    captions = ["a dog bark", "rain wet", "a loud dog", "rain", "crying baby", "a baby crying loud"]
    labels = {"category": ["dog", "rain", "dog", "rain", "crying_baby", "crying_baby"]}
    fitted = presence.ConceptPresence(bag_of_words).fit(captions, labels)
    c = fitted.transform(["Dog", "crying baby", "bark"])
    np.testing.assert_array_equal(c[:, 0], [1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(c[:, 1], [0, 0, 0, 0, 1, 1])  # "_" and case do not matter
    assert fitted.source("bark") == "captions" and fitted.source("crying_baby") == "labels"
    assert c[0, 2] > 0.5 > c[1, 2]  # only the first caption says bark
    with pytest.raises(ValueError, match="no label columns"):
        presence.ConceptPresence(bag_of_words).fit(captions, {})


def test_the_expected_value_is_renormalised_over_the_digits():
    logits = np.full(20, -np.inf)
    logits[[3, 5, 12]] = np.log([0.2, 0.2, 0.6])  # digits 3 and 5 (ids 3, 5) and a non-digit token
    value, mass = simulation.expected_value(logits, digit_ids=range(10))
    assert value == pytest.approx(4.0) and mass == pytest.approx(0.4)
    assert np.isnan(simulation.expected_value(np.r_[np.full(10, -np.inf), 0.0], range(10))[0])


def test_a_clip_question_has_its_caption_on_one_line():
    line = simulation.clip_line("Sound: {caption}\nTopic: {explanation}\nScore: ", "dog", "a dog\n barks\t twice")
    assert line == "Sound: a dog barks twice\nTopic: dog\nScore: "


def test_the_simulation_score_is_pearson_and_zero_when_constant():
    a = np.array([0.0, 1, 2, 3])
    assert simulation.simulation_correlation(a, 2 * a + 1) == pytest.approx(1)
    assert simulation.simulation_correlation(a, np.ones(4)) == 0.0
    with pytest.raises(ValueError, match="finite"):
        simulation.simulation_correlation(a, [1, 2, np.nan, 3])


def test_the_simulated_clips_are_a_seeded_sample_in_table_order():
    captions = {f"c{i}": "x" for i in range(50)}
    chosen = scoring.simulated_clips(captions, 10, seed=0)
    assert len(chosen) == 10 and chosen == sorted(chosen, key=lambda c: int(c[1:]))
    assert chosen == scoring.simulated_clips(captions, 10, seed=0) != scoring.simulated_clips(captions, 10, seed=1)
    assert scoring.simulated_clips(captions, 80, seed=0) == list(captions)


def test_the_bootstrap_interval_covers_the_mean_and_narrows_with_more_neurons():
    rng = np.random.default_rng(0)
    small, large = rng.normal(0.3, 0.2, 10), rng.normal(0.3, 0.2, 400)
    low, high = scoring.percentile_interval(small, 2000, seed=0)
    assert low < small.mean() < high
    low_l, high_l = scoring.percentile_interval(large, 2000, seed=0)
    assert high_l - low_l < (high - low) / 3
    assert np.isnan(scoring.percentile_interval([0.5], 100, seed=0)[0])


def test_the_summary_counts_neurons_above_their_random_baseline_and_the_checks_pass_rates():
    rows = []
    for neuron in range(4):
        row = {"layer": "l1", "neuron": neuron, "method": "db", "function": "cos", "status": "ok",
               "simulation": 0.5, "random_simulation": 0.6 if neuron == 0 else 0.1, "simulation_constant": 0.0}
        for metric in METRICS:
            row[metric], row[f"random_{metric}"] = 0.4 + neuron / 10, 0.3
            row[f"{metric}_missing_labels"], row[f"{metric}_extra_labels"] = neuron > 0, True
        rows.append(row)
    rows.append({"layer": "l1", "neuron": 9, "method": "db", "function": "cos", "status": "constant neuron"})
    summary = scoring.summarise(pd.DataFrame(rows), draws=200, seed=0, order=["l1"]).set_index("metric")
    assert set(summary.index) == {*METRICS, "simulation"} and (summary["neurons"] == 4).all()
    assert summary.loc["f1", "mean"] == pytest.approx(0.55) and summary.loc["f1", "above_random"] == 1.0
    assert summary.loc["simulation", "above_random"] == 0.75
    assert summary.loc["f1", "missing_labels_pass_rate"] == 0.75 and summary.loc["f1", "extra_labels_pass_rate"] == 1
    assert np.isnan(summary.loc["simulation", "missing_labels_pass_rate"])


def test_presence_scores_match_the_metrics_and_carry_their_checks():
    a = np.arange(20, dtype=float)
    c = (a >= 16).astype(float)
    row = scoring.presence_scores(a, c, alpha=0.2, seed=0)
    assert row["f1"] == 1.0 and row["iou"] == 1.0 and row["f1_missing_labels"] and row["f1_extra_labels"]
    assert set(scoring.presence_scores(a, c, 0.2, 0, prefix="random_")) == {f"random_{m}" for m in METRICS}


def test_a_layer_without_any_explanation_gives_an_empty_summary_and_a_figure_that_says_so(tmp_path):
    rows = pd.DataFrame({"layer": ["l1"], "neuron": [0], "method": ["db"], "function": ["cos"],
                         "status": ["constant neuron"]})
    summary = scoring.summarise(rows, draws=50, seed=0, order=["l1"])
    assert summary.empty
    scoring.plot_summary(summary, tmp_path / "scores.png")
    assert (tmp_path / "scores.png").read_bytes()[:4] == b"\x89PNG"
