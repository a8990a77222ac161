"""The workflow end to end on a tiny config, and config errors caught before any job (dry runs, quick).

What a config change reruns is tests/test_robustness.py's table (RERUN_CASES); every snakemake command line
comes from tests/snakemake_cli.py.
"""

import json
import shutil
import subprocess
import sys

import pytest

from audioprobe.datasets.manifest import read_manifest
from audioprobe.io.atomic import read_csv
from audioprobe.io.store import LayerFile
from tests import snakemake_cli
from tests.conftest import REPO
from tests.snakemake_cli import scheduled


@pytest.mark.slow
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
    ({"metamers": {"pretrained": {"layers": ["layer99"]}}},
     "metamers.pretrained.layers: model 'yamnet' has no layer 'layer99'"),
    ({"metamers": {"frontend": {"nn": 10}}},
     "metamers.frontend: Additional properties are not allowed ('nn' was unexpected)"),
    ({"metamers": {"frontend": {"n": "ten"}}}, "metamers.frontend.n: 'ten' is not of type 'integer'"),
    ({"metamers": {"dataset": "nope"}}, "metamers.dataset: 'nope' is not under datasets"),
    ({"metamers": {"pretrained": {"model": "nope"}}}, "metamers.pretrained.model: 'nope' is not under models"),
    ({"dissect": {"calibration": {"threshold": -5}}},
     "dissect.calibration.threshold: -5 is less than the minimum of -1"),
])
def test_a_bad_config_fails_before_any_job_naming_the_key(tmp_path, yamnet_tflite, override, message):
    result = snakemake_cli.run(tmp_path, "-n", config=override, weights=yamnet_tflite, check=False)
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
    result = snakemake_cli.run(tmp_path / "run", "-n", weights=yamnet_tflite, entries=(entry,), check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert scheduled(result)["extract_activations_yamnet"] == 1
    # Not a snakemake command line: the same config entries through Snakemake's API, to read the rule's params.
    params = subprocess.run([sys.executable, "-c", PARAMS_OF_EXTRACTION, str(snakemake_cli.SNAKEFILE),
                             str(snakemake_cli.TINY), str(tmp_path / "api"),
                             snakemake_cli.yamnet_override(yamnet_tflite), entry], capture_output=True, text=True)
    assert params.returncode == 0, params.stderr[-3000:]
    settings = json.loads(params.stdout.split("PARAMS ", 1)[1])
    assert settings["batch_size"] == 16  # tiny.yaml says 8


def test_missing_weights_name_the_config_key(tmp_path):
    result = snakemake_cli.run(tmp_path, "-n", weights=tmp_path / "nowhere" / "yamnet.tflite", check=False)
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
    result = snakemake_cli.run(workdir, "-n", weights=path, check=False)
    assert result.returncode != 0
    assert f"models.yamnet.weights: {path} {problem}" in result.stdout + result.stderr
    assert not (workdir / "results").exists()


def test_without_weights_the_download_rule_is_scheduled(tmp_path):
    result = snakemake_cli.run(tmp_path, "-n", cores=None)
    assert scheduled(result)["download_model_file"] == 2  # the weights and the class map


def test_lint_is_clean():
    result = snakemake_cli.run(REPO, "--lint", cores=None, configfile=REPO / "config.yaml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
