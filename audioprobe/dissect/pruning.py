"""Pruning: the frozen network and its head on the held-out clips with chosen neurons switched off, pruned by
concept (the neurons matched to each class) and by part of speech (the summaries richest in one)."""

from __future__ import annotations

import logging

import h5py
import numpy as np

from audioprobe.dissect.probing import Head, embedding_of
from audioprobe.dissect.readers import HELDOUT, captioner_columns, probe_ids, rows_of
from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.io.store import LayerFile

log = logging.getLogger(__name__)


class PrunedNetwork:
    """The frozen network with its head, evaluated on held-out clips with chosen neurons switched off."""

    def __init__(self, model, start_path, split_path, head_path, label: str):
        with LayerFile(start_path) as stored:
            rows = rows_of(stored.clip_ids, probe_ids(split_path, HELDOUT), start_path)
            self.start_layer = stored.attrs["layer"]
            self.activations = stored.activations[np.sort(rows)]
            truth = np.asarray(stored.labels[label])[np.sort(rows)]
        self.model = model
        self.head = Head.load(head_path)
        known = [name in self.head.classes for name in truth]
        if not all(known):
            raise ValueError(f"held-out clips of class {truth[known.index(False)]!r} have no head output")
        self.truth = np.searchsorted(self.head.classes, truth)
        self.baseline = self.outputs({})

    def outputs(self, masks: dict) -> dict:
        embedding = embedding_of(self.model, self.start_layer, self.activations, masks or None)
        logits = self.head.logits(embedding)
        clips = np.arange(len(self.truth))
        return {"logit": logits[clips, self.truth], "probability": self.head.probabilities(embedding)[clips, self.truth],
                "correct": logits.argmax(1) == self.truth}


def load_pruned_network(*, start_path, split_path, head_path, label, model_name, model_config, weights,
                        threads=None) -> PrunedNetwork:
    """The model, continued from the first dissected layer's activations (``start_path``) of the held-out
    clips of ``split_path``, with the head of ``head_path``."""
    from audioprobe.models import load

    model = load(model_name, model_config, weights, threads=threads)
    return PrunedNetwork(model, start_path, split_path, head_path, label)


def pruning_step(*, closed_path, open_path, captions_path, out_csv, per_class_csv, out_png, settings: dict, layers,
                 network: PrunedNetwork) -> None:
    """Prune the neurons of ``layers`` matched to each class (closed-set tops of ``closed_path``, open
    concepts of ``open_path``) and random ones; the change of each class's held-out outputs."""
    from audioprobe.dissect.evaluation import plot_pruning, pruning_effects, pruning_pool, pruning_selections

    with LayerFile(closed_path) as stored:
        concepts = stored.strings("concepts")
        tops = {key: stored.file[key][()] for key in _dataset_names(stored.file) if key.count("/") == 2}
    open_table = read_csv(open_path)
    selections = pruning_selections(network.head.classes, concepts, tops, open_table, layers, settings)
    units = {layer: tops[f"{layer}/db/{settings['pruning']['db_function']}"].shape[0] for layer in layers}
    per_class, summary = pruning_effects(network, selections, units)
    pool = pruning_pool(open_table, layers, tops, settings["pruning"])
    log.info("candidate pool (%s): %d neurons of the %d pruned layers (%d neurons in all)",
             settings["pruning"]["pool"], len(pool), len(layers), sum(units.values()))
    columns = {"candidate_pool": settings["pruning"]["pool"], "pool_neurons": len(pool),
               "layer_neurons": sum(units.values()),
               **captioner_columns(captions_path)}
    for table in (per_class, summary):
        for key, value in columns.items():
            table[key] = value
    write_csv(per_class_csv, per_class, config=settings)
    write_csv(out_csv, summary, config=settings)
    plot_pruning(summary, out_png)


def _dataset_names(file: h5py.File) -> list[str]:
    names = []
    file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


def pos_ablation_step(*, open_path, captions_path, out_csv, out_png, settings: dict, layers,
                      network: PrunedNetwork) -> None:
    """Prune the summarised neurons of ``layers`` richest in each part of speech (open concepts of
    ``open_path``), against random neurons."""
    from audioprobe.dissect.evaluation import plot_pos_ablation, pos_ablation

    open_table = read_csv(open_path)
    open_table = open_table[open_table["layer"].isin(layers)]
    units = {layer: network.model.layer_shape(layer, network.model.min_samples)[-1] for layer in layers}
    table = pos_ablation(network, open_table, units, settings["pos_ablation"])
    for key, value in captioner_columns(captions_path).items():
        table[key] = value
    write_csv(out_csv, table, config=settings)
    plot_pos_ablation(table, out_png)
