"""Closed-set concepts: every probe clip's similarity to each concept (DB: its caption's text, TAB: its audio,
with CLAP), and each neuron's top concepts by every similarity function (:mod:`audioprobe.dissect.similarity`)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from audioprobe.dissect.neurons import HEAD
from audioprobe.dissect.readers import captions_of, probe_ids, read_concepts, read_neurons, read_scores, rows_of
from audioprobe.dissect.text import concept_text
from audioprobe.dissect.text_models import concept_encoder
from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.io.store import write_arrays

log = logging.getLogger(__name__)


def label_concepts(manifest_path, split_path) -> list[str]:
    """Every label value of the probe clips, in sorted order."""
    from audioprobe.datasets.manifest import read_manifest

    clips = read_manifest(manifest_path)
    clips = clips[clips["clip_id"].isin(set(probe_ids(split_path)))]
    values = {value for column in clips.columns if column.startswith("label_") for value in clips[column]}
    return sorted(values)


def concept_scores_step(*, concept_paths: list, captions_path, manifest_path, split_path, out_h5, settings: dict,
                        root) -> None:
    """``concept_paths``: the concept file, or none for every label value of the probe clips."""
    from audioprobe.dissect.encoders import normalised_rows

    concepts = read_concepts(concept_paths[0]) if concept_paths else label_concepts(manifest_path, split_path)
    captions, captioner = captions_of(captions_path)
    ids = list(captions)
    encoder, encoder_name = concept_encoder(settings)
    concept_vectors = normalised_rows(encoder.encode([concept_text(c) for c in concepts]))
    arrays = {"concepts": np.asarray(concepts, dtype=object),
              "db": normalised_rows(encoder.encode([captions[c] for c in ids])) @ concept_vectors.T}
    if "tab" in settings["methods"]:
        arrays["tab"] = clap_scores(manifest_path, root, split_path, concepts, settings["concepts"]["clap"])
    log.info("%d concepts; DB scores from %s on %d captions (%s)", len(concepts), encoder_name, len(ids), captioner)
    write_arrays(out_h5, arrays, clip_ids=ids, labels={},
                 attrs={"config": settings, "text_encoder": encoder_name, "captioner": captioner})


def clap_scores(manifest_path, root, split_path, concepts, clap_path) -> np.ndarray:
    from audioprobe.dissect.caption_step import probe_clips
    from audioprobe.dissect.encoders import ClapEncoder

    clap = ClapEncoder(clap_path)
    clips = probe_clips(manifest_path, root, split_path, sample_rate=48000)
    audio = clap.encode_audio([clip.waveform for clip in clips], 48000)
    return audio @ clap.encode_text([concept_text(c) for c in concepts]).T


def closed_concepts_step(*, neuron_paths: list, scores_path, summaries_path, out_csv, top_h5, settings: dict) -> None:
    """Every neuron's five top concepts per method and similarity function: the listed functions' rows of the
    summarised neurons (and every head neuron) in ``out_csv``, every layer's tops in ``top_h5`` (pruning
    reads its own functions' there)."""
    from audioprobe.dissect.similarity import similarity, similarity_params, top_concepts

    concepts, score_ids, methods, attrs = read_scores(scores_path)
    scale = settings["similarity"]["scale"]  # 1: raw cosines, as CLIP-Dissect (see similarity.py)
    summarised = read_csv(summaries_path)[["layer", "neuron"]]
    summarised = set(zip(summarised["layer"], summarised["neuron"]))
    columns = {"captioner": attrs["captioner"], "text_encoder": attrs["text_encoder"]}
    listed = settings["similarity"]["functions"]
    # Pruning reads its own function's top concepts, which need not be among the listed ones.
    for_pruning = {"db": settings["pruning"]["db_function"], "tab": settings["pruning"]["tab_function"]}
    rows, arrays = [], {}
    for layer, stored in read_neurons(neuron_paths).items():
        order = rows_of(score_ids, stored.clip_ids, scores_path)
        for method, scores in methods.items():
            functions = list(dict.fromkeys([*listed, for_pruning[method]]))
            for function in functions:
                params = similarity_params(function, len(order))
                top = top_concepts(similarity(function, stored.values, scale * scores[order], **params),
                                   min(5, len(concepts)))
                arrays[f"{layer}/{method}/{function}"] = top
                if function not in listed:
                    continue
                for neuron in range(top.shape[0]):
                    if layer == HEAD or (layer, neuron) in summarised:
                        rows.append(_closed_row(layer, neuron, method, function, top[neuron], concepts, stored,
                                                columns))
            log.info("%s: %s scored with %s", layer, method, ", ".join(functions))
    arrays["concepts"] = np.asarray(concepts, dtype=object)
    write_arrays(top_h5, arrays, attrs={"config": settings})
    write_csv(out_csv, pd.DataFrame(rows), config={**settings, **columns})


def _closed_row(layer, neuron, method, function, top, concepts, stored, columns) -> dict:
    row = {"layer": layer, "neuron": neuron,
           "class": stored.names[neuron] if stored.names else "", "method": method, "function": function,
           "constant": bool(stored.constant[neuron])}
    for rank in range(1, 6):
        index = top[rank - 1] if rank <= len(top) else -1
        row[f"top{rank}"] = concepts[index] if index >= 0 else ""
    return {**row, **columns}
