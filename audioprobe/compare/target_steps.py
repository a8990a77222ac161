"""The steps that compare a model's layers with a target (brain or behavioural responses to the same clips):
RSA with noise ceilings and cross-validated ridge encoding with noise-corrected R^2, one table per model."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from audioprobe.compare.steps import read_layers
from audioprobe.compare.targets import Responses, read_target
from audioprobe.io.atomic import read_csv, write_csv

log = logging.getLogger(__name__)


def layers_on_target(files: Mapping[str, str], target_path) -> tuple[dict[str, np.ndarray], Responses]:
    """The layers' rows of the target's stimuli, in the target's order, and the target."""
    layers, clip_ids, _ = read_layers(files)
    target = read_target(target_path)
    position = {clip: row for row, clip in enumerate(clip_ids)}
    missing = [clip for clip in target.clip_ids if clip not in position]
    if missing:
        raise ValueError(f"{target_path}: stimuli {missing[:5]} have no activations in "
                         f"{next(iter(files.values()))}: extract the model on the target's stimuli dataset")
    rows = [position[clip] for clip in target.clip_ids]
    return {layer: data[rows] for layer, data in layers.items()}, target


# --- RSA --------------------------------------------------------------------------------------------------

def target_rdms(target: Responses, rdm: str) -> np.ndarray:
    """One RDM per participant or repetition (the third axis), or the one RDM of a 2-D target: [k, pairs]."""
    from audioprobe.compare.rsa import layer_rdm

    values = target.values if target.third_axis else target.values[:, :, None]
    return np.stack([layer_rdm(values[:, :, k], rdm) for k in range(values.shape[2])])


def target_rsa(files: Mapping[str, str], target_path, model: str, depth: Mapping[str, float], settings: dict,
               out_table) -> pd.DataFrame:
    """Each layer's RDM against the target's RDMs (the mean similarity over participants or repetitions), with
    a bootstrap interval over stimuli and, with 2 or more target RDMs, the noise ceiling (lower, upper)."""
    from audioprobe.compare.rsa import bootstrap_ci, noise_ceiling

    layers, target = layers_on_target(files, target_path)
    rdms = target_rdms(target, settings["rdm"])
    records = []
    for method in settings["methods"]:
        ceiling = noise_ceiling(rdms, method) if len(rdms) >= 2 else (np.nan, np.nan)
        for layer, data in layers.items():
            log.info("%s %s: RSA (%s) with %d target RDMs on %d stimuli", model, layer, method, len(rdms),
                     len(data))
            result = bootstrap_ci(data, rdms, method, n_bootstrap=settings["bootstrap"], seed=settings["seed"],
                                  ci=settings["ci"], rdm_method=settings["rdm"])
            records.append({"model": model, "layer": layer, "depth": depth[layer], "method": method,
                            "score": result.estimate, "ci_low": result.low, "ci_high": result.high,
                            "ceiling_low": ceiling[0], "ceiling_high": ceiling[1], "stimuli": len(data),
                            "target_rdms": len(rdms), "rdms_over": target.third_axis or "none"})
    table = pd.DataFrame.from_records(records)
    write_csv(out_table, table, config={"model": model, **settings})
    return table


# --- encoding ---------------------------------------------------------------------------------------------

def encoding_responses(target: Responses) -> tuple[np.ndarray, np.ndarray | None]:
    """The responses as the encoding models take them, and the participant of each channel: repetitions stay
    on the third axis (for the noise correction); participants' channels become channels of their own."""
    values = target.values
    if target.third_axis != "participants":
        return values, None
    n_stimuli, n_channels, n_participants = values.shape
    flat = values.transpose(0, 2, 1).reshape(n_stimuli, n_participants * n_channels)
    return flat, np.repeat(np.arange(n_participants), n_channels)


def target_encoding(files: Mapping[str, str], target_path, model: str, depth: Mapping[str, float],
                    settings: dict, out_table) -> pd.DataFrame:
    """Per layer: ridge encoding models of every target channel on random stimulus splits (Tuckute et al.'s
    protocol by default), the median across channels of the median across splits of r^2 and, for a target with
    repetitions, of the noise-corrected r^2 (clipped at 1 after the median over splits); for participants, the
    median within each participant, then the mean across participants."""
    from audioprobe.compare.encoding import encoding_scores, random_splits, summarise

    layers, target = layers_on_target(files, target_path)
    responses, groups = encoding_responses(target)
    splits = random_splits(len(responses), settings["splits"], settings["train_fraction"], settings["seed"])
    alphas = 10.0 ** np.arange(settings["alpha_exponents"][0], settings["alpha_exponents"][1] + 1)
    records = []
    for layer, data in layers.items():
        log.info("%s %s: encoding %d channels from %d units, %d splits", model, layer, responses.shape[1],
                 data.shape[1], len(splits[0]))
        scores = encoding_scores(data, responses, splits, alphas=alphas, inner_cv=settings["inner_folds"],
                                 scale=settings["scale"], seed=settings["seed"])
        corrected = np.nan if scores.r2_corrected is None else summarise(scores.r2_corrected, groups, clip_max=1.0)
        records.append({"model": model, "layer": layer, "depth": depth[layer], "r2": summarise(scores.r2, groups),
                        "r2_corrected": corrected, "channels": responses.shape[1], "stimuli": len(responses),
                        "splits": len(splits[0]), "train": splits[0].shape[1]})
    table = pd.DataFrame.from_records(records)
    write_csv(out_table, table, config={"model": model, **settings})
    return table


# --- figure -----------------------------------------------------------------------------------------------

def target_profiles(rsa_tables: Mapping[str, str], encoding_tables: Mapping[str, str], target: str,
                    out_figure) -> None:
    """RSA score (first method, with its noise ceiling) and encoding R^2 against relative depth, the models
    overlaid."""
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    rsa = pd.concat([read_csv(p) for p in rsa_tables.values()], ignore_index=True)
    rsa = rsa[rsa.method == rsa.method.iloc[0]]
    encoding = pd.concat([read_csv(p) for p in encoding_tables.values()], ignore_index=True)
    score = "r2_corrected" if encoding["r2_corrected"].notna().any() else "r2"
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for model in rsa_tables:
        rows = rsa[rsa.model == model].sort_values("depth")
        line, = left.plot(rows.depth, rows.score, marker="o", label=model)
        left.fill_between(rows.depth, rows.ci_low, rows.ci_high, color=line.get_color(), alpha=0.2)
        rows = encoding[encoding.model == model].sort_values("depth")
        right.plot(rows.depth, rows[score], marker="o", color=line.get_color(), label=model)
    if rsa["ceiling_low"].notna().any():
        left.axhspan(rsa["ceiling_low"].iloc[0], rsa["ceiling_high"].iloc[0], color="grey", alpha=0.25,
                     label="noise ceiling")
    left.set_ylabel(f"RSA with {target} ({rsa.method.iloc[0]})")
    right.set_ylabel("median noise-corrected R²" if score == "r2_corrected" else "median R²")
    for axis in (left, right):
        axis.set_xlabel("relative depth")
        axis.legend(fontsize="small")
    save_figure(figure, out_figure)
