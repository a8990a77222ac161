"""The caption step: the probe clips' audio, captioned by the configured backend (:mod:`audioprobe.dissect.captions`)
through the text cache, as one table."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from audioprobe.dissect.readers import PROBE, probe_ids, rows_of
from audioprobe.io.atomic import write_csv

log = logging.getLogger(__name__)


def probe_clips(manifest_path, root, split_path, sample_rate: int, which: str = PROBE):
    """The probe (or held-out) clips of the split as :class:`audioprobe.dissect.captions.Clip`, their audio at
    ``sample_rate``."""
    from audioprobe.datasets.manifest import load_clip, read_manifest
    from audioprobe.dissect.captions import Clip

    clips = read_manifest(manifest_path).set_index("clip_id", drop=False)
    ids = probe_ids(split_path, which)
    rows_of(clips.index.tolist(), ids, manifest_path)
    label_columns = [c for c in clips.columns if c.startswith("label_")]
    out = []
    for clip_id in ids:
        row = clips.loc[clip_id]
        samples = int(round(float(row["duration"]) * sample_rate))
        out.append(Clip(clip_id, load_clip(root, row, sample_rate, samples), sample_rate,
                        {c[6:]: row[c] for c in label_columns}, str(row["path"])))
    return out


def captions_step(*, manifest_path, root, split_path, out_csv, settings: dict, class_map_path=None,
                  which: str = PROBE) -> None:
    """Captions of the ``which`` clips of the split (probe or held-out). ``class_map_path``: the tagger's
    class map, read only when its model family ships no tags of its own."""
    from audioprobe.dissect import captions as cap
    from audioprobe.dissect.cache import TextCache

    backend = settings["backend"]
    options = {"min_score": settings["min_score"], "top": settings["top"]}
    if backend == "tags":
        from audioprobe.models import load

        from audioprobe.models.registry import spec_of

        adapter = load(settings["tagger"], settings["tagger_config"], settings["tagger_weights"])
        tags = spec_of(settings["tagger_config"]["kind"]).tags
        names = tags(settings["tagger_config"]) if tags else cap.read_class_map(class_map_path)
        options.update(tagger=cap.model_tagger(adapter), class_names=names, tagger_name=settings["tagger"])
    elif backend == "file":
        if not settings["path"]:
            raise ValueError("dissect.captions.path: the file backend needs a CSV or JSON of captions")
        options = {"path": settings["path"]}
    elif backend == "labels":
        options = {"column": settings["column"] or settings["label"], "template": settings["template"]}
    else:
        options = dict(settings["salmonn"])
    clips = probe_clips(manifest_path, root, split_path, sample_rate=16000, which=which)
    cache = TextCache(Path(settings["cache"]) / "captions")
    captions = cap.caption_clips(backend, clips, options, cache, log=log.info)
    name = cap.captioner_name(backend, options)
    circular = backend == "tags" and settings["tagger"] == settings["target_model"]
    if circular:
        log.warning("the captioner %s is the network under dissection: the last-layer evaluation is partly "
                    "circular (recorded in every table)", name)
    log.info("caption cache: %d hits, %d misses", cache.hits, cache.misses)
    table = pd.DataFrame({"clip_id": [c.clip_id for c in clips], "caption": captions})
    write_csv(out_csv, table, config={"captioner": name, "circular": circular,
                                      **{k: v for k, v in settings.items() if k != "cache"}})
