"""What the dissection probes: the probe / held-out split of the clips, each layer's neuron file over the
probe clips, and the linear head on the frozen network's embedding (whose logits are one more layer)."""

from __future__ import annotations

import logging

import numpy as np

from audioprobe.dissect import neurons as neuron_ops
from audioprobe.dissect.neurons import HEAD
from audioprobe.dissect.readers import HELDOUT, PROBE, probe_ids, rows_of
from audioprobe.io.atomic import write_csv, write_json
from audioprobe.io.store import LayerFile, write_arrays

log = logging.getLogger(__name__)


def make_split(manifest_path, out_path, *, label: str, split: dict) -> None:
    from audioprobe.config import check_labels
    from audioprobe.datasets.manifest import read_manifest
    from audioprobe.latent.split import split_groups

    clips = read_manifest(manifest_path)
    check_labels(clips, [label], "dissect.label", manifest_path, use="the linear head")
    assigned = split_groups(clips, [label], val_fraction=0.0, test_fraction=split["heldout_fraction"],
                            seed=split["seed"], labels_key="dissect.label", split_key="dissect.split")
    assigned["split"] = assigned["split"].map({"train": PROBE, "test": HELDOUT, "val": PROBE})
    log.info("clips per split: %s", assigned["split"].value_counts().to_dict())
    write_csv(out_path, assigned, config={"label": label, **split})


def pooled_clips(layer_path, ids: list[str], pool: str):
    """(values [clips, neurons] of ``ids`` in their order, their labels, the layer's name)."""
    with LayerFile(layer_path) as stored:
        rows = rows_of(stored.clip_ids, ids, layer_path)
        values = neuron_ops.pool_neurons(stored.activations[np.sort(rows)], pool)
        values = values[np.argsort(np.argsort(rows))]
        return values, {k: list(np.asarray(v)[rows]) for k, v in stored.labels.items()}, stored.attrs["layer"]


def neurons_step(*, layer_path, split_path, out_h5, settings: dict) -> None:
    """One layer's activations pooled to one value per probe clip and neuron, written as a neuron file."""
    ids = probe_ids(split_path)
    values, labels, layer = pooled_clips(layer_path, ids, settings["pool"])
    write_neurons(out_h5, values, ids, labels, layer=layer, settings=settings)


def heldout_step(*, layer_path, split_path, out_h5, settings: dict) -> None:
    """The same pooled values over the held-out clips, on which explanations are scored."""
    ids = probe_ids(split_path, HELDOUT)
    values, labels, layer = pooled_clips(layer_path, ids, settings["pool"])
    write_heldout(out_h5, values, ids, labels, layer=layer, settings=settings)


def write_heldout(out_path, values, ids, labels, *, layer: str, settings: dict) -> None:
    if len(ids) < 2:
        raise ValueError(f"dissect.split.heldout_fraction: {len(ids)} held-out clip; scoring explanations needs "
                         "at least two")
    write_arrays(out_path, {"values": np.asarray(values, dtype=np.float32)}, clip_ids=ids, labels=labels,
                 attrs={"layer": layer, "split": HELDOUT, "config": settings})
    log.info("%s: %d neurons over %d held-out clips", layer, values.shape[1], len(ids))


def write_neurons(out_path, values, ids, labels, *, layer: str, settings: dict, names=None) -> None:
    top, bottom = neuron_ops.top_and_bottom(values, settings["top_k"])
    neurons = settings["neurons"]
    per_layer = "all" if layer == HEAD else neurons["per_layer"]
    sampled = neuron_ops.sample_neurons(values.shape[1], per_layer, neurons["seed"], layer)
    constant = neuron_ops.constant(values)
    if constant.any():
        log.warning("%s: %d of %d neurons are constant over the probe clips; they are recorded and get no "
                    "concept", layer, int(constant.sum()), len(constant))
    arrays = {"values": values.astype(np.float32), "top": top, "bottom": bottom, "sampled": sampled,
              "constant": constant}
    if names is not None:
        arrays["names"] = np.asarray(names, dtype=object)
    write_arrays(out_path, arrays, clip_ids=ids, labels=labels, attrs={"layer": layer, "config": settings})
    log.info("%s: %d neurons over %d probe clips, %d sampled for summaries", layer, values.shape[1],
             values.shape[0], len(sampled))


