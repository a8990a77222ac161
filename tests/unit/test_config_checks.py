"""Config errors that name the key (issue 11, points 6 and 7): before any job where the config alone decides,
and in the first job of each study's branch where the manifest does (its labels)."""

import runpy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from audioprobe import config
from audioprobe.io.atomic import read_csv, write_csv

REPO = Path(__file__).resolve().parents[2]
BRAIN = {"kind": "target", "stimuli": "maas-synth", "responses": "responses.h5"}
LAYERS = [f"layer{i}" for i in range(1, 15)]


def layer_names(model_config):
    """The registry's layers (framework-free), checked to be YAMNet's for a YAMNet entry."""
    from audioprobe.models.registry import layer_names as registry_layers

    names = registry_layers(model_config)
    assert model_config["kind"] != "yamnet" or names == LAYERS
    return names


def full_config(*, every_model: bool = False, **sections):
    """The default config.yaml with ``sections`` merged over it, coerced and filled as common.smk does; with
    YAMNet alone unless ``every_model`` (the checks below name YAMNet's layers)."""
    import yaml

    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    if not every_model:
        yamnet_only(cfg)
    for section, values in sections.items():
        cfg.setdefault(section, {})
        _merge(cfg[section], values)
    schema = config.load_schema()
    config.coerce_strings(cfg, schema)
    config.fill_defaults(cfg, schema)
    return cfg


def yamnet_only(cfg: dict) -> None:
    """The default config without its other models (their runs, and their per-model layer lists)."""
    cfg["models"] = {"yamnet": cfg["models"]["yamnet"]}
    for section in ("activations", "latent", "dissect"):
        cfg[section]["runs"] = [run for run in cfg[section]["runs"] if run["model"] == "yamnet"]
        if isinstance(cfg[section].get("layers"), dict):
            cfg[section]["layers"] = cfg[section]["layers"].get("yamnet", "all")
    cfg["compare"]["runs"] = [{**run, "models": ["yamnet"]} for run in cfg["compare"]["runs"]]


