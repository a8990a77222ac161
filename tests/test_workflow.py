"""The workflow end to end on a tiny config, and what a config change reruns."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audioprobe.datasets.manifest import read_manifest
from audioprobe.io.atomic import read_csv
from audioprobe.io.store import LayerFile
from tests.conftest import REPO

pytestmark = pytest.mark.workflow
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY = REPO / "tests" / "configs" / "tiny.yaml"


def snakemake(workdir, *flags, weights, config=None, check=True):
    """Run snakemake on the tiny config; ``config`` (a dict) is merged over it as a second config file
    (``--config`` would read nested numbers as strings)."""
    configfiles = [str(TINY)]
    if config:
        override = Path(workdir).parent / f"override-{abs(hash(json.dumps(config, sort_keys=True)))}.yaml"
        override.write_text(json.dumps(config))
        configfiles.append(str(override))
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
               *flags, "--configfile", *configfiles, "--config",
               "models=" + json.dumps({"yamnet": {"kind": "yamnet", "weights": str(weights),
                                                  "class_map": str(Path(weights).with_name("yamnet_class_map.csv"))}})]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def scheduled(result) -> dict[str, int]:
    """Rule -> job count from a dry run's job stats table."""
    return job_counts(result.stdout + result.stderr)


def job_counts(text: str) -> dict[str, int]:
    """Rule -> job count from the job stats table in snakemake's output."""
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, yamnet_tflite):
    workdir = tmp_path_factory.mktemp("tiny")
    snakemake(workdir, weights=yamnet_tflite)
    return workdir


def test_tiny_run_writes_manifests_layers_and_summary(tiny_run):
    clips = read_manifest(tiny_run / "results/datasets/maas-synth/manifest.csv")
    # 2 materials x 2 actions x 3 takes, 2-s recordings cut every 0.48 s into 0.975-s clips: 3 clips each.
    assert len(clips) == 36 and clips["group"].nunique() == 12
    assert set(clips["label_material"]) == {"wood", "metal"}
    words = read_manifest(tiny_run / "results/datasets/commands-synth/manifest.csv")
    assert sorted(set(words["label_word"])) == ["no", "yes"] and len(words) == 32
    summary = read_csv(tiny_run / "results/activations/yamnet/maas-synth/summary.csv")
    assert summary["layer"].tolist() == [f"layer{i}" for i in range(1, 15)]
    assert (summary["clips"] == 36).all() and summary.loc[8, "shape"] == "1x6x4x512"
    for layer in ("layer1", "layer14"):
        with LayerFile(tiny_run / f"results/activations/yamnet/maas-synth/{layer}.h5") as stored:
            assert stored.clip_ids == clips["clip_id"].tolist()
            assert stored.attrs["config"]["batch_size"] == 8 and len(stored.attrs["weights_sha256"]) == 64
        with LayerFile(tiny_run / f"results/activations/yamnet/maas-synth/pooled/{layer}.h5") as pooled:
            assert pooled.activations.shape == (36, 32 if layer == "layer1" else 1024)
    for rule in ("extract_activations/yamnet/maas-synth", "build_manifest/maas-synth"):
        assert (tiny_run / f"results/logs/{rule}.log").stat().st_size > 0
        assert (tiny_run / f"results/benchmarks/{rule}.tsv").exists()


def test_an_unchanged_config_reruns_nothing(tiny_run, yamnet_tflite):
    assert scheduled(snakemake(tiny_run, "-n", weights=yamnet_tflite)) == {}


def test_a_downstream_change_schedules_no_activation_job(tiny_run, yamnet_tflite):
    jobs = scheduled(snakemake(tiny_run, "-n", config={"activations": {"pool": {"stat": "max"}}}, weights=yamnet_tflite))
    assert jobs == {"pool_activations": 14, "all": 1}


def test_a_keyword_dataset_change_reruns_study2_only_and_no_activations(tiny_run, yamnet_tflite):
    jobs = scheduled(snakemake(tiny_run, "-n", config={"datasets": {"commands-synth": {"seed": 5}}},
                               weights=yamnet_tflite))
    assert jobs == {"generate_commands_synth": 1, "build_manifest": 1, "keyword_split": 1, "keyword_waveforms": 1,
                    "train_keyword_model": 2, "keyword_model_tables": 1, "synthesise_metamers": 3,
                    "validate_metamers": 3, "metamer_pass_rates": 1, "listening_package": 1, "all": 1}


