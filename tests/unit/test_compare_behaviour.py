"""People's confusions against a network's: confusion RDMs between words, and the table per condition."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audioprobe.compare import behaviour, rsa

pytest.importorskip("rsatoolbox")

WORDS = ["down", "go", "no", "yes"]


def test_a_confusion_rdm_is_one_minus_the_symmetrised_row_proportions():
    counts, totals = behaviour.confusion_counts(["go", "go", "go", "go", "no", "no", "yes"],
                                                ["go", "no", "no", "other", "no", "go", "yes"], ["go", "no", "yes"])
    np.testing.assert_array_equal(counts, [[1, 2, 0], [1, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(totals, [4, 2, 1])  # "other" counts in its row's total only
    rdm = behaviour.confusion_rdm(counts, totals)
    np.testing.assert_allclose(rdm, [1 - (2 / 4 + 1 / 2) / 2, 1.0, 1.0])


def test_a_word_nobody_heard_has_no_pairs():
    counts, totals = behaviour.confusion_counts(["go", "no"], ["no", "go"], ["go", "no", "yes"])
    rdm = behaviour.confusion_rdm(counts, totals)
    assert rdm[0] == 0.0 and np.isnan(rdm[1:]).all()


def test_comparing_rdms_with_gaps_is_spearman_over_the_pairs_present():
    rng = np.random.default_rng(0)
    a, b = rng.random(10), rng.random(10)  # 5 stimuli
    a[[2, 7]] = b[[2, 7]] = np.nan
    keep = np.isfinite(a)
    assert rsa.compare_rdms_with_gaps(a, b, "spearman")[0] == pytest.approx(stats.spearmanr(a[keep], b[keep])[0])
    with pytest.raises(ValueError, match="miss the same pairs"):
        rsa.compare_rdms_with_gaps(a, np.nan_to_num(b), "spearman")


def trials_and_answers(seed=0, clips_per_word=6):
    """Trials of two conditions heard by two participants, and two networks' answers to every clip: "echo"
    confuses words in a structured way, "other" in another."""
    rng = np.random.default_rng(seed)
    confusable = {"down": "go", "go": "no", "no": "go", "yes": "yes"}
    rows, answers = [], []
    for model, layer in [("conv2d", "relu1"), ("natural", "natural")]:
        for word in WORDS:
            for k in range(clips_per_word):
                clip = f"{word}{k}"
                echo = confusable[word] if rng.random() < 0.5 else word
                other = WORDS[rng.integers(len(WORDS))]
                answers += [{"evaluator": "echo", "model": model, "layer": layer, "clip_id": clip, "word": word,
                             "answer": echo},
                            {"evaluator": "other", "model": model, "layer": layer, "clip_id": clip, "word": word,
                             "answer": other}]
                for participant in (1, 2):
                    rows.append({"participant": participant, "model": model, "layer": layer, "clip_id": clip,
                                 "word": word.upper(), "catch": False, "swapped": False, "responded": True,
                                 "answered": True, "answer": echo})
    return pd.DataFrame(rows), pd.DataFrame(answers)


def test_people_who_answer_as_a_network_does_match_its_confusions_and_not_anothers():
    responses, answers = trials_and_answers()
    table = behaviour.behaviour_table(responses, answers).set_index(["model", "layer", "evaluator"])
    echo, other = table.loc[("conv2d", "relu1", "echo")], table.loc[("conv2d", "relu1", "other")]
    assert echo["rsa"] == pytest.approx(1.0) and echo["agreement"] == 1.0
    assert other["rsa"] < 0.6 and other["agreement"] < 0.5
    assert echo["trials"] == 48 and echo["clips"] == 24
    assert echo["human_accuracy"] == echo["network_accuracy"]


def test_catch_and_swapped_trials_are_left_out_and_a_flawless_listener_has_no_rdm_to_compare():
    responses, answers = trials_and_answers()
    responses["answer"] = responses["word"].str.lower()
    responses.loc[:5, "catch"] = True
    responses.loc[6:9, "swapped"] = True
    table = behaviour.behaviour_table(responses, answers)
    assert table["rsa"].isna().all() and table["note"].str.contains("confuse no words").all()
    assert (table["human_accuracy"] == 1.0).all()
    assert set(table.loc[table.model == "conv2d", "trials"]) == {48 - 10}