def _merge(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def check_all(cfg):
    config.check_schema(cfg, config.load_schema())
    config.check_references(cfg, layer_names)
    config.check_targets(cfg)
    config.check_latent(cfg, layer_names)
    config.check_metamers(cfg, layer_names)
    config.check_dissect(cfg, layer_names)
    config.check_compare(cfg)


def test_the_default_config_passes_every_check():
    check_all(full_config(every_model=True))
    check_all(full_config())


# --- point 6: before any job ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sections, message", [
    ({"metamers": {"pretrained": {"layers": ["layer2", "layer99"]}}},
     "metamers.pretrained.layers: model 'yamnet' has no layer 'layer99'; its layers are layer1, layer2"),
    ({"metamers": {"frontend": {"nn": 10}}},
     "metamers.frontend: Additional properties are not allowed ('nn' was unexpected); allowed: double_positive, "
     "dtype, env_sr, envelope_oversampling, fake_relu"),
    ({"metamers": {"frontend": {"kind": "stft", "n": 40}}},
     "metamers.frontend: Additional properties are not allowed ('envelope_oversampling', 'n', 'sample_factor' were "
     "unexpected); allowed: fft_length, frame_length, frame_step, kind"),
    ({"metamers": {"frontend": {"n": "ten"}}}, "metamers.frontend.n: 'ten' is not of type 'integer'"),
    ({"metamers": {"dataset": "nope"}},
     "metamers.dataset: 'nope' is not under datasets (configured: maas-synth, commands-synth)"),
    ({"metamers": {"pretrained": {"model": "nope"}}}, "metamers.pretrained.model: 'nope' is not under models (configured: "
                                                  "yamnet)"),
    ({"dissect": {"calibration": {"threshold": -5}}},
     "dissect.calibration.threshold: -5 is less than the minimum of -1"),
    ({"dissect": {"calibration": {"threshold": 1.5}}},
     "dissect.calibration.threshold: 1.5 is greater than the maximum of 1"),
    ({"activations": {"runs": [{"model": "yamnet", "dataset": "maas-synth", "extra": 1}]}},
     "activations.runs[0]: Additional properties are not allowed ('extra' was unexpected)"),
    ({"compare": {"runs": [{"dataset": "maas-synth", "models": ["yamnet", "crepe"]}]}},
     "compare.runs[0].models: crepe on maas-synth is not in activations.runs; add it there"),
    ({"compare": {"runs": [{"dataset": "maas-synth", "models": ["yamnet"]}] * 2}},
     "compare.runs[1]: 'maas-synth' has an earlier run; list all the models compared on a dataset in one run"),
    ({"compare": {"label_rsa": {"unit": "speaker"}}},
     "compare.label_rsa.unit: 'speaker' is not one of ['group', 'clip']"),
    ({"compare": {"label_rsa": {"methods": ["pearson"]}}}, "compare.label_rsa.methods[0]: 'pearson' is not one of"),
    ({"datasets": {"brain": {**BRAIN, "stimuli": "nope"}}},
     "datasets.brain.stimuli: 'nope' is not an audio dataset under datasets (configured: maas-synth, commands-synth)"),
    ({"datasets": {"brain": BRAIN}, "activations": {"runs": [{"model": "yamnet", "dataset": "brain"}]}},
     "activations.runs[0].dataset: 'brain' is a target (responses, no audio); name its stimuli dataset 'maas-synth'"),
    ({"compare": {"runs": [{"dataset": "maas-synth", "models": ["yamnet"], "targets": ["commands-synth"]}]}},
     "compare.runs[0].targets: 'commands-synth' is not a dataset of kind target"),
    ({"datasets": {"brain": {**BRAIN, "stimuli": "commands-synth"}},
      "compare": {"runs": [{"dataset": "maas-synth", "models": ["yamnet"], "targets": ["brain"]}]}},
     "compare.runs[0].targets: 'brain' holds responses to 'commands-synth', not to 'maas-synth'"),
    ({"datasets": {"brain": {**BRAIN, "axes": ["stimuli", "voxels"]}}}, "datasets.brain"),
    ({"dissect": {"llm": {"prompts": {"simulation_line": "Sound: {caption}\nScore: "}}}},
     "dissect.llm.prompts.simulation_line has no {explanation}"),
    ({"dissect": {"scoring": {"alpha": 0}}}, "dissect.scoring.alpha: 0 is less than or equal to the minimum of 0"),
])
def test_a_bad_setting_is_refused_naming_its_key(sections, message):
    with pytest.raises(config.ConfigError) as error:
        check_all(full_config(**sections))
    assert str(error.value).startswith(message), str(error.value)


def test_every_frontend_parameter_in_the_schema_is_one_the_frontend_takes():
    """The strict schema lists exactly the keyword arguments of each front end's constructor."""
    from audioprobe.metamers.frontends import FRONTENDS, frontend_parameters

    frontend = config.load_schema()["properties"]["metamers"]["properties"]["frontend"]
    listed = {branch["if"]["properties"]["kind"]["const"]: set(branch["then"]["properties"]) - {"kind"}
              for branch in frontend["allOf"]}
    assert listed == {kind: set(frontend_parameters(kind)) for kind in FRONTENDS}


def test_a_null_read_from_the_command_line_says_how_to_turn_a_study_off():
    with pytest.raises(config.ConfigError, match="metamers.dataset: 'null' is not under datasets.*--configfile"):
        check_all(full_config(metamers={"dataset": "null"}))


def test_pretrained_metamers_turned_off_need_no_model():
    check_all(full_config(metamers={"pretrained": {"model": None}}))
    check_all(full_config(metamers={"pretrained": {"model": "nope", "layers": []}}))
    check_all(full_config(metamers={"dataset": None, "pretrained": {"model": "nope"}}))


# --- point 7: --config values arrive as strings -------------------------------------------------------------