def test_relu_gradient_reruns_metamer_synthesis_only(tiny_run, yamnet_tflite):
    jobs = scheduled(snakemake(tiny_run, "-n", config={"metamers": {"synthesis": {"relu_gradient": "true"}}},
                               weights=yamnet_tflite))
    assert jobs == {"synthesise_metamers": 3, "validate_metamers": 3, "metamer_pass_rates": 1,
                    "listening_package": 1, "all": 1}


def test_study2_outputs_and_the_analysis_of_responses(tiny_run, yamnet_tflite):
    base = tiny_run / "results/metamers/commands-synth"
    rates = read_csv(base / "pass_rates.csv")
    assert set(rates["model"]) == {"conv2d", "grouped_temporal", "yamnet"}
    assert rates.groupby("model").size().to_dict() == {"conv2d": 5, "grouped_temporal": 5, "yamnet": 1}
    assert (rates["metamers"] == 12).all()
    parameters = read_csv(base / "models/parameters.csv").set_index("model")
    assert parameters["total_params"].gt(0).all()
    grouped = parameters.loc["grouped_temporal"]  # Lu's Table 3 (metamers.sizes: seed)
    assert (grouped["shape_conv_0"], grouped["shape_conv_1"], grouped["units_dense"]) == ("30x128", "28x512", 512)
    import h5py

    with h5py.File(base / "grouped_temporal/metamers.h5", "r") as made:
        assert json.loads(made.attrs["config"])["synthesis"]["relu_gradient"] == "fake"  # the schema's default
    validation = read_csv(base / "conv2d/validation.csv")
    for wav in validation["wav"]:
        assert (base / "conv2d/wav" / wav).stat().st_size > 1000
    trials = read_csv(base / "listening_test/trials.csv")
    assert trials.groupby("participant")["clip_id"].apply(lambda c: c[~trials.loc[c.index, "catch"]].is_unique).all()
    # Answer every trial with the true word and run the analysis rule on those responses.
    responses = tiny_run / "responses"
    responses.mkdir(exist_ok=True)
    for participant, part in trials.groupby("participant"):
        part.assign(answer=part["word"], response_time_ms=900, played=True)[
            ["participant", "trial", "stimulus", "answer", "response_time_ms", "played"]].to_csv(
            responses / f"participant_{participant}.csv", index=False)
    snakemake(tiny_run, config={"metamers": {"responses": str(responses)}}, weights=yamnet_tflite)
    accuracy = read_csv(base / "listening_results/accuracy.csv")
    heard = accuracy["n"] > 0  # a condition whose metamers all failed is heard only as swapped natural clips
    assert (accuracy.loc[heard, "accuracy"] == 1.0).all() and accuracy.loc[~heard, "accuracy"].isna().all()
    assert heard.sum() >= 6
    assert (base / "listening_results/confusion.png").exists()


def test_a_transfer_setting_reruns_only_the_transfer(tiny_run, yamnet_tflite):
    jobs = scheduled(snakemake(tiny_run, "-n", config={"latent": {"transfer": {"distance_space": "logits"}}},
                               weights=yamnet_tflite))
    assert jobs == {"transfer_statistics": 1, "all": 1}


