"""Last-layer dissection: do the head's output neurons get the concepts that name their classes?"""

from __future__ import annotations

from audioprobe.dissect.probing import Head
from audioprobe.dissect.readers import captioner_columns
from audioprobe.dissect.text_models import sentence_encoder
from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.io.store import LayerFile


def last_layer_step(*, closed_path, top_path, icl_path, head_path, captions_path, out_csv, out_png,
                    settings: dict) -> None:
    """Top-1 and top-5 accuracy of the head neurons' closed-set (``closed_path``, concepts from ``top_path``)
    and in-context (``icl_path``) concepts against their classes, as a table and a figure."""
    from audioprobe.dissect.evaluation import last_layer_accuracy, plot_last_layer

    closed = read_csv(closed_path)
    head = Head.load(head_path)
    icl = read_csv(icl_path)
    with LayerFile(top_path) as stored:
        concepts = stored.strings("concepts")
    table = last_layer_accuracy(closed, icl, head.classes, concepts, sentence_encoder(settings))
    for key, value in captioner_columns(captions_path).items():
        table[key] = value
    write_csv(out_csv, table, config=settings)
    plot_last_layer(table, out_png)
