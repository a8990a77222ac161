"""Scores of every explanation Study 3 writes, on the held-out clips (issue 16):

- concept presence (:mod:`audioprobe.dissect.presence`) against the neuron's held-out activations with
  NeuronEval's five passing metrics, each with its missing- and extra-labels sanity checks
  (:mod:`audioprobe.dissect.explanation_scores`);
- simulation (:mod:`audioprobe.dissect.simulation`): the correlation of an LLM's predictions from the
  explanation alone with the activations;
- both for two baselines: a random other neuron's explanation (same layer, method and function) and, for
  simulation, the explanation "an audio clip";
- a summary per layer, method, function and metric: the mean over neurons with a percentile bootstrap interval,
  the share of neurons above their random baseline and the sanity checks' pass rates.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from audioprobe.dissect import explanation_scores as es
from audioprobe.dissect.explanations import (CONSTANT_EXPLANATION, explanation_rows, explanations_to_simulate,
                                             random_other)
from audioprobe.dissect.readers import captioner_columns, captions_of, read_heldout
from audioprobe.io.atomic import read_csv, write_csv, write_json
from audioprobe.io.store import LayerFile, write_arrays

log = logging.getLogger(__name__)

CHECKS = ("missing_labels", "extra_labels")
SIMULATION = "simulation"


def read_explanations(closed_path, icl_path, open_path) -> pd.DataFrame:
    return explanation_rows(read_csv(closed_path), read_csv(icl_path), read_csv(open_path))


def simulated_clips(captions: dict[str, str], max_clips: int, seed: int) -> list[str]:
    """The held-out clips the LLM reads: all, or ``max_clips`` drawn with ``seed`` (in table order)."""
    ids = list(captions)
    if len(ids) <= max_clips:
        return ids
    chosen = np.random.default_rng(seed).choice(len(ids), size=max_clips, replace=False)
    return [ids[i] for i in sorted(chosen)]


def simulate_step(*, closed_path, icl_path, open_path, captions_path, out_h5, stats_json, settings: dict,
                  llm_settings: dict) -> None:
    """Every distinct explanation (and the constant baseline) simulated on the held-out clips."""
    from audioprobe.dissect.cache import TextCache
    from audioprobe.dissect.simulation import Simulator, clip_line
    from audioprobe.dissect.text_models import cached_llm

    texts = explanations_to_simulate(read_explanations(closed_path, icl_path, open_path))
    captions, captioner = captions_of(captions_path)
    simulation = settings["simulation"]
    clips = simulated_clips(captions, simulation["max_clips"], settings["seed"])
    llm = cached_llm(llm_settings)
    simulator = Simulator(llm, TextCache(Path(llm_settings["cache"]) / "simulation"), context=simulation["context"])
    prefix, line = llm_settings["prompt"], llm_settings["line"]
    expected = np.zeros((len(clips), len(texts)))
    mass = np.zeros_like(expected)
    for j, text in enumerate(texts):
        for i, clip in enumerate(clips):
            expected[i, j], mass[i, j] = simulator.score(prefix, clip_line(line, text, captions[clip]))
        log.info("simulation: %d of %d explanations on %d clips; %s", j + 1, len(texts), len(clips),
                 simulator.stats())
    write_arrays(out_h5, {"explanations": np.asarray(texts, dtype=object), "expected": expected,
                          "digit_mass": mass}, clip_ids=clips, labels={},
                 attrs={"config": {**settings, "llm": llm_settings}, "llm_model": llm.model_id,
                        "captioner": captioner})
    stats = simulator.stats()
    log.info("LLM: %s; mean digit mass %.3f", stats, float(mass.mean()) if mass.size else float("nan"))
    write_json(stats_json, stats)


def read_simulation(path) -> tuple[list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(simulated clip ids, {explanation: expected scores}, {explanation: digit mass})."""
    with LayerFile(path) as stored:
        texts = stored.strings("explanations")
        expected, mass = stored.file["expected"][()], stored.file["digit_mass"][()]
        return stored.clip_ids, dict(zip(texts, expected.T)), dict(zip(texts, mass.T))


def presence_scores(a: np.ndarray, c: np.ndarray, alpha: float, seed: int, prefix: str = "") -> dict:
    row = {}
    for name, metric in es.METRICS.items():
        row[f"{prefix}{name}"] = metric.score(a, c, alpha)
        if not prefix:
            for check, passed in es.sanity_checks(metric, a, c, alpha, seed=seed).items():
                row[f"{name}_{check}"] = passed
    return row


