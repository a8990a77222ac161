"""Readers of what the dissection steps store: the split's probe clips, the ``# config:`` record of a table,
neuron files, captions, concept files and concept scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audioprobe.io.atomic import read_csv
from audioprobe.io.store import LayerFile

PROBE, HELDOUT = "probe", "heldout"


def csv_config(path) -> dict:
    """The ``# config:`` record on the first line of a table written by write_csv."""
    with open(path) as handle:
        first = handle.readline()
    return json.loads(first[len("# config: "):]) if first.startswith("# config: ") else {}


def probe_ids(split_path, which: str = PROBE) -> list[str]:
    split = read_csv(split_path)
    return split.loc[split["split"] == which, "clip_id"].tolist()


def rows_of(clip_ids: list[str], wanted: list[str], source) -> np.ndarray:
    """Indices of ``wanted`` clip ids in ``clip_ids``, with an error naming the first missing one."""
    position = {clip: i for i, clip in enumerate(clip_ids)}
    missing = [clip for clip in wanted if clip not in position]
    if missing:
        raise ValueError(f"{source} has no clip {missing[0]!r} ({len(missing)} missing): rerun the rule "
                         "that makes it")
    return np.array([position[clip] for clip in wanted], dtype=np.int64)


class Neurons:
    """One layer's neuron file: values [probe clips, neurons], top/bottom clips, sampled neurons."""

    def __init__(self, path):
        with LayerFile(path) as stored:
            self.layer = stored.attrs["layer"]
            self.clip_ids = stored.clip_ids
            self.values = stored.file["values"][()]
            self.top = stored.file["top"][()]
            self.bottom = stored.file["bottom"][()]
            self.sampled = stored.file["sampled"][()]
            self.constant = stored.file["constant"][()].astype(bool)
            self.names = stored.strings("names") if "names" in stored.file else []


def read_neurons(paths) -> dict[str, Neurons]:
    layers = {}
    for path in paths:
        stored = Neurons(path)
        layers[stored.layer] = stored
    return layers


class HeldOut:
    """One layer's held-out file: values [held-out clips, neurons] and the clips' labels."""

    def __init__(self, path):
        with LayerFile(path) as stored:
            self.layer = stored.attrs["layer"]
            self.clip_ids = stored.clip_ids
            self.labels = stored.labels
            self.values = stored.file["values"][()]


def read_heldout(paths) -> dict[str, HeldOut]:
    """{layer: its held-out file}; every file must cover the same clips in the same order."""
    layers = {}
    for path in paths:
        stored = HeldOut(path)
        if layers and stored.clip_ids != next(iter(layers.values())).clip_ids:
            raise ValueError(f"{path} covers other held-out clips than {paths[0]}: rerun the dissection's "
                             "held-out steps")
        layers[stored.layer] = stored
    return layers


def captions_of(path) -> tuple[dict[str, str], str]:
    table = read_csv(path)
    return dict(zip(table["clip_id"], table["caption"].fillna(""))), csv_config(path).get("captioner", "?")


def captioner_columns(captions_path) -> dict:
    """The captioner of a captions table and whether it is the network under dissection, as table columns."""
    config = csv_config(captions_path)
    return {"captioner": config.get("captioner", "?"), "captioner_is_target": bool(config.get("circular"))}


def captioner_columns_from(path) -> dict:
    """The captioner columns a table made from the captions carries in its config record."""
    config = csv_config(path)
    return {k: config[k] for k in ("captioner", "captioner_is_target") if k in config}


def read_concepts(path) -> list[str]:
    """A concept file: one concept per line, none empty, none repeated."""
    lines = Path(path).read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise ValueError(f"{path} line {number} is empty: write one concept per line, without blank lines")
    concepts = [line.strip() for line in lines]
    seen = {}
    for number, concept in enumerate(concepts, 1):
        if concept.lower() in seen:
            raise ValueError(f"{path} line {number}: {concept!r} repeats line {seen[concept.lower()]}")
        seen[concept.lower()] = number
    if len(concepts) < 2:
        raise ValueError(f"{path}: a concept set needs at least two concepts")
    return concepts


def read_scores(path):
    """A concept-score file: (concepts, clip ids, {method: scores [clips, concepts]}, attributes)."""
    with LayerFile(path) as stored:
        concepts = stored.strings("concepts")
        methods = {name: stored.file[name][()] for name in ("db", "tab") if name in stored.file}
        return concepts, stored.clip_ids, methods, stored.attrs
