"""Caption-cluster interpretability: the share of each layer's neurons whose top clips share no cluster of
caption sentences (K-means, seeded)."""

from __future__ import annotations

import pandas as pd

from audioprobe.dissect.neurons import HEAD
from audioprobe.dissect.readers import captions_of, read_neurons, rows_of
from audioprobe.dissect.text_models import sentence_encoder
from audioprobe.io.atomic import write_csv


def interpretability_step(*, neuron_paths: list, captions_path, out_csv, out_png, settings: dict, layers) -> None:
    """The uninterpretable share of ``layers`` and the head, for every ``clustering.min_shared``."""
    from audioprobe.dissect.evaluation import caption_clusters, plot_interpretability, uninterpretable_share

    captions, captioner = captions_of(captions_path)
    stored = read_neurons(neuron_paths)
    ids = list(captions)
    clusters = caption_clusters([captions[c] for c in ids], sentence_encoder(settings), settings["clustering"])
    rows = []
    for layer in [*layers, HEAD]:
        neurons = stored[layer]
        clip_clusters = [clusters[i] for i in rows_of(ids, neurons.clip_ids, captions_path)]
        for shared in settings["clustering"]["min_shared"]:
            share, counted = uninterpretable_share(neurons.top, neurons.constant, clip_clusters, shared)
            rows.append({"layer": layer, "min_shared": shared, "neurons": counted,
                         "uninterpretable_percent": 100 * share})
    table = pd.DataFrame(rows)
    table["captioner"] = captioner
    write_csv(out_csv, table, config=settings)
    plot_interpretability(table, out_png)