def test_strings_become_the_schemas_types():
    cfg = {"activations": {"batch_size": "16", "runs": [{"model": "yamnet", "dataset": "a"}]},
           "datasets": {"a": {"kind": "commands-synth", "clip_seconds": "0.5", "pitch": ["30", "70.5"],
                              "hop_seconds": "null", "words": ["1", "2"]}},
           "latent": {"flow": {"layer": "15", "learning_rate": "1e-3"}, "split": {"seed": "-3"}},
           "metamers": {"frontend": {"kind": "cochleagram", "n": "40", "high_hz": "null", "fake_relu": "true",
                                     "padding": "SAME"},
                        "synthesis": {"relu_gradient": "true"}, "responses": "null"},
           "dissect": {"neurons": {"per_layer": "3"}, "calibration": {"threshold": "-0.5"},
                       "open_concepts": {"llm_filter": "false"}}}
    config.coerce_strings(cfg, config.load_schema())
    assert cfg["activations"]["batch_size"] == 16
    assert cfg["datasets"]["a"]["clip_seconds"] == 0.5 and cfg["datasets"]["a"]["pitch"] == [30, 70.5]
    assert cfg["datasets"]["a"]["hop_seconds"] is None
    assert cfg["latent"]["flow"]["learning_rate"] == 0.001 and cfg["latent"]["split"]["seed"] == -3
    assert cfg["metamers"]["frontend"] == {"kind": "cochleagram", "n": 40, "high_hz": None, "fake_relu": True,
                                           "padding": "SAME"}
    assert cfg["dissect"]["neurons"]["per_layer"] == 3 and cfg["dissect"]["calibration"]["threshold"] == -0.5
    assert cfg["dissect"]["open_concepts"]["llm_filter"] is False
    # Where the schema accepts the string as it is, it stays: a layer name, an enum value, a string-or-null.
    assert cfg["latent"]["flow"]["layer"] == "15"
    assert cfg["metamers"]["synthesis"]["relu_gradient"] == "true"
    assert cfg["metamers"]["responses"] == "null" and cfg["datasets"]["a"]["words"] == ["1", "2"]


def test_strings_that_do_not_parse_stay_and_fail_validation_naming_the_key():
    cfg = full_config(activations={"batch_size": "16x"})
    assert cfg["activations"]["batch_size"] == "16x"
    with pytest.raises(config.ConfigError, match=r"^activations.batch_size: '16x' is not of type 'integer'"):
        check_all(cfg)
    with pytest.raises(config.ConfigError, match=r"^activations.batch_size: 0 is less than the minimum of 1"):
        check_all(full_config(activations={"batch_size": "0"}))


def test_the_header_example_of_config_yaml_works():
    """config.yaml's header shows --config activations='{"batch_size": 16}'; parse it as Snakemake does."""
    from snakemake.cli import parse_config

    header = (REPO / "config.yaml").read_text().split("\n\n")[0]
    assert """snakemake --cores 2 --config activations='{"batch_size": 16}'""" in header
    override = parse_config(['activations={"batch_size": 16}'])
    assert override == {"activations": {"batch_size": "16"}}  # what Snakemake hands the workflow
    cfg = full_config(**override)
    check_all(cfg)
    assert cfg["activations"]["batch_size"] == 16 and cfg["activations"]["runs"]


def test_weights_null_given_with_config_arrives_as_text_and_the_error_says_so(tmp_path, monkeypatch):
    """models.<name>.weights takes a path (a string) or null, so the string 'null' from --config is kept as a
    path; the pre-run check (common.smk's check_weights_setting) then says how it was read."""
    from snakemake.cli import parse_config

    from audioprobe.models import WeightsSettingError, check_weights_setting

    override = parse_config(['models={"yamnet": {"weights": null}}'])
    assert override == {"models": {"yamnet": {"weights": "null"}}}  # what Snakemake hands the workflow
    cfg = full_config(**override)
    assert cfg["models"]["yamnet"]["weights"] == "null"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WeightsSettingError, match=r"^models\.yamnet\.weights: null does not exist .*\(--config reads "
                                                  r"a nested null as the string 'null': .*--configfile"):
        check_weights_setting("yamnet", cfg["models"]["yamnet"]["weights"])


# --- activations.store: projected layers ----------------------------------------------------------------------

# Study 3 dissects no layer and Study 1's flow uses layer12: every other layer may be stored projected.
ELSEWHERE = {"dissect": {"runs": []}, "latent": {"flow": {"layer": "layer12"}}}


def check_store(store, **sections):
    import copy

    merged = copy.deepcopy(ELSEWHERE)
    _merge(merged, {**sections, "activations": {**sections.get("activations", {}), "store": store}})
    cfg = full_config(**merged)
    check_all(cfg)
    config.check_storage(cfg, layer_names)
    return cfg


