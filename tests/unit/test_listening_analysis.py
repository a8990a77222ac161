"""Listening-test analysis on simulated answers with a known effect: model A's layer-3 metamers are
recognised with p = 0.9, model B's with p = 0.3, every other condition with p = 0.8."""
import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioprobe.io.atomic import read_csv
from audioprobe.metamers import analysis, listening

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "bird", "cat", "dog"]
MODELS = {"A": ["l1", "l2", "l3"], "B": ["l1", "l2", "l3"]}
TARGETS = 42        # 7 conditions: 6 trials per condition per participant
PARTICIPANTS = 20
CATCH = 4
TRUE_P = {("A", "l3"): 0.9, ("B", "l3"): 0.3}
CATCH_P = 0.95
INATTENTIVE = 7     # this participant gets every catch trial wrong


def true_p(model, layer):
    return TRUE_P.get((model, layer), 0.8)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("listening")
    rows = []
    t = np.arange(400) / 16000
    for index in range(TARGETS):
        conditions = [("natural", "natural")] + [(m, l) for m, layers in MODELS.items() for l in layers]
        for number, (model, layer) in enumerate(conditions):
            path = folder / "wav" / f"{index}_{model}_{layer}.wav"
            path.parent.mkdir(exist_ok=True)
            sf.write(path, 0.2 * np.sin(2 * np.pi * (150 + 10 * index + number) * t), 16000)
            rows.append({"clip_id": f"c{index:02d}", "word": WORDS[index % len(WORDS)], "model": model,
                         "layer": layer, "path": str(path), "passed": True})
    listening.build_package(pd.DataFrame(rows), folder / "pkg", participants=PARTICIPANTS, catch_trials=CATCH,
                            seed=11, words=WORDS)
    return folder / "pkg"


def simulate(package, folder, seed=2024):
    """One response CSV per participant, as the page writes them, answers in varied case and spacing."""
    trials = read_csv(package / "trials.csv")
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for participant, group in trials.groupby("participant"):
        records = []
        for row in group.itertuples():
            if row.catch:
                p = 0.0 if participant == INATTENTIVE else CATCH_P
            else:
                p = true_p(row.model, row.layer)
            if rng.random() < p:
                answer = row.word
            else:
                answer = rng.choice([w for w in WORDS if w != row.word])
            answer = rng.choice([answer, answer.upper(), f"  {answer.capitalize()} "])
            records.append({"participant": participant, "trial": row.trial, "stimulus": row.stimulus,
                            "answer": answer, "response_time_ms": int(rng.integers(800, 4000)), "played": "true"})
        path = folder / f"responses_participant_{participant}.csv"
        pd.DataFrame(records).to_csv(path, index=False)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def responses(package, tmp_path_factory):
    paths = simulate(package, tmp_path_factory.mktemp("answers"))
    return analysis.read_responses(paths, package / "trials.csv")


def test_read_responses_joins_every_trial_and_normalises_answers(responses, package):
    trials = read_csv(package / "trials.csv")
    assert len(responses) == len(trials) == PARTICIPANTS * (TARGETS + CATCH)
    assert responses["responded"].all() and responses["answered"].all()
    assert set(responses["answer"]) <= set(WORDS)
    assert (responses["answer_raw"] != responses["answer"]).any(), "the simulation varied case and spacing"
    assert list(responses["condition"].cat.categories) == ["natural", "A/l1", "A/l2", "A/l3", "B/l1", "B/l2", "B/l3"]


