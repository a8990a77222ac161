"""The model registry is the one place a family is declared: the schema, the rules' envs and the loaders follow it."""

import importlib
from pathlib import Path

import yaml

from audioprobe.models import registry

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def test_the_schema_knows_exactly_the_registrys_families():
    model = SCHEMA["$defs"]["model"]
    assert model["properties"]["kind"]["enum"] == list(registry.KINDS)
    branches = [branch["if"]["properties"]["kind"]["const"] for branch in model["allOf"]]
    assert sorted(branches) == sorted(registry.KINDS)


def test_every_family_names_a_builder_an_env_and_its_layers():
    for kind, spec in registry.FAMILIES.items():
        module, function = spec.build.split(":")
        assert callable(getattr(importlib.import_module(module), function)), kind
        assert (REPO / spec.env_file).is_file(), kind
    assert registry.layer_names({"kind": "crepe"})[-1] == "classifier"
    assert registry.layer_names({"kind": "musicnn", "checkpoint": "MTT_vgg"})[-1] == "taggram"


def test_classes_and_continuable_layers_are_declared_per_family():
    assert registry.can_tag("yamnet", {"kind": "yamnet", "class_map": None})
    assert registry.can_tag("m", {"kind": "musicnn", "checkpoint": "MTT_musicnn"})
    assert not registry.can_tag("crepe", {"kind": "crepe"})
    keyword = {"kind": "keyword", "arch": "conv2d", "dataset": "words"}
    assert registry.spec_of("keyword").class_names("kw", keyword).endswith("evaluation.json")
    assert not registry.can_tag("kw", keyword)  # its words name its classes, they do not tag clips
    mine = {"kind": "torch_module", "class_names": "classes.csv"}
    assert registry.can_tag("mine", mine) and not registry.can_tag("mine", {"kind": "torch_module"})
    assert "cnn2" not in registry.continuable({"kind": "musicnn", "checkpoint": "MTT_musicnn"})
    assert registry.continuable({"kind": "yamnet"}) is None


def test_an_entry_inherits_the_settings_its_family_names():
    config = {"metamers": {"frontend": {"kind": "stft"}, "groups": 4, "sizes": "seed"},
              "datasets": {"words": {"clip_seconds": 1.5}}}
    entry = registry.completed({"kind": "keyword", "arch": "conv2d", "dataset": "words"}, config)
    assert entry["frontend"] == {"kind": "stft"} and entry["clip_seconds"] == 1.5
    assert registry.completed({"kind": "yamnet"}, config) == {"kind": "yamnet"}