def test_the_schema_takes_a_projection_alone_after_pooling_or_with_a_seed():
    cfg = check_store({"layer3": {"project": 256}, "layer5": {"pool": ["time"], "project": 128, "seed": 7},
                       "layer14": {"project": "1024"}})  # as --config passes it
    assert cfg["activations"]["store"]["layer14"] == {"project": 1024}


@pytest.mark.parametrize("value, message", [
    ({"project": 0}, "0 is less than the minimum of 1"),
    ({"project": "many"}, "'many' is not of type 'integer'"),
    ({"project": 256, "seed": -1}, "-1 is less than the minimum of 0"),
    ({"seed": 3}, ""),  # a seed without a projection
    ({"project": 256, "components": 9}, "'components' was unexpected"),
])
def test_a_malformed_projection_is_refused_naming_the_key(value, message):
    with pytest.raises(config.ConfigError, match=r"^activations.store.layer3") as error:
        check_store({"layer3": value})
    assert message in str(error.value)


@pytest.mark.parametrize("store, sections, message", [
    ({"layer3": {"project": 256}},
     {"dissect": {"runs": [{"model": "yamnet", "dataset": "maas-synth"}], "layers": "all"}},
     r"^activations.store.layer3: layer3 is stored projected, but Study 3 continues the network from it "
     r"\(dissect.layers: all, for dissect.runs\[0\]\) and needs its full activations: remove layer3 from "
     r"activations.store to store it full, or list dissect.layers without it"),
    ({"layer12": {"pool": ["time"], "project": 256}}, {},
     r"^activations.store.layer12: layer12 is stored pooled and projected, but Study 1's transfer continues the "
     r"network from it \(latent.flow.layer: 'layer12'\) .* or set latent.flow.layer to a layer stored full"),
    ({"layer3": {"project": 256}}, {"latent": {"flow": {"layer": "best"}}},
     r"^activations.store.layer3: layer3 is stored projected, but Study 1's transfer may continue the network "
     r"from it \(latent.flow.layer: 'best'\)"),
    ({"layer14": {"project": 6145}}, {},
     r"^activations.store.layer14.project: 6145 components are more than the 6144 values per clip of layer14 for "
     r"yamnet on maas-synth \(0.975 s clips\), and a projection cannot add information: set it to at most 6144, "
     r"or remove layer14 from activations.store to store it full$"),
    ({"layer14": {"pool": ["patch", "time", "freq"], "project": 2048}}, {},
     r"^activations.store.layer14.project: 2048 components are more than the 1024 values per clip of layer14 "
     r"pooled over patch, time, freq"),
    ({"layer3": {"project": 32}}, {},
     r"^activations.store.layer3.project: 32 components, but Study 1 fits latent.pca_components \(64\) principal "
     r"components per fold on them \(latent.runs\[0\]: yamnet on maas-synth\): set activations.store.layer3.project "
     r"to at least 64, or lower latent.pca_components to at most 32$"),
])
def test_a_projection_a_study_cannot_use_or_larger_than_its_layer_is_refused_naming_the_key(store, sections,
                                                                                          message):
    with pytest.raises(config.ConfigError, match=message):
        check_store(store, **sections)


def test_a_small_projection_passes_without_study_1_and_matches_the_pca_it_feeds():
    check_store({"layer3": {"project": 32}}, latent={"runs": [], "pca_components": 64})
    check_store({"layer3": {"project": 32}}, latent={"pca_components": 32})


# --- point 6: labels, in the first job of each branch ---------------------------------------------------------


def write_manifest(path, **labels):
    clips = []
    for i in range(12):
        clips.append({"clip_id": f"c{i}", "path": f"c{i}.wav", "offset": 0.0, "duration": 1.0,
                      "sample_rate": 16000, "channels": 1, "group": f"g{i // 2}",
                      **{f"label_{name}": values[i % len(values)] for name, values in labels.items()}})
    write_csv(path, pd.DataFrame(clips))
    return path


def run_split_script(monkeypatch, script, manifest, out, **params):
    """Run a split script as Snakemake would, with its rule's params."""
    import audioprobe.workflow

    monkeypatch.setattr(audioprobe.workflow, "setup", lambda snakemake: None)
    snakemake = SimpleNamespace(input=[str(manifest)], output=[str(out)], params=SimpleNamespace(**params), log=[])
    runpy.run_path(str(REPO / "workflow" / "scripts" / script), init_globals={"snakemake": snakemake})


