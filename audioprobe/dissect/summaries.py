"""LLM summaries of the sampled neurons' top and bottom clip captions, and what is read from them: the
calibrated summaries (Module B), open concepts (Module C) and in-context concepts (Module A, ICL)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from audioprobe.dissect.readers import (captioner_columns, captioner_columns_from, captions_of, csv_config,
                                        read_neurons, read_scores)
from audioprobe.dissect.text import POS_COLUMNS, concept_text
from audioprobe.dissect.text_models import cached_llm, sentence_encoder
from audioprobe.io.atomic import read_csv, write_csv, write_json

log = logging.getLogger(__name__)


def bullet_list(captions) -> str:
    return "\n".join(f"- {caption.strip()}" for caption in captions)


def _text(value) -> str:
    return "" if pd.isna(value) else str(value)


def summaries_step(*, neuron_paths: list, captions_path, out_csv, stats_json, settings: dict) -> None:
    """One "highly" and one "lowly" summary per sampled neuron (none for a constant one); the LLM's call
    counts in ``stats_json``."""
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
    write_csv(out_csv, pd.DataFrame(rows), config={**settings, **captioner_columns(captions_path),
                                                   "llm_model": llm.model_id})
    write_json(stats_json, stats)


def calibrate_step(*, summaries_path, out_csv, settings: dict, pos_model: str) -> None:
    """Module B: each "highly" summary without the sentences its "lowly" summary shares, and boilerplate."""
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
    write_csv(out_csv, table, config={**settings, **{k: v for k, v in csv_config(summaries_path).items()
                                                     if k.startswith("captioner")}})


def open_concepts_step(*, calibrated_path, out_csv, settings: dict, llm_settings: dict) -> None:
    """Module C: the adjectives, verbs, nouns and prepositions of each calibrated summary; with
    ``settings["llm_filter"]`` the LLM keeps only adjectives that can describe a sound."""
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
    write_csv(out_csv, pd.DataFrame(rows), config={**settings, "llm": llm_settings,
                                                   **captioner_columns_from(calibrated_path)})


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


def icl_step(*, summaries_path, scores_path, out_csv, settings: dict, llm_settings: dict) -> None:
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
    write_csv(out_csv, pd.DataFrame(rows), config={**settings, "llm": llm_settings, "captioner": attrs["captioner"]})