def test_accuracy_table_recovers_the_simulated_accuracies(responses):
    table = analysis.accuracy_table(responses)
    assert list(table["condition"]) == ["natural", "A/l1", "A/l2", "A/l3", "B/l1", "B/l2", "B/l3"]
    assert (table["n"] == PARTICIPANTS * TARGETS // 7).all()
    assert (table["participants"] == PARTICIPANTS).all()
    for row in table.itertuples():
        assert row.ci_low < row.accuracy < row.ci_high
        # 7 conditions, each 95% interval misses with probability 0.05: check all at 99.9%, the two of the
        # effect at 95%
        low, high = analysis.wilson_interval(row.correct, row.n, z=3.29)
        assert low <= true_p(row.model, row.layer) <= high, row.condition
        if row.layer == "l3":
            assert row.ci_low <= true_p(row.model, row.layer) <= row.ci_high, row.condition
    a3 = table.set_index("condition").loc["A/l3"]
    b3 = table.set_index("condition").loc["B/l3"]
    assert a3.ci_low > b3.ci_high
    # Wilson by hand for one row
    low, high = analysis.wilson_interval(a3.correct, a3.n)
    assert (low, high) == pytest.approx((a3.ci_low, a3.ci_high))


def test_catch_trials_are_reported_per_participant_and_flag_the_inattentive(responses):
    table = analysis.accuracy_table(responses, catch_threshold=0.75)
    catch = table.attrs["catch"]
    assert list(catch["participant"]) == list(range(1, PARTICIPANTS + 1))
    assert (catch["n"] == CATCH).all()
    assert catch.set_index("participant").loc[INATTENTIVE, "accuracy"] == 0
    assert list(catch.loc[catch["below_threshold"], "participant"]) == [INATTENTIVE]
    without = analysis.accuracy_table(responses, exclude_below_threshold=True)
    assert (without["participants"] == PARTICIPANTS - 1).all()


def test_compare_architectures_finds_the_layer_3_effect_after_holm(responses):
    table = analysis.compare_architectures(responses, "A", "B")
    assert list(table["layer"]) == ["l1", "l2", "l3"]
    assert (table["n"] == PARTICIPANTS).all()
    for column in ("p_t_holm", "p_t_bonferroni", "p_wilcoxon_holm", "p_wilcoxon_bonferroni"):
        assert column in table.columns
    rows = table.set_index("layer")
    assert rows.loc["l3", "mean_diff"] == pytest.approx(0.6, abs=0.12)
    assert rows.loc["l3", "p_t_holm"] < 0.001
    assert rows.loc["l3", "p_wilcoxon_holm"] < 0.01
    assert rows.loc["l1", "p_t_holm"] > 0.05 and rows.loc["l2", "p_t_holm"] > 0.05
    # the Holm values are those of audioprobe.stats over the three layers
    np.testing.assert_allclose(table["p_t_holm"], analysis.stats.holm(table["p_t"]))
    # explicit layer pairs work for architectures with different layer names
    crossed = analysis.compare_architectures(responses, "A", "B", layers=[("l3", "l1")])
    assert list(crossed["layer"]) == ["l3 | l1"]
    with pytest.raises(ValueError, match="no layer 'l9'"):
        analysis.compare_architectures(responses, "A", "B", layers=["l9"])
    with pytest.raises(ValueError, match="no trials of model 'C'"):
        analysis.compare_architectures(responses, "A", "C")


def test_unknown_stimulus_participant_or_mismatch_raise(package, tmp_path):
    paths = simulate(package, tmp_path / "answers")
    frame = pd.read_csv(paths[0], dtype=str, keep_default_na=False)

    unknown = frame.copy()
    unknown.loc[3, "stimulus"] = "stim_9999.wav"
    unknown.to_csv(tmp_path / "unknown.csv", index=False)
    with pytest.raises(ValueError, match=r"unknown stimulus id\(s\) \['stim_9999.wav'\] in .*unknown.csv"):
        analysis.read_responses([tmp_path / "unknown.csv"], package / "trials.csv")

    stranger = frame.assign(participant="99")
    stranger.to_csv(tmp_path / "stranger.csv", index=False)
    with pytest.raises(ValueError, match=r"participant\(s\) \[99\]"):
        analysis.read_responses(tmp_path / "stranger.csv", package / "trials.csv")

    swapped = frame.copy()
    swapped.loc[[0, 1], "stimulus"] = swapped.loc[[1, 0], "stimulus"].to_numpy()
    swapped.to_csv(tmp_path / "swapped.csv", index=False)
    with pytest.raises(ValueError, match="do not belong together"):
        analysis.read_responses(tmp_path / "swapped.csv", package / "trials.csv")

    with pytest.raises(ValueError, match="more than once"):
        analysis.read_responses([paths[0], paths[0]], package / "trials.csv")

    frame.drop(columns=["played"]).to_csv(tmp_path / "old.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['played'\]"):
        analysis.read_responses(tmp_path / "old.csv", package / "trials.csv")


def test_missing_answers_are_kept_as_unanswered(package, tmp_path):
    paths = simulate(package, tmp_path / "answers")
    frame = pd.read_csv(paths[0], dtype=str, keep_default_na=False)
    blank_trial = int(frame.loc[5, "trial"])
    dropped_trial = int(frame.loc[9, "trial"])
    frame.loc[5, "answer"] = "   "
    frame = frame.drop(index=9)
    frame.to_csv(paths[0], index=False)

    responses = analysis.read_responses(paths, package / "trials.csv")
    assert len(responses) == PARTICIPANTS * (TARGETS + CATCH)
    mine = responses[responses.participant == 1].set_index("trial")
    assert not mine.loc[blank_trial, "answered"] and mine.loc[blank_trial, "responded"]
    assert not mine.loc[dropped_trial, "answered"] and not mine.loc[dropped_trial, "responded"]
    assert pd.isna(mine.loc[dropped_trial, "played"]) and math.isnan(mine.loc[dropped_trial, "response_time_ms"])
    assert not mine.loc[blank_trial, "correct"] and not mine.loc[dropped_trial, "correct"]
    assert (~responses["answered"]).sum() == 2

    table = analysis.accuracy_table(responses)
    excluded = analysis.accuracy_table(responses, unanswered="exclude")
    unanswered_main = int((~responses["answered"] & ~responses["catch"]).sum())
    assert table["unanswered"].sum() == unanswered_main
    assert table["n"].sum() - excluded["n"].sum() == unanswered_main
    assert (table["correct"] == excluded["correct"]).all()


def test_confusion_matrices_are_drawn_per_condition(responses, tmp_path):
    matrices = analysis.confusion_matrices(responses, tmp_path / "confusions.png")
    assert (tmp_path / "confusions.png").stat().st_size > 10_000
    assert list(matrices) == ["natural", "A/l1", "A/l2", "A/l3", "B/l1", "B/l2", "B/l3"]
    table = analysis.accuracy_table(responses).set_index("condition")
    for label, matrix in matrices.items():
        assert list(matrix.index) == sorted(WORDS)
        assert matrix.to_numpy().sum() == table.loc[label, "n"]
        diagonal = sum(matrix.loc[w, w] for w in matrix.index)
        assert diagonal == table.loc[label, "correct"]
    analysis.confusion_matrices(responses, tmp_path / "confusions.svg")
    assert (tmp_path / "confusions.svg").read_text().startswith("<?xml")


def test_the_analysis_step_writes_the_tables_and_figure_the_analysis_gives(package, tmp_path):
    """The workflow's step on the package folder and the response files: its accuracy table is that of the
    answers (the layer-3 effect included), one comparison per pair of architectures (none for one), and the
    confusion figure is drawn."""
    from audioprobe.metamers.listening_steps import listening_analysis_step

    paths = simulate(package, tmp_path / "answers")
    out = {"accuracy_csv": tmp_path / "accuracy.csv", "comparison_csv": tmp_path / "architectures.csv",
           "confusion_png": tmp_path / "confusion.png"}
    listening_analysis_step(package_dir=package, response_paths=paths, **out, architectures_used=["A", "B"])

    expected = analysis.accuracy_table(analysis.read_responses(paths, package / "trials.csv"))
    written = read_csv(out["accuracy_csv"])
    assert list(written["condition"]) == list(expected["condition"])
    for column in ("correct", "n"):
        assert written[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(written["accuracy"], expected["accuracy"], rtol=1e-5)  # written to 6 digits
    comparison = read_csv(out["comparison_csv"]).set_index("layer")
    assert list(comparison.index) == ["l1", "l2", "l3"] and comparison.loc["l3", "p_t_holm"] < 0.001
    assert out["confusion_png"].stat().st_size > 10_000

    listening_analysis_step(package_dir=package, response_paths=paths, **out, architectures_used=["A"])
    assert out["comparison_csv"].read_text().splitlines()[1:] in ([], [""])  # no pair to compare


def test_swapped_trials_are_left_out_of_the_conditions(tmp_path):
    rows = []
    t = np.arange(400) / 16000
    for index in range(6):
        for model, layer in [("natural", "natural"), ("A", "l1"), ("B", "l1")]:
            path = tmp_path / f"{index}_{model}.wav"
            sf.write(path, 0.2 * np.sin(2 * np.pi * (200 + 20 * index) * t), 16000)
            rows.append({"clip_id": f"c{index}", "word": WORDS[index], "model": model, "layer": layer,
                         "path": str(path), "passed": not (model == "B" and index == 0)})
    listening.build_package(pd.DataFrame(rows), tmp_path / "pkg", participants=3, catch_trials=1, seed=1,
                            words=WORDS)
    paths = simulate(tmp_path / "pkg", tmp_path / "answers")
    responses = analysis.read_responses(paths, tmp_path / "pkg" / "trials.csv")
    table = analysis.accuracy_table(responses).set_index("condition")
    assert table.loc["B/l1", "swapped"] == 1
    assert table.loc["B/l1", "n"] == 3 * 2 - 1
    assert table.loc["natural", "n"] == 3 * 2


# Wilson 95% intervals as published: 8/10, 0/10 and 10/10 (the examples; e.g. Brown, Cai & DasGupta
# 2001), and Newcombe (1998, Stat. Med. 17:857, Table II, method 3, "score without continuity correction").
# Published to 4 decimals, so within 5e-5. A Wald interval (8/10: 0.552..1), the continuity-corrected score
# interval (0.442..0.965), Agresti-Coull (0.479..0.954) or a 90% z (0.541..0.931) are all off by more.
PUBLISHED_WILSON = [(8, 10, 0.4902, 0.9433), (0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0),
                    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
                    (1, 29, 0.0061, 0.1718), (29, 29, 0.8830, 1.0)]


@pytest.mark.parametrize("correct, n, low, high", PUBLISHED_WILSON)
def test_wilson_interval_matches_published_values(correct, n, low, high):
    assert analysis.wilson_interval(correct, n) == pytest.approx((low, high), abs=5e-5)


def test_wilson_interval_edges_and_z():
    assert all(math.isnan(v) for v in analysis.wilson_interval(0, 0))
    low, high = analysis.wilson_interval(0, 10)
    assert low == 0.0 and high < 1  # never below 0 or above 1, and 0/n still has a width
    # a wider z widens the interval around the same centre (p + z^2/2n) / (1 + z^2/n)
    for z in (1.0, 2.5758):
        low, high = analysis.wilson_interval(8, 10, z=z)
        centre = (0.8 + z * z / 20) / (1 + z * z / 10)
        assert (low + high) / 2 == pytest.approx(centre)
    low, high = analysis.wilson_interval(8, 10, z=2.5758)
    assert low < 0.4902 and high > 0.9433


def test_accuracy_table_gives_the_published_interval_for_8_of_10():
    """A condition answered right 8 times in 10 (catch and swapped trials around it left out) reports
    0.8 with the interval 0.490..0.943: the table counts the right trials and uses the 95% Wilson interval."""
    rows = [{"participant": 1 + i % 2, "word": "yes", "model": "A", "layer": "l1", "catch": False,
             "swapped": False, "answer": "yes" if i < 8 else "no", "answered": True, "correct": i < 8}
            for i in range(10)]
    rows += [{"participant": 1, "word": "yes", "model": "A", "layer": "l1", "catch": False, "swapped": True,
              "answer": "no", "answered": True, "correct": False},
             {"participant": 1, "word": "no", "model": "natural", "layer": "natural", "catch": True,
              "swapped": False, "answer": "yes", "answered": True, "correct": False}]
    table = analysis.accuracy_table(pd.DataFrame(rows)).set_index("condition")
    row = table.loc["A/l1"]
    assert (row["n"], row["correct"], row["accuracy"], row["swapped"]) == (10, 8, 0.8, 1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.4902, 0.9433), abs=5e-5)
    assert table.loc["natural", "n"] == 0  # its only trial was a catch trial
