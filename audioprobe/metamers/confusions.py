"""The keyword networks' answers to every metamer (and to the natural sounds): the networks' side of the
behavioural comparison, where people's answers come from the listening test."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from audioprobe.io.atomic import write_csv
from audioprobe.metamers.listening import NATURAL
from audioprobe.metamers.networks import load_network
from audioprobe.metamers.synthesis_step import read_metamers

log = logging.getLogger(__name__)


def answers_to(net, words: list[str], waveforms: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The word a network answers to each waveform, and which waveforms diverged (NaN: answered as silence)."""
    diverged = ~np.isfinite(waveforms).all(axis=1)
    return [words[i] for i in net.predict(np.nan_to_num(waveforms))], diverged


def network_answers(metamer_paths: dict[str, str], evaluators: dict[str, dict], threads: int) -> pd.DataFrame:
    """One row per evaluator x condition (generating network and layer, or natural) x target clip: the word
    the evaluator answers. ``evaluators``: name -> {"settings", "weights", "evaluation"} of a keyword network."""
    made = {name: read_metamers(path) for name, path in metamer_paths.items()}
    first = next(iter(made.values()))
    samples = first["targets"].shape[1]
    rows = []
    for evaluator, files in evaluators.items():
        net = load_network(files["settings"], samples, threads, weights_path=files["weights"],
                           evaluation_path=files["evaluation"])
        words = net.class_names
        conditions = [(NATURAL, NATURAL, first["targets"], first)]
        conditions += [(model, layer, m["metamers"][i], m) for model, m in made.items()
                       for i, layer in enumerate(m["layers"])]
        for model, layer, waveforms, source in conditions:
            answers, diverged = answers_to(net, words, waveforms)
            rows.append(pd.DataFrame({"evaluator": evaluator, "model": model, "layer": layer,
                                      "clip_id": source["clip_id"], "word": source["word"], "answer": answers,
                                      "diverged": diverged}))
        log.info("%s answered %d conditions", evaluator, len(conditions))
    return pd.concat(rows, ignore_index=True)


def keyword_evaluators(architectures: list[str], weights: list[str], evaluations: list[str],
                       settings: dict) -> dict[str, dict]:
    """The trained keyword networks as ``network_answers`` takes them."""
    return {arch: {"settings": {"kind": "keyword", "arch": arch, **settings}, "weights": weight,
                   "evaluation": evaluation} for arch, weight, evaluation in zip(architectures, weights, evaluations)}


def network_answers_step(metamer_paths: dict[str, str], evaluators: dict[str, dict], threads: int, out_csv) -> None:
    table = network_answers(metamer_paths, evaluators, threads)
    write_csv(out_csv, table, config={name: files["settings"] for name, files in evaluators.items()})