def test_study1_outputs(tiny_run):
    base = tiny_run / "results/latent/yamnet/maas-synth"
    summary = read_csv(base / "decoding/summary.csv")
    assert len(summary) == 28 and set(summary["factor"]) == {"material", "action"}
    assert "StratifiedGroupKFold" in summary["split"].iloc[0]
    # decoding never sees a test clip: folds cover exactly the train and val clips
    split, folds = read_csv(base / "split.csv"), read_csv(base / "cv_folds.csv")
    assert set(folds["clip_id"]) == set(split.loc[split["split"] != "test", "clip_id"])
    assert summary["decoded_on"].str.contains("test split is never decoded").all()
    assert (summary["permutations"] == 200).all() and summary["p_permutation"].between(1 / 201, 1).all()
    assert (summary["null_mean"] <= summary["null_p95"]).all()
    assert len(read_csv(base / "decoding/null.csv")) == 28 * 200
    # tiny has 3 recordings per pair: no validation split, so no early stopping, and curve.csv says so
    curve = read_csv(base / "flow/curve.csv")
    assert len(curve) == 5 and curve["val_loss"].isna().all() and curve["kept"].tolist() == [False] * 4 + [True]
    assert curve["early_stopping"].iloc[0].startswith("off: the validation split is empty")
    tests = read_csv(base / "decoding/tests.csv")
    assert {"p_t_bonferroni", "p_t_holm"} <= set(tests.columns) and len(tests) == 6
    assert json.loads((base / "flow/invertibility.json").read_text())["max_abs_round_trip_error"] <= 1e-4
    statistics = read_csv(base / "transfer/statistics.csv")
    assert len(statistics) == 8 and statistics["p_t_holm"].between(0, 1).all()
    assert (summary["null_unit"] == "recording").all()
    # the transfer is tested over M's recordings, and no partner comes from M's recording
    distances = read_csv(base / "transfer/distances.csv")
    per_factor = distances.groupby("factor").agg(recordings=("group_m", "nunique"), pairs=("pair", "nunique"))
    factor_of = statistics["label_a"].str.split(": ").str[0]
    assert (statistics["n"] == statistics["n_recordings"]).all()
    assert (statistics["n_recordings"].to_numpy() == per_factor.loc[factor_of, "recordings"].to_numpy()).all()
    assert (statistics["n_pairs"].to_numpy() == per_factor.loc[factor_of, "pairs"].to_numpy()).all()
    import h5py

    with h5py.File(base / "transfer/edited.h5", "r") as edited:
        for factor in ("material", "action"):
            m, p, q = (edited[factor][f"group_{x}"].asstr()[()] for x in "mpq")
            assert (m != p).all() and (m != q).all()
    significant = statistics["p_t_bonferroni"] < 0.05  # Figure 2's intervals agree with its stars
    assert (significant == ((statistics["ci_low"] > 0) | (statistics["ci_high"] < 0))).all()
    for figure in ("decoding/decoding.png", "flow/curve.png", "figure1.png", "transfer/figure2.png"):
        assert (base / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study3_outputs(tiny_run):
    base = tiny_run / "results/dissect/yamnet/maas-synth"
    last = read_csv(base / "last_layer.csv")
    assert set(zip(last["method"], last["function"])) == {
        *(("db", f) for f in ("cos", "cos3", "rank_reorder", "wpmi", "soft_wpmi")), ("icl", "llm")}
    assert (last["neurons"] + last["skipped"] == 2).all() and last["top1_accuracy"].between(0, 1).all()
    assert (last["not_in_concepts"] == 0).all()  # the concepts are every label value, classes included
    assert (last["captioner"] == "tags(yamnet)").all() and last["captioner_is_target"].all()
    closed = read_csv(base / "closed_concepts.csv")
    varying = closed[~closed["constant"]]
    assert varying["top1"].notna().all() and set(closed["method"]) == {"db"}
    summaries = read_csv(base / "summaries.csv")
    assert summaries.groupby("layer").size().to_dict() == {"head": 2, "layer14": 2, "layer2": 2, "layer8": 2}
    assert ((summaries["status"] == "ok") == ~summaries["constant"]).all()
    llm = json.loads((base / "summaries.llm.json").read_text())
    assert llm["llm_calls"] + llm["cache_hits"] == 2 * (~summaries["constant"]).sum()
    pruning = read_csv(base / "pruning.csv")
    assert pruning["strategy"].tolist() == ["db", "random_db", "ocp", "random_ocp"] and (pruning["classes"] == 2).all()
    by_strategy = pruning.set_index("strategy")
    db = by_strategy.loc["db"]
    assert db["mean_pruned"] > 0 and db["delta_target_probability"] != 0
    per_class = read_csv(base / "pruning_per_class.csv").set_index(["strategy", "class"])["pruned"]
    for strategy in ("db", "ocp"):  # each random baseline prunes exactly its strategy's count in each class
        assert per_class.loc[f"random_{strategy}"].equals(per_class.loc[strategy])
    # the random baselines are 5 draws with a spread (SD over draws); the strategies are one draw, no SD
    assert by_strategy.loc[["random_db", "random_ocp"], "draws"].eq(5).all()
    assert by_strategy.loc[["random_db", "random_ocp"], "delta_target_probability_sd"].notna().all()
    assert by_strategy.loc[["db", "ocp"], "delta_target_probability_sd"].isna().all()
    # one candidate pool: the 2 summarised neurons of each of the 3 pruned layers
    assert (pruning["candidate_pool"] == "summarised").all() and (pruning["pool_neurons"] == 6).all()
    pos = read_csv(base / "pos_ablation.csv")  # Figure 4(a): r = 25 % and 50 % of the 6 summarised neurons
    assert pos.groupby("fraction")["category"].apply(list).to_dict() == {
        r: ["adjectives", "verbs", "nouns", "prepositions", "caption_len", "random"] for r in (0.25, 0.5)}
    assert pos.groupby("fraction")["pruned"].first().to_dict() == {0.25: 2, 0.5: 3}
    assert (read_csv(base / "icl.csv")["summary"] == "calibrated").all()  # ICL reads Module B's output
    clusters = read_csv(base / "interpretability.csv")
    assert set(clusters["layer"]) == {"layer2", "layer8", "layer14", "head"}
    assert clusters["uninterpretable_percent"].between(0, 100).all()
    for figure in ("last_layer.png", "pruning.png", "pos_ablation.png", "interpretability.png"):
        assert (base / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_forced_rerun_of_the_llm_steps_makes_no_llm_call(tiny_run, yamnet_tflite, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy, symlinks=True)
    base = copy / "results/dissect/yamnet/maas-synth"
    # -f on the three outputs forces exactly these jobs (and calibration, which sits between them). With
    # "-R rules --until rules" Snakemake dropped the downstream jobs once the summaries came out unchanged.
    snakemake(copy, "-f", *(str(base.relative_to(copy) / name) for name in ("summaries.csv", "open_concepts.csv",
                                                                             "icl.csv")), weights=yamnet_tflite)
    assert json.loads((base / "summaries.llm.json").read_text())["llm_calls"] == 0
    for rule in ("open_concepts", "icl_concepts"):
        log = (copy / f"results/logs/{rule}/yamnet/maas-synth.log").read_text()
        assert log != (tiny_run / f"results/logs/{rule}/yamnet/maas-synth.log").read_text(), f"{rule} did not rerun"
        assert re.search(r"'llm_calls': 0, 'cache_hits': [1-9]", log), log[-2000:]
    assert (base / "summaries.csv").read_bytes() == (tiny_run / "results/dissect/yamnet/maas-synth/summaries.csv").read_bytes()


@pytest.mark.parametrize("override, message", [
    ({"dissect": {"layers": ["layer3", "layer99"]}}, "dissect.layers: 'layer99'"),
    ({"dissect": {"methods": ["db", "tab"]}}, "dissect.concepts.clap"),
    ({"dissect": {"captions": {"on_circular": "refuse"}}}, "captions.tagger"),
    ({"activations": {"batch_size": 0}}, "batch_size"),
    ({"activations": {"runs": [{"model": "yamnet", "dataset": "nope"}]}}, "activations.runs[0].dataset: 'nope'"),
    ({"activations": {"layers": ["layer1", "layer99"]}}, "no layer 'layer99'"),
    ({"datasets": {"maas-synth": {"materials": ["wood", "jelly"]}}}, "jelly"),
    ({"datasets": {"mine": {"kind": "folder", "root": "/does/not/exist"}}}, "datasets.mine.root"),
    ({"latent": {"flow": {"layer": 15}}}, "latent.flow.layer: 15 is out of range"),
    ({"latent": {"flow": {"layer": "layer0"}}}, "latent.flow.layer: 'layer0'"),
    ({"latent": {"runs": [{"model": "yamnet", "dataset": "commands-synth"}]}}, "latent.runs[0]"),
    ({"metamers": {"yamnet": {"layers": ["layer99"]}}},
     "metamers.yamnet.layers: model 'yamnet' has no layer 'layer99'"),
    ({"metamers": {"frontend": {"nn": 10}}},
     "metamers.frontend: Additional properties are not allowed ('nn' was unexpected)"),
    ({"metamers": {"frontend": {"n": "ten"}}}, "metamers.frontend.n: 'ten' is not of type 'integer'"),
    ({"metamers": {"dataset": "nope"}}, "metamers.dataset: 'nope' is not under datasets"),
    ({"metamers": {"yamnet": {"model": "nope"}}}, "metamers.yamnet.model: 'nope' is not under models"),
    ({"dissect": {"calibration": {"threshold": -5}}},
     "dissect.calibration.threshold: -5 is less than the minimum of -1"),
])
def test_a_bad_config_fails_before_any_job_naming_the_key(tmp_path, yamnet_tflite, override, message):
    result = snakemake(tmp_path, "-n", config=override, weights=yamnet_tflite, check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


# The rule's params as Snakemake computes them from the config it loaded (a dry run does not print params).
PARAMS_OF_EXTRACTION = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from snakemake.api import SnakemakeApi
from snakemake.cli import parse_config
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, configfile, workdir, entries = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=snakefile, workdir=workdir,
                            config_settings=ConfigSettings(configfiles=[configfile], config=parse_config(entries)))
    rule = workflow._workflow.get_rule("extract_activations_yamnet")
    print("PARAMS " + json.dumps(rule.params.settings(SimpleNamespace(dataset="maas-synth"))))
"""


def test_the_config_example_in_config_yaml_works(tmp_path, yamnet_tflite):
    """config.yaml's header shows --config activations='{"batch_size": 16}'. Snakemake reads the nested 16 as
    the string '16'; the workflow turns it back into the schema's integer, and extraction gets 16."""
    header = (REPO / "config.yaml").read_text().split("\n\n")[0]
    example = """--config activations='{"batch_size": 16}'"""
    assert example in header
    entry = 'activations={"batch_size": 16}'  # the argument the shell makes of the example
    models = "models=" + json.dumps({"yamnet": {"kind": "yamnet", "weights": str(yamnet_tflite),
                                                "class_map": str(Path(yamnet_tflite).with_name("yamnet_class_map.csv"))}})
    result = subprocess.run([SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path / "run"),
                             "--cores", "2", "-n", "--configfile", str(TINY), "--config", models, entry],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert scheduled(result)["extract_activations_yamnet"] == 1
    params = subprocess.run([sys.executable, "-c", PARAMS_OF_EXTRACTION, str(REPO / "Snakefile"), str(TINY),
                             str(tmp_path / "api"), models, entry], capture_output=True, text=True)
    assert params.returncode == 0, params.stderr[-3000:]
    settings = json.loads(params.stdout.split("PARAMS ", 1)[1])
    assert settings["batch_size"] == 16  # tiny.yaml says 8


def test_missing_weights_name_the_config_key(tmp_path):
    result = snakemake(tmp_path, "-n", weights=tmp_path / "nowhere" / "yamnet.tflite", check=False)
    assert result.returncode != 0 and "models.yamnet.weights" in result.stdout + result.stderr


@pytest.mark.parametrize("weights, problem", [
    ("yamnet.tflit", "is a file, but not a .tflite, .h5, .hdf5 file"),
    ("missing/yamnet.tflit", "does not exist"),
    ("empty_folder", "is a folder without saved_model.pb"),
])
def test_weights_that_are_no_weights_fail_before_any_job_naming_the_key(tmp_path, yamnet_tflite, weights, problem):
    path = tmp_path / weights
    if weights == "yamnet.tflit":
        shutil.copyfile(yamnet_tflite, path)
    elif weights == "empty_folder":
        path.mkdir()
    workdir = tmp_path / "work"
    result = snakemake(workdir, "-n", weights=path, check=False)
    assert result.returncode != 0
    assert f"models.yamnet.weights: {path} {problem}" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_without_weights_the_download_rule_is_scheduled(tmp_path):
    command = [SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n",
               "--configfile", str(TINY)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert scheduled(result)["download_yamnet"] == 1


def test_lint_is_clean():
    result = subprocess.run([SNAKEMAKE, "--lint", "--snakefile", str(REPO / "Snakefile"), "--directory", str(REPO)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_study1_runs_on_a_folder_of_real_recordings(tmp_path, yamnet_tflite):
    """The real-recordings path: stereo 44.1 kHz WAVs (one of them float) with labels from a CSV."""
    from tests.conftest import shared_path

    root = shared_path("data", "materials_roll")
    config = {
        "datasets": {"rolling": {"kind": "folder", "root": str(root), "clip_seconds": 0.975, "hop_seconds": 0.48,
                                 "labels": {"scheme": "csv", "csv": "labels.csv",
                                            "columns": ["material", "class_name"]}}},
        "activations": {"runs": [{"model": "yamnet", "dataset": "rolling"}]},
        "latent": {"runs": [{"model": "yamnet", "dataset": "rolling"}], "factors": ["material", "class_name"],
                   "flow": {"layer": "layer9"},
                   # 4 recordings per class: 2 test ones, so a transfer partner can come from another recording
                   "split": {"val_fraction": 0.2, "test_fraction": 0.4}},
        "dissect": {"runs": []},
    }
    base = "results/latent/yamnet/rolling"
    snakemake(tmp_path, f"{base}/transfer/statistics.csv", f"{base}/figure1.png", f"{base}/decoding/summary.csv",
              config=config,
              weights=yamnet_tflite)
    clips = read_manifest(tmp_path / "results/datasets/rolling/manifest.csv")
    assert clips["path"].nunique() == 20 and set(clips["channels"]) == {2}
    summary = read_csv(tmp_path / f"{base}/decoding/summary.csv")
    assert set(summary["factor"]) == {"material", "class_name"} and len(summary) == 28
    assert read_csv(tmp_path / f"{base}/flow/curve.csv")["epoch"].max() >= 1


def test_study3_on_real_recordings_with_oracle_captions(tmp_path, yamnet_tflite):
    """ESC-10 clips (ESC-50's naming) of four classes, captioned by the labels oracle: the closed-set
    method must then name the head's output neurons, and pruning a class's neurons must hurt that class."""
    from tests.conftest import shared_path

    root = shared_path("data", "esc10")
    meta = read_csv(root / "meta.csv")
    classes = ["dog", "rain", "rooster", "crying_baby"]
    subset = tmp_path / "labels.csv"
    meta[meta["category"].isin(classes)].to_csv(subset, index=False)
    config = {
        "datasets": {"esc": {"kind": "folder", "root": str(root), "clip_seconds": 1.0,
                             "labels": {"scheme": "csv", "csv": str(subset), "columns": ["category"],
                                        "group_column": "src_file"}}},
        "activations": {"runs": [{"model": "yamnet", "dataset": "esc"}], "layers": ["layer4", "layer10", "layer14"]},
        "latent": {"runs": []},
        "metamers": {"dataset": None},
        "dissect": {"runs": [{"model": "yamnet", "dataset": "esc"}], "label": "category", "layers": "all",
                    "neurons": {"per_layer": 1}, "captions": {"backend": "labels"}, "top_k": 5,
                    "similarity": {"functions": ["cos", "soft_wpmi"]},
                    # one neuron per layer is summarised: DB and its random baseline choose from every neuron
                    # (without OCP, which needs a summary for each)
                    "pruning": {"pool": "all"}},
    }
    snakemake(tmp_path, config=config, weights=yamnet_tflite)
    base = tmp_path / "results/dissect/yamnet/esc"
    captions = read_csv(base / "captions.csv")
    assert len(captions) > 100 and captions["caption"].str.startswith("A recording of ").all()
    last = read_csv(base / "last_layer.csv").set_index(["method", "function"])
    assert last.loc[("db", "cos"), "neurons"] == 4
    assert last.loc[("db", "cos"), "top1_accuracy"] >= 0.75, last
    assert not last["captioner_is_target"].any() and (last["captioner"] == "labels(category)").all()
    pruning = read_csv(base / "pruning.csv").set_index("strategy")
    assert pruning.loc["db", "difference_probability"] < 0, pruning
    assert pruning.loc["db", "delta_target_probability"] < pruning.loc["random_db", "delta_target_probability"]
    assert pruning.loc["db", "mean_pruned"] == pruning.loc["random_db", "mean_pruned"] > 0
    assert "ocp" not in pruning.index and (pruning["candidate_pool"] == "all").all()
