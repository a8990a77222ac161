"""The steps of Study 3 as the workflow runs them: each reads files, calls the analysis, writes files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from audioprobe.dissect import neurons as neuron_ops
from audioprobe.dissect.neurons import HEAD
from audioprobe.dissect.text import POS_COLUMNS, concept_text
from audioprobe.io.atomic import read_csv, write_csv, write_json
from audioprobe.io.store import LayerFile, write_arrays

log = logging.getLogger(__name__)

PROBE, HELDOUT = "probe", "heldout"


# --- shared readers ----------------------------------------------------------------------------------------


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


def captions_of(path) -> tuple[dict[str, str], str]:
    table = read_csv(path)
    return dict(zip(table["clip_id"], table["caption"].fillna(""))), csv_config(path).get("captioner", "?")


# --- split, neurons, head ----------------------------------------------------------------------------------


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


def neurons_step(layer_path, split_path, out_path, settings: dict) -> None:
    with LayerFile(layer_path) as stored:
        ids = probe_ids(split_path)
        rows = rows_of(stored.clip_ids, ids, layer_path)
        values = neuron_ops.pool_neurons(stored.activations[np.sort(rows)], settings["pool"])
        values = values[np.argsort(np.argsort(rows))]
        layer, labels = stored.attrs["layer"], {k: list(np.asarray(v)[rows]) for k, v in stored.labels.items()}
    write_neurons(out_path, values, ids, labels, layer=layer, settings=settings)


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


def head_step(layer_path, split_path, outputs, *, label: str, settings: dict, model) -> None:
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
    write_arrays(outputs.head, {"coef": head.coef, "intercept": head.intercept,
                                "classes": np.asarray(head.classes, dtype=object)},
                 attrs={"layer": HEAD, "source_layer": layer, "config": settings})
    probe = split[PROBE]
    write_neurons(outputs.neurons, head.logits(embedding[probe]), [clip_ids[i] for i in probe],
                  {k: list(np.asarray(v)[probe]) for k, v in labels.items()}, layer=HEAD,
                  settings={**settings, "neurons": {"per_layer": "all", "seed": 0}}, names=head.classes)
    write_json(outputs.evaluation, {"classes": head.classes, "accuracy": accuracy, "embedding_layer": layer,
                                    "clips": {name: len(rows) for name, rows in split.items()}})


# --- captions ----------------------------------------------------------------------------------------------


def probe_clips(manifest_path, root, split_path, sample_rate: int):
    from audioprobe.datasets.manifest import load_clip, read_manifest
    from audioprobe.dissect.captions import Clip

    clips = read_manifest(manifest_path).set_index("clip_id", drop=False)
    ids = probe_ids(split_path)
    rows_of(clips.index.tolist(), ids, manifest_path)
    label_columns = [c for c in clips.columns if c.startswith("label_")]
    out = []
    for clip_id in ids:
        row = clips.loc[clip_id]
        samples = int(round(float(row["duration"]) * sample_rate))
        out.append(Clip(clip_id, load_clip(root, row, sample_rate, samples), sample_rate,
                        {c[6:]: row[c] for c in label_columns}, str(row["path"])))
    return out


def captions_step(manifest_path, root, split_path, out_path, settings: dict, inputs) -> None:
    from audioprobe.dissect import captions as cap
    from audioprobe.dissect.cache import TextCache

    backend = settings["backend"]
    options = {"min_score": settings["min_score"], "top": settings["top"]}
    if backend == "tags":
        from audioprobe.models import load

        from audioprobe.models.registry import spec_of

        adapter = load(settings["tagger"], settings["tagger_config"], settings["tagger_weights"])
        tags = spec_of(settings["tagger_config"]["kind"]).tags
        names = tags(settings["tagger_config"]) if tags else cap.read_class_map(inputs.class_map)
        options.update(tagger=cap.model_tagger(adapter), class_names=names, tagger_name=settings["tagger"])
    elif backend == "file":
        if not settings["path"]:
            raise ValueError("dissect.captions.path: the file backend needs a CSV or JSON of captions")
        options = {"path": settings["path"]}
    elif backend == "labels":
        options = {"column": settings["column"] or settings["label"], "template": settings["template"]}
    else:
        options = dict(settings["salmonn"])
    clips = probe_clips(manifest_path, root, split_path, sample_rate=16000)
    cache = TextCache(Path(settings["cache"]) / "captions")
    captions = cap.caption_clips(backend, clips, options, cache, log=log.info)
    name = cap.captioner_name(backend, options)
    circular = backend == "tags" and settings["tagger"] == settings["target_model"]
    if circular:
        log.warning("the captioner %s is the network under dissection: the last-layer evaluation is partly "
                    "circular (recorded in every table)", name)
    log.info("caption cache: %d hits, %d misses", cache.hits, cache.misses)
    table = pd.DataFrame({"clip_id": [c.clip_id for c in clips], "caption": captions})
    write_csv(out_path, table, config={"captioner": name, "circular": circular,
                                       **{k: v for k, v in settings.items() if k != "cache"}})


def captioner_columns(captions_path) -> dict:
    config = csv_config(captions_path)
    return {"captioner": config.get("captioner", "?"), "captioner_is_target": bool(config.get("circular"))}


# --- LLM summaries, calibration, open concepts ---------------------------------------------------------------


def cached_llm(settings: dict):
    from audioprobe.dissect.cache import TextCache
    from audioprobe.llm import CachedLLM

    cache_root = Path(settings["cache"])
    return CachedLLM(settings, TextCache(cache_root / "llm"), model_cache_dir=cache_root / "models")


def bullet_list(captions) -> str:
    return "\n".join(f"- {caption.strip()}" for caption in captions)


def summaries_step(neuron_paths, captions_path, out_path, stats_path, settings: dict) -> None:
    captions, _ = captions_of(captions_path)
    llm = cached_llm(settings)
    rows = []
    layers = read_neurons(neuron_paths)
    total = sum(len(stored.sampled) for stored in layers.values())
    for layer, stored in layers.items():
        for neuron in stored.sampled:
            row = {"layer": layer, "neuron": int(neuron), "constant": bool(stored.constant[neuron])}
            for kind, clips in (("highly", stored.top[neuron]), ("lowly", stored.bottom[neuron])):
                ids = [stored.clip_ids[i] for i in clips]
                prompt = settings["prompt"].replace("{captions}", bullet_list(captions[c] for c in ids))
                row[f"{kind}_clips"] = ";".join(ids)
                row[kind] = "" if row["constant"] else llm(prompt, max_tokens=settings["summary_tokens"],
                                                           stop=settings["summary_stop"])
            row["status"] = ("constant neuron" if row["constant"] else
                             "ok" if row["highly"] and row["lowly"] else "empty reply")
            if row["status"] == "empty reply":
                log.warning("%s neuron %d: the LLM gave an empty summary (recorded)", layer, neuron)
            rows.append(row)
            if len(rows) % 10 == 0 or len(rows) == total:
                log.info("summaries: %d of %d neurons; %s", len(rows), total, llm.stats())
    stats = llm.stats()
    log.info("LLM: %s", stats)
    write_csv(out_path, pd.DataFrame(rows), config={**settings, **captioner_columns(captions_path),
                                                    "llm_model": llm.model_id})
    write_json(stats_path, stats)


def text_models(settings: dict):
    from audioprobe.dissect.encoders import load_text_encoder

    concepts = settings["concepts"]
    return load_text_encoder({"text_encoder": concepts["text_encoder"], "clip": concepts["clip"],
                              "clip_model": concepts["clip_model"]})


def sentence_encoder(settings: dict):
    from audioprobe.dissect.encoders import SentenceEncoder

    return SentenceEncoder(settings["concepts"]["text_encoder"])


def calibrate_step(summaries_path, out_path, settings: dict, pos_model: str) -> None:
    from audioprobe.dissect.text import calibrate, load_tagger

    summaries = read_csv(summaries_path)
    encoder, nlp = sentence_encoder(settings), load_tagger(pos_model)
    calibration = settings["calibration"]
    rows = []
    for _, row in summaries.iterrows():
        result = calibrate(_text(row["highly"]), _text(row["lowly"]), encoder.encode, nlp,
                           threshold=calibration["threshold"], min_tokens=calibration["min_tokens"])
        rows.append({"layer": row["layer"], "neuron": row["neuron"], "calibrated": result.text,
                     "kept": len(result.kept), "dropped": len(result.dropped),
                     "dropped_reasons": "; ".join(sorted({reason.split(" ")[0] for _, reason in result.dropped})),
                     "status": row["status"] if row["status"] != "ok" else ("ok" if result.text else "all dropped")})
    table = pd.DataFrame(rows)
    log.info("calibration: %d summaries, %d sentences kept, %d dropped, %d left empty", len(table),
             table["kept"].sum(), table["dropped"].sum(), int((table["calibrated"] == "").sum()))
    write_csv(out_path, table, config={**settings, **{k: v for k, v in csv_config(summaries_path).items()
                                                      if k.startswith("captioner")}})


def _text(value) -> str:
    return "" if pd.isna(value) else str(value)


def open_concepts_step(calibrated_path, out_path, settings: dict, llm_settings: dict) -> None:
    from audioprobe.dissect.text import load_tagger, open_concepts

    calibrated = read_csv(calibrated_path)
    nlp = load_tagger(settings["pos_model"])
    llm = cached_llm(llm_settings) if settings["llm_filter"] else None
    ask = (lambda prompt: llm(prompt, max_tokens=4, stop=("\n",))) if llm else None
    prompt = llm_settings["prompt"].replace("{word}", "{}")
    asked, rows = {}, []
    for _, row in calibrated.iterrows():
        found = open_concepts(_text(row["calibrated"]), nlp, ask=ask, adjective_cache=asked, prompt=prompt)
        record = {"layer": row["layer"], "neuron": row["neuron"]}
        for key in ("adjectives_rule", *POS_COLUMNS):
            record[key] = " ".join(found[key])
        record.update({f"n_{pos}": found["counts"][pos] for pos in POS_COLUMNS})
        record["caption_len"] = found["caption_len"]
        record["unanswered"] = " ".join(found["unanswered"])
        rows.append(record)
    accepted = sum(1 for value in asked.values() if value)
    log.info("adjective filter: %d unique adjectives asked, %d accepted, %d unanswered; %s", len(asked), accepted,
             sum(1 for value in asked.values() if value is None), llm.stats() if llm else "LLM filter off")
    write_csv(out_path, pd.DataFrame(rows), config={**settings, "llm": llm_settings,
                                                    **captioner_columns_from(calibrated_path)})


def captioner_columns_from(path) -> dict:
    config = csv_config(path)
    return {k: config[k] for k in ("captioner", "captioner_is_target") if k in config}


# --- concepts and closed-set matching ----------------------------------------------------------------------


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


def label_concepts(manifest_path, split_path) -> list[str]:
    """Every label value of the probe clips, in sorted order."""
    from audioprobe.datasets.manifest import read_manifest

    clips = read_manifest(manifest_path)
    clips = clips[clips["clip_id"].isin(set(probe_ids(split_path)))]
    values = {value for column in clips.columns if column.startswith("label_") for value in clips[column]}
    return sorted(values)


def concept_scores_step(inputs, out_path, settings: dict, root) -> None:
    from audioprobe.dissect.encoders import normalised_rows

    concepts = read_concepts(inputs.concepts[0]) if inputs.concepts else label_concepts(inputs.manifest, inputs.split)
    captions, captioner = captions_of(inputs.captions)
    ids = list(captions)
    encoder, encoder_name = text_models(settings)
    concept_vectors = normalised_rows(encoder.encode([concept_text(c) for c in concepts]))
    arrays = {"concepts": np.asarray(concepts, dtype=object),
              "db": normalised_rows(encoder.encode([captions[c] for c in ids])) @ concept_vectors.T}
    if "tab" in settings["methods"]:
        arrays["tab"] = clap_scores(inputs.manifest, root, inputs.split, concepts, settings["concepts"]["clap"])
    log.info("%d concepts; DB scores from %s on %d captions (%s)", len(concepts), encoder_name, len(ids), captioner)
    write_arrays(out_path, arrays, clip_ids=ids, labels={},
                 attrs={"config": settings, "text_encoder": encoder_name, "captioner": captioner})


def clap_scores(manifest_path, root, split_path, concepts, clap_path) -> np.ndarray:
    from audioprobe.dissect.encoders import ClapEncoder

    clap = ClapEncoder(clap_path)
    clips = probe_clips(manifest_path, root, split_path, sample_rate=48000)
    audio = clap.encode_audio([clip.waveform for clip in clips], 48000)
    return audio @ clap.encode_text([concept_text(c) for c in concepts]).T


def read_scores(path):
    with LayerFile(path) as stored:
        concepts = stored.strings("concepts")
        methods = {name: stored.file[name][()] for name in ("db", "tab") if name in stored.file}
        return concepts, stored.clip_ids, methods, stored.attrs


def closed_concepts_step(inputs, outputs, settings: dict) -> None:
    from audioprobe.dissect.similarity import similarity, top_concepts

    concepts, score_ids, methods, attrs = read_scores(inputs.scores)
    scale = settings["similarity"]["scale"]  # 1: raw cosines, as CLIP-Dissect (see similarity.py)
    summarised = read_csv(inputs.summaries)[["layer", "neuron"]]
    summarised = set(zip(summarised["layer"], summarised["neuron"]))
    columns = {"captioner": attrs["captioner"], "text_encoder": attrs["text_encoder"]}
    listed = settings["similarity"]["functions"]
    # Pruning reads its own function's top concepts, which need not be among the listed ones.
    for_pruning = {"db": settings["pruning"]["db_function"], "tab": settings["pruning"]["tab_function"]}
    rows, arrays = [], {}
    for layer, stored in read_neurons(inputs.neurons).items():
        order = rows_of(score_ids, stored.clip_ids, inputs.scores)
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
    write_arrays(outputs.top, arrays, attrs={"config": settings})
    write_csv(outputs.table, pd.DataFrame(rows), config={**settings, **columns})


MIN_RANK_INPUTS = 5


def similarity_params(function: str, clips: int) -> dict:
    """CLIP-Dissect's defaults, except that rank-reorder keeps at least MIN_RANK_INPUTS top clips: its 5 %
    of a small probe set is one or two clips, which carry no ranking information (the row would be NaN)."""
    if function == "rank_reorder":
        return {"top_fraction": min(1.0, max(0.05, MIN_RANK_INPUTS / clips))}
    return {}


def _closed_row(layer, neuron, method, function, top, concepts, stored, columns) -> dict:
    row = {"layer": layer, "neuron": neuron,
           "class": stored.names[neuron] if stored.names else "", "method": method, "function": function,
           "constant": bool(stored.constant[neuron])}
    for rank in range(1, 6):
        index = top[rank - 1] if rank <= len(top) else -1
        row[f"top{rank}"] = concepts[index] if index >= 0 else ""
    return {**row, **columns}


ICL_COLUMNS = {"calibrated": "calibrated", "highly": "highly"}  # dissect.icl.summary -> column of its table


def icl_summaries(table: pd.DataFrame, source: str, path="the summary table") -> list[tuple[str, int, str]]:
    """(layer, neuron, summary text) for the in-context method: the calibrated summaries (calibrated.csv) or
    the uncalibrated highly ones (summaries.csv), by ``dissect.icl.summary``; "" where none is left."""
    column = ICL_COLUMNS[source]
    if column not in table.columns:
        raise ValueError(f"dissect.icl.summary is {source!r} but {path} has no {column!r} column: the ICL "
                         "step needs calibrated.csv for 'calibrated' and summaries.csv for 'highly'")
    return [(str(layer), int(neuron), _text(text))
            for layer, neuron, text in zip(table["layer"], table["neuron"], table[column])]


def icl_step(summaries_path, scores_path, out_path, settings: dict, llm_settings: dict) -> None:
    """Module A, ICL: the LLM picks a concept from a neuron's summary, the calibrated one by default (the
    paper, Section 3.3 and A.3; the original code read the uncalibrated "highly" summary)."""
    from audioprobe.dissect.encoders import normalised_rows
    from audioprobe.dissect.text import EmptyReply, parse_icl_answer

    concepts, _, _, attrs = read_scores(scores_path)
    source = settings["icl"]["summary"]
    llm = cached_llm(llm_settings)
    encoder = sentence_encoder(settings)
    concept_vectors = normalised_rows(encoder.encode([f"This is an audio about {concept_text(c)}" for c in concepts]))
    rows = []
    for layer, neuron, summary in icl_summaries(read_csv(summaries_path), source, summaries_path):
        prompt = llm_settings["prompt"].replace("{concepts}", ", ".join(concepts)).replace("{summary}", summary)
        reply = llm(prompt, max_tokens=12, stop=("\n",)) if summary else ""
        record = {"layer": layer, "neuron": neuron, "summary": source, "reply": reply}
        if not summary:
            rows.append({**record, "keyword": "", "concept": "", "status": f"no {source} summary (not asked)"})
            continue
        try:
            keywords = parse_icl_answer(reply, asked=f"{layer} neuron {neuron}")
        except EmptyReply as err:
            rows.append({**record, "keyword": "", "concept": "", "status": str(err)})
            continue
        vector = normalised_rows(encoder.encode([f"This is an audio about {keywords[0]}"]))
        best = int(np.argmax(vector @ concept_vectors.T))
        rows.append({**record, "keyword": keywords[0], "concept": concepts[best], "status": "ok"})
    log.info("ICL: %d neurons, %d without an answer; %s", len(rows), sum(r["status"] != "ok" for r in rows),
             llm.stats())
    write_csv(out_path, pd.DataFrame(rows), config={**settings, "llm": llm_settings, "captioner": attrs["captioner"]})


# --- evaluations -------------------------------------------------------------------------------------------


def last_layer_step(inputs, outputs, settings: dict) -> None:
    from audioprobe.dissect.evaluation import last_layer_accuracy, plot_last_layer

    closed = read_csv(inputs.closed)
    head = Head.load(inputs.head)
    icl = read_csv(inputs.icl)
    with LayerFile(inputs.top) as stored:
        concepts = stored.strings("concepts")
    table = last_layer_accuracy(closed, icl, head.classes, concepts, sentence_encoder(settings))
    for key, value in captioner_columns(inputs.captions).items():
        table[key] = value
    write_csv(outputs.table, table, config=settings)
    plot_last_layer(table, outputs.figure)


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


def load_pruned_network(inputs, *, label, model_name, model_config, weights, threads=None) -> PrunedNetwork:
    from audioprobe.models import load

    model = load(model_name, model_config, weights, threads=threads)
    return PrunedNetwork(model, inputs.start, inputs.split, inputs.head, label)


def pruning_step(inputs, outputs, settings: dict, *, layers, network: PrunedNetwork) -> None:
    from audioprobe.dissect.evaluation import plot_pruning, pruning_effects, pruning_pool, pruning_selections

    with LayerFile(inputs.closed) as stored:
        concepts = stored.strings("concepts")
        tops = {key: stored.file[key][()] for key in _dataset_names(stored.file) if key.count("/") == 2}
    open_table = read_csv(inputs.open)
    selections = pruning_selections(network.head.classes, concepts, tops, open_table, layers, settings)
    units = {layer: tops[f"{layer}/db/{settings['pruning']['db_function']}"].shape[0] for layer in layers}
    per_class, summary = pruning_effects(network, selections, units)
    pool = pruning_pool(open_table, layers, tops, settings["pruning"])
    log.info("candidate pool (%s): %d neurons of the %d pruned layers (%d neurons in all)",
             settings["pruning"]["pool"], len(pool), len(layers), sum(units.values()))
    columns = {"candidate_pool": settings["pruning"]["pool"], "pool_neurons": len(pool),
               "layer_neurons": sum(units.values()),
               **captioner_columns(inputs.captions)}
    for table in (per_class, summary):
        for key, value in columns.items():
            table[key] = value
    write_csv(outputs.per_class, per_class, config=settings)
    write_csv(outputs.table, summary, config=settings)
    plot_pruning(summary, outputs.figure)


def _dataset_names(file: h5py.File) -> list[str]:
    names = []
    file.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


def pos_ablation_step(inputs, outputs, settings: dict, *, layers, network: PrunedNetwork) -> None:
    from audioprobe.dissect.evaluation import plot_pos_ablation, pos_ablation

    open_table = read_csv(inputs.open)
    open_table = open_table[open_table["layer"].isin(layers)]
    units = {layer: network.model.layer_shape(layer, network.model.min_samples)[-1] for layer in layers}
    table = pos_ablation(network, open_table, units, settings["pos_ablation"])
    for key, value in captioner_columns(inputs.captions).items():
        table[key] = value
    write_csv(outputs.table, table, config=settings)
    plot_pos_ablation(table, outputs.figure)


def interpretability_step(inputs, outputs, settings: dict, layers) -> None:
    from audioprobe.dissect.evaluation import caption_clusters, plot_interpretability, uninterpretable_share

    captions, captioner = captions_of(inputs.captions)
    stored = read_neurons(inputs.neurons)
    ids = list(captions)
    clusters = caption_clusters([captions[c] for c in ids], sentence_encoder(settings), settings["clustering"])
    rows = []
    for layer in [*layers, HEAD]:
        neurons = stored[layer]
        clip_clusters = [clusters[i] for i in rows_of(ids, neurons.clip_ids, inputs.captions)]
        for shared in settings["clustering"]["min_shared"]:
            share, counted = uninterpretable_share(neurons.top, neurons.constant, clip_clusters, shared)
            rows.append({"layer": layer, "min_shared": shared, "neurons": counted,
                         "uninterpretable_percent": 100 * share})
    table = pd.DataFrame(rows)
    table["captioner"] = captioner
    write_csv(outputs.table, table, config=settings)
    plot_interpretability(table, outputs.figure)

