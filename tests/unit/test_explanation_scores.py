"""Scores of a neuron explanation (issue 16): NeuronEval's metrics and sanity checks, against the values their
theoretical check gives for a perfect neuron (activations equal to the concept)."""

import numpy as np
import pytest

from audioprobe.dissect import explanation_scores as scores

N, GAMMA = 100_000, 0.1  # clips, and the fraction where the concept is present


@pytest.fixture(scope="module")
def perfect():
    """A neuron that fires exactly where its concept is present."""
    c = (np.random.default_rng(100).random(N) < GAMMA).astype(float)  # a stream no check below draws
    return c.copy(), c


@pytest.mark.parametrize("name, missing, extra", [
    ("f1", -1 / 3, -1 / 3),                       # 2/3 of a perfect 1, range 1
    ("iou", -1 / 2, -1 / 2),
    ("cosine", (2 ** -0.5 - 1) / 2, (2 ** -0.5 - 1) / 2),  # 1/sqrt(2) of 1, range 2
    ("auprc", -(1 - GAMMA) / 2, None),            # half the positives tie with the negatives
])
def test_a_perfect_neuron_loses_what_neuroneval_says_under_each_perturbation(perfect, name, missing, extra):
    a, c = perfect
    metric = scores.METRICS[name]
    assert metric.score(a, c, GAMMA) == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    assert scores.normalised_change(metric, a, c, scores.missing_labels(c, rng), GAMMA) == pytest.approx(missing,
                                                                                                         abs=0.01)
    change = scores.normalised_change(metric, a, c, scores.extra_labels(c, rng), GAMMA)
    assert change < -0.1 if extra is None else change == pytest.approx(extra, abs=0.01)


@pytest.mark.parametrize("name", sorted(scores.METRICS))
def test_every_metric_passes_both_checks_on_a_perfect_neuron(perfect, name):
    a, c = perfect
    assert scores.sanity_checks(scores.METRICS[name], a, c, GAMMA, seed=2) == {"missing_labels": True,
                                                                                "extra_labels": True}


def recall(a, c, alpha):
    active = scores.top_fraction(a, alpha)
    return float(active @ (c >= 0.5) / active.sum())


def precision(a, c, alpha):
    present = (np.asarray(c) >= 0.5).astype(float)
    return float(scores.top_fraction(a, alpha) @ present / present.sum())


def test_the_checks_catch_the_metrics_neuroneval_rejects(perfect):
    """Recall cannot see extra labels, and precision cannot see missing ones."""
    a, c = perfect
    assert scores.sanity_checks(scores.Metric(recall, 0, 1), a, c, GAMMA) == {"missing_labels": True,
                                                                                "extra_labels": False}
    assert scores.sanity_checks(scores.Metric(precision, 0, 1), a, c, GAMMA) == {"missing_labels": False,
                                                                                   "extra_labels": True}


def test_the_top_fraction_keeps_ties_and_the_inputs_are_checked():
    np.testing.assert_array_equal(scores.top_fraction([0, 3, 3, 1, 2], 0.2), [0, 1, 1, 0, 0])
    with pytest.raises(ValueError, match="alpha must be in"):
        scores.top_fraction([1, 2], 0)
    with pytest.raises(ValueError, match="same clips"):
        scores.f1([1, 2, 3], [1, 0], 0.5)
    with pytest.raises(ValueError, match=r"lie in \[0, 1\]"):
        scores.pearson([1, 2, 3], [0, 2, 1])


def test_pearson_is_shift_invariant_and_cosine_is_not():
    rng = np.random.default_rng(3)
    c = (rng.random(500) < 0.2).astype(float)
    a = c + rng.normal(0, 0.5, 500)
    assert scores.pearson(a + 5, c) == pytest.approx(scores.pearson(a, c))
    assert scores.cosine(a + 5, c) < scores.cosine(a, c) - 0.1
