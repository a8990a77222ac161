"""Study 2 (model metamers, Lu; Feather et al.) end to end on the session's tiny run, and the analysis of
listening-test responses."""

import json

import h5py
import pytest

from audioprobe.io.atomic import read_csv
from tests import snakemake_cli
from tests.conftest import copy_run

pytestmark = pytest.mark.slow


def test_study2_outputs_and_the_analysis_of_responses(tiny_run, yamnet_tflite, tmp_path):
    run = copy_run(tiny_run, tmp_path / "run")  # the responses add outputs: work on a copy
    base = run / "results/metamers/commands-synth"
    rates = read_csv(base / "pass_rates.csv")
    assert set(rates["model"]) == {"conv2d", "grouped_temporal", "yamnet"}
    assert rates.groupby("model").size().to_dict() == {"conv2d": 5, "grouped_temporal": 5, "yamnet": 1}
    assert (rates["metamers"] == 12).all()
    parameters = read_csv(base / "models/parameters.csv").set_index("model")
    assert parameters["total_params"].gt(0).all()
    grouped = parameters.loc["grouped_temporal"]  # Lu's Table 3 (metamers.sizes: seed)
    assert (grouped["shape_conv_0"], grouped["shape_conv_1"], grouped["units_dense"]) == ("30x128", "28x512", 512)
    with h5py.File(base / "grouped_temporal/metamers.h5", "r") as made:
        assert json.loads(made.attrs["config"])["synthesis"]["relu_gradient"] == "fake"  # the schema's default
    validation = read_csv(base / "conv2d/validation.csv")
    for wav in validation["wav"]:
        assert (base / "conv2d/wav" / wav).stat().st_size > 1000
    trials = read_csv(base / "listening_test/trials.csv")
    assert trials.groupby("participant")["clip_id"].apply(lambda c: c[~trials.loc[c.index, "catch"]].is_unique).all()
    # Answer every trial with the true word and run the analysis rule on those responses.
    responses = run / "responses"
    responses.mkdir(exist_ok=True)
    for participant, part in trials.groupby("participant"):
        part.assign(answer=part["word"], response_time_ms=900, played=True)[
            ["participant", "trial", "stimulus", "answer", "response_time_ms", "played"]].to_csv(
            responses / f"participant_{participant}.csv", index=False)
    snakemake_cli.run(run, config={"metamers": {"responses": str(responses)}}, weights=yamnet_tflite)
    accuracy = read_csv(base / "listening_results/accuracy.csv")
    heard = accuracy["n"] > 0  # a condition whose metamers all failed is heard only as swapped natural clips
    assert (accuracy.loc[heard, "accuracy"] == 1.0).all() and accuracy.loc[~heard, "accuracy"].isna().all()
    assert heard.sum() >= 6
    assert (base / "listening_results/confusion.png").exists()