SPLITS = {"val_fraction": 0.2, "test_fraction": 0.4, "seed": 0}
BRANCHES = [
    # script, params naming the label, the key the error must name
    ("latent_split.py", lambda label: {"factors": [label, "action"], "split": SPLITS}, "latent.factors"),
    ("keyword_split.py", lambda label: {"label": label, "split": SPLITS}, "metamers.label"),
    ("dissect_split.py", lambda label: {"dissect": {"label": label, "split": {"heldout_fraction": 0.3, "seed": 0}}},
     "dissect.label"),
]


@pytest.mark.parametrize("script, params, key", BRANCHES)
def test_a_label_the_manifest_lacks_is_named_by_its_key_in_the_first_job(tmp_path, monkeypatch, script, params,
                                                                          key):
    manifest = write_manifest(tmp_path / "manifest.csv", material=["wood", "metal"], action=["tap", "rub"])
    with pytest.raises(config.ConfigError) as error:
        run_split_script(monkeypatch, script, manifest, tmp_path / "split.csv", **params("colour"))
    assert str(error.value) == (f"{key}: the manifest {manifest} has no label 'colour'; its labels are material, "
                                f"action: name one of them in {key}")
    assert not (tmp_path / "split.csv").exists()


@pytest.mark.parametrize("script, params, key", BRANCHES)
def test_a_label_with_one_value_is_found_at_the_split(tmp_path, monkeypatch, script, params, key):
    manifest = write_manifest(tmp_path / "manifest.csv", material=["wood"], action=["tap", "rub"])
    with pytest.raises(config.ConfigError, match=rf"^{key}: 'material' has one value \('wood'\) in {manifest}: "
                                                 r".* needs at least two"):
        run_split_script(monkeypatch, script, manifest, tmp_path / "split.csv", **params("material"))
    assert not (tmp_path / "split.csv").exists()


@pytest.mark.parametrize("script, params, key", BRANCHES)
def test_good_labels_split(tmp_path, monkeypatch, script, params, key):
    manifest = write_manifest(tmp_path / "manifest.csv", material=["wood", "metal"], action=["tap", "rub"])
    run_split_script(monkeypatch, script, manifest, tmp_path / "split.csv", **params("material"))
    assert len(read_csv(tmp_path / "split.csv")) == 12


def test_too_few_groups_name_the_studys_split_key(tmp_path):
    from audioprobe.latent.steps import make_split

    # Every word in one speaker group: no word has a group to spare for the test split.
    manifest = write_manifest(tmp_path / "manifest.csv", word=[word for word in "abcdef" for _ in range(2)])
    with pytest.raises(ValueError, match="change metamers.split"):
        make_split(manifest, tmp_path / "split.csv", ["word"], {"val_fraction": 0.2, "test_fraction": 0.2, "seed": 0},
                   section="metamers", labels_key="metamers.label")


def test_the_old_name_of_pretrained_metamers_is_refused_with_the_new_one():
    cfg = full_config()
    cfg["metamers"]["yamnet"] = cfg["metamers"].pop("pretrained")
    with pytest.raises(config.ConfigError, match=r"^metamers\.yamnet was renamed metamers\.pretrained"):
        config.check_renamed(cfg)


def test_the_default_captioner_is_never_the_dissected_network():
    """dissect.captions.tagger: auto takes another model with class names, so the default run is not circular."""
    cfg = full_config(every_model=True)
    assert cfg["dissect"]["captions"]["tagger"] == "auto"
    assert [config.tagger_for(cfg, model) for model in ("yamnet", "crepe", "musicnn")] == ["musicnn", "yamnet",
                                                                                          "yamnet"]
    assert config.check_circular(cfg) == []
    alone = full_config()  # YAMNet alone: it tags its own clips, and the run says so
    assert config.tagger_for(alone, "yamnet") == "yamnet"
    assert "is the network under dissection" in config.check_circular(alone)[0]
    no_classes = full_config(every_model=True)
    no_classes["models"] = {"crepe": no_classes["models"]["crepe"]}
    with pytest.raises(config.ConfigError, match="dissect.captions.tagger: auto found no model with class names"):
        config.tagger_for(no_classes, "crepe")