def score_step(*, closed_path, icl_path, open_path, heldout_paths: list, captions_path, simulation_path,
               out_csv, summary_csv, out_png, settings: dict) -> None:
    from audioprobe.dissect.presence import ConceptPresence
    from audioprobe.dissect.text_models import concept_encoder

    rows = read_explanations(closed_path, icl_path, open_path)
    rows["random_explanation"] = random_other(rows, settings["seed"])
    layers = read_heldout(heldout_paths)
    clip_ids, labels = next(iter(layers.values())).clip_ids, next(iter(layers.values())).labels
    captions, _ = captions_of(captions_path)
    missing = [clip for clip in clip_ids if clip not in captions]
    if missing:
        raise ValueError(f"{captions_path} has no caption for held-out clip {missing[0]!r}: rerun caption_heldout")
    from audioprobe.dissect.encoders import normalised_rows

    encoder, encoder_name = concept_encoder({"concepts": settings["concepts"]})
    presence = ConceptPresence(lambda texts: normalised_rows(encoder.encode(texts)))
    presence.fit([captions[c] for c in clip_ids], labels)
    texts = sorted(set(rows["explanation"]) | set(rows["random_explanation"]) - {""})
    concept = dict(zip(texts, presence.transform(texts).T)) if texts else {}
    sim_ids, expected, mass = read_simulation(simulation_path)
    sim_rows = {clip: i for i, clip in enumerate(clip_ids)}
    sim_rows = np.array([sim_rows[clip] for clip in sim_ids])
    alpha = settings["alpha"]
    scored = []
    for index, row in rows.iterrows():
        record = row.to_dict()
        if row["status"] == "ok":
            if row["layer"] not in layers:
                raise ValueError(f"an explanation names layer {row['layer']!r}, which has no held-out file")
            a = layers[row["layer"]].values[:, int(row["neuron"])].astype(float)
            record.update(_scores(a, row, concept, presence, expected, mass, sim_rows, alpha,
                                  seed=settings["seed"] + int(index)))
        scored.append(record)
    table = pd.DataFrame(scored)
    columns = {**captioner_columns(captions_path), "text_encoder": encoder_name, "presence_slope": presence.slope_,
               "presence_offset": presence.offset_, "heldout_clips": len(clip_ids), "simulated_clips": len(sim_ids)}
    log.info("scored %d explanations (%d without one) on %d held-out clips; presence calibrated to "
             "sigmoid(%.2f (cos %+.2f))", int((table["status"] == "ok").sum()), int((table["status"] != "ok").sum()),
             len(clip_ids), presence.slope_, presence.offset_)
    write_csv(out_csv, table, config={**settings, **columns})
    summary = summarise(table, settings["bootstrap"], settings["seed"], order=list(layers))
    write_csv(summary_csv, summary, config={**settings, **columns})
    plot_summary(summary, out_png)


def _scores(a, row, concept, presence, expected, mass, sim_rows, alpha, seed) -> dict:
    from audioprobe.dissect.simulation import simulation_correlation

    text, other = row["explanation"], row["random_explanation"]
    record = {"presence": presence.source(text), "constant_heldout": bool(np.ptp(a) == 0)}
    record.update(presence_scores(a, concept[text], alpha, seed))
    if other:
        record.update(presence_scores(a, concept[other], alpha, seed, prefix="random_"))
    simulated = a[sim_rows]
    record[SIMULATION] = simulation_correlation(simulated, expected[text])
    record["digit_mass"] = float(mass[text].mean())
    record[f"{SIMULATION}_constant"] = simulation_correlation(simulated, expected[CONSTANT_EXPLANATION])
    if other:
        record[f"random_{SIMULATION}"] = simulation_correlation(simulated, expected[other])
    return record


def percentile_interval(values, draws: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling the values (neurons) with replacement."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def summarise(table: pd.DataFrame, draws: int, seed: int, order: list[str]) -> pd.DataFrame:
    """Per layer, method, function and metric: neurons scored, mean and its 95 % interval, the random
    baseline's mean, the share of neurons above it, and the sanity checks' pass rates."""
    scored = table[table["status"] == "ok"]
    rows = []
    for (layer, method, function), group in scored.groupby(["layer", "method", "function"], sort=False):
        for metric in [*es.METRICS, SIMULATION]:
            values = group[metric].to_numpy(dtype=float)
            low, high = percentile_interval(values, draws, seed)
            row = {"layer": layer, "method": method, "function": function, "metric": metric,
                   "neurons": len(values), "mean": values.mean(), "ci_low": low, "ci_high": high}
            random = group.get(f"random_{metric}")
            paired = group[random.notna()] if random is not None else group.iloc[:0]
            row["random_mean"] = float(paired[f"random_{metric}"].mean()) if len(paired) else float("nan")
            row["above_random"] = (float((paired[metric] > paired[f"random_{metric}"]).mean()) if len(paired)
                                   else float("nan"))
            row["neurons_with_random"] = len(paired)
            for check in CHECKS:
                column = f"{metric}_{check}"
                row[f"{check}_pass_rate"] = float(group[column].astype(bool).mean()) if column in group else float("nan")
            if metric == SIMULATION:
                row["constant_baseline_mean"] = float(group[f"{SIMULATION}_constant"].mean())
            rows.append(row)
    summary = pd.DataFrame(rows)
    if len(summary):
        rank = {layer: i for i, layer in enumerate(order)}
        summary = summary.sort_values(["layer", "method", "function"], key=lambda s: s.map(rank) if s.name == "layer"
                                      else s, kind="stable").reset_index(drop=True)
    return summary


def plot_summary(summary: pd.DataFrame, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    metrics = [*es.METRICS, SIMULATION]
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.4), sharey=False)
    if summary.empty:
        axes[0].text(0, 0.5, "no neuron has an explanation to score", transform=axes[0].transAxes)
        save_figure(figure, path)
        return
    layers = list(dict.fromkeys(summary["layer"]))
    for ax, metric in zip(axes, metrics):
        part = summary[summary["metric"] == metric]
        for (method, function), group in part.groupby(["method", "function"], sort=True):
            x = [layers.index(layer) for layer in group["layer"]]
            err = np.vstack([group["mean"] - group["ci_low"], group["ci_high"] - group["mean"]]).clip(min=0)
            ax.errorbar(x, group["mean"], yerr=np.nan_to_num(err), marker="o", capsize=3,
                        label=f"{method} ({function})")
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
        ax.set_title(metric)
        ax.axhline(0, color="grey", linewidth=0.5)
    axes[0].legend(fontsize=7)
    axes[0].set_ylabel("mean score over neurons (95 % bootstrap CI)")
    figure.tight_layout()
    save_figure(figure, path)