def embedding_of(model, layer: str, activations, channel_masks=None, batch: int = 64) -> np.ndarray:
    """The network's embedding (mean over patches) continued from ``layer``'s activations."""
    out = []
    for i in range(0, len(activations), batch):
        outputs = model.forward_from(layer, activations[i:i + batch], channel_masks)
        if "embedding" not in outputs:
            raise ValueError(f"model {model.name!r}: {layer} is the layer whose input is the embedding (its head), so "
                             "continuing from it gives no embedding: dissect layers before it (dissect.layers)")
        out.append(outputs["embedding"].mean(axis=1))
    return np.concatenate(out).astype(np.float64)


class Head:
    """A linear head on the frozen network's embedding; classes in sorted order."""

    def __init__(self, coef, intercept, classes):
        self.coef, self.intercept, self.classes = np.asarray(coef), np.asarray(intercept), list(classes)

    def logits(self, embedding):
        return embedding @ self.coef.T + self.intercept

    def probabilities(self, embedding):
        logits = self.logits(embedding)
        logits = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    @classmethod
    def load(cls, path):
        with LayerFile(path) as stored:
            return cls(stored.file["coef"][()], stored.file["intercept"][()], stored.strings("classes"))


def fit_head(embedding, labels, settings: dict) -> Head:
    from sklearn.linear_model import LogisticRegression

    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"dissect.label: the probe clips have {len(classes)} class; the head needs two or more")
    codes = np.searchsorted(classes, labels)
    fit = LogisticRegression(C=settings["C"], max_iter=settings["max_iter"], random_state=0).fit(embedding, codes)
    coef, intercept = fit.coef_, fit.intercept_
    if len(classes) == 2:  # one logit z for two classes: softmax over (-z/2, z/2) gives the same probabilities
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
    return Head(coef, intercept, classes)


def head_step(*, layer_path, split_path, head_h5, neurons_h5, heldout_h5, evaluation_json, label: str,
              settings: dict, model) -> None:
    """The head fitted on the probe clips' embeddings (``layer_path`` is the layer whose input is the
    embedding), its logits over the probe clips as a neuron file and over the held-out clips, and its
    accuracy on both splits."""
    with LayerFile(layer_path) as stored:
        clip_ids, labels, layer = stored.clip_ids, stored.labels, stored.attrs["layer"]
        if label not in labels:
            raise ValueError(f"dissect.label: {layer_path} has no label {label!r}; it has {sorted(labels)}")
        embedding = embedding_of(model, layer, stored.activations[()])
    truth = np.asarray(labels[label])
    split = {name: rows_of(clip_ids, probe_ids(split_path, name), layer_path) for name in (PROBE, HELDOUT)}
    head = fit_head(embedding[split[PROBE]], truth[split[PROBE]], settings["head"])
    accuracy = {name: float(np.mean(np.asarray(head.classes)[head.logits(embedding[rows]).argmax(1)]
                                    == truth[rows])) for name, rows in split.items()}
    log.info("head on %s embedding: %d classes, accuracy %s", layer, len(head.classes), accuracy)
    write_arrays(head_h5, {"coef": head.coef, "intercept": head.intercept,
                           "classes": np.asarray(head.classes, dtype=object)},
                 attrs={"layer": HEAD, "source_layer": layer, "config": settings})
    probe = split[PROBE]
    write_neurons(neurons_h5, head.logits(embedding[probe]), [clip_ids[i] for i in probe],
                  {k: list(np.asarray(v)[probe]) for k, v in labels.items()}, layer=HEAD,
                  settings={**settings, "neurons": {"per_layer": "all", "seed": 0}}, names=head.classes)
    heldout = split[HELDOUT]
    write_heldout(heldout_h5, head.logits(embedding[heldout]), [clip_ids[i] for i in heldout],
                  {k: list(np.asarray(v)[heldout]) for k, v in labels.items()}, layer=HEAD, settings=settings)
    write_json(evaluation_json, {"classes": head.classes, "accuracy": accuracy, "embedding_layer": layer,
                                 "clips": {name: len(rows) for name, rows in split.items()}})
