"""The validation step: each metamer of one network checked against its natural sound and each layer's own
null distribution (:mod:`audioprobe.metamers.validation`), with its WAV files and a figure."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from audioprobe.io.atomic import check_inside_results, write_csv
from audioprobe.metamers.networks import layer_activations, load_network
from audioprobe.metamers.synthesis_step import read_metamers
from audioprobe.metamers.waveforms import SAMPLE_RATE, read_waveforms

log = logging.getLogger(__name__)


def validate_step(*, metamers_path, waveforms_path, validation_csv, null_csv, wav_dir, figure_png, network: dict,
                  null: dict, net_name: str, threads: int, weights_path=None, evaluation_path=None,
                  log: logging.Logger = log) -> None:
    """``weights_path`` and ``evaluation_path``: a keyword network's training outputs (see
    :func:`audioprobe.metamers.networks.load_network`)."""
    from audioprobe.metamers import validation
    from audioprobe.metamers.plots import plot_metamers

    made = read_metamers(metamers_path)
    data = read_waveforms(waveforms_path)
    net = load_network(network, made["targets"].shape[1], threads, weights_path=weights_path,
                       evaluation_path=evaluation_path)
    natural = layer_activations(net, made["targets"])
    natural_prediction = net.predict(made["targets"])
    pool = data["waveforms"][~(data["silent"] | data["clipped"])]
    pool_acts = layer_activations(net, pool[np.random.default_rng(null["seed"]).permutation(len(pool))[:200]])
    rng = np.random.default_rng(null["seed"])
    tables, nulls = [], []
    for index, layer in enumerate(made["layers"]):
        nulled = validation.null_distribution(pool_acts[layer].reshape(len(pool_acts[layer]), -1), null["pairs"], rng)
        limits = validation.thresholds(nulled, null["threshold"])
        nulls.append(nulled.assign(layer=layer))
        metamers = made["metamers"][index]
        acts = layer_activations(net, metamers)[layer]
        acts[~np.isfinite(metamers).all(axis=1)] = np.nan
        table = validation.validate(acts, natural[layer], net.predict(np.nan_to_num(metamers)), natural_prediction,
                                    limits)
        table.insert(0, "clip_id", made["clip_id"])
        table.insert(1, "word", made["word"])
        table.insert(0, "layer", layer)
        table.insert(0, "model", net_name)
        table["final_loss"] = made["loss"][-1, index]
        for measure, value in limits.items():
            table[f"null_{measure}"] = value
        tables.append(table)
        log.info("%s: %d of %d metamers pass", layer, table["passed"].sum(), len(table))
    table = pd.concat(tables, ignore_index=True)
    write_wav_folder(wav_dir, made)
    table["wav"] = [f"{layer}/{clip}.wav" if not diverged else "" for layer, clip, diverged in
                    zip(table["layer"], table["clip_id"], table["diverged"])]
    record = {"network": network, "null": null}
    write_csv(null_csv, pd.concat(nulls, ignore_index=True), config=record)
    plot_metamers(made, net, figure_png, title=net_name)
    write_csv(validation_csv, table, config=record)


def write_wav_folder(folder, made: dict) -> None:
    """The targets (``natural/<clip>.wav``) and every metamer that did not diverge (``<layer>/<clip>.wav``) of
    ``made`` (see :func:`audioprobe.metamers.synthesis_step.read_metamers`) as a folder that appears whole: built
    in ``<folder>.part``, then renamed onto ``folder``, whose old contents are removed.

    Both folders are checked to be really inside ``results/`` before anything is removed or written, so a
    symbolic link in a shared results folder cannot make the removal delete, or the writes land, outside it."""
    import os
    import shutil

    from audioprobe.io.audio import write_wav

    folder = str(folder)
    tmp_folder = f"{folder}.part"
    for path in (folder, tmp_folder):  # the folders themselves, not only their parent, must stay inside
        check_inside_results(os.path.join(path, "natural"))
    shutil.rmtree(tmp_folder, ignore_errors=True)
    for i, clip in enumerate(made["clip_id"]):
        write_wav(f"{tmp_folder}/natural/{clip}.wav", made["targets"][i], SAMPLE_RATE)
        for index, layer in enumerate(made["layers"]):
            if np.isfinite(made["metamers"][index, i]).all():
                write_wav(f"{tmp_folder}/{layer}/{clip}.wav", _peak_safe(made["metamers"][index, i]), SAMPLE_RATE)
    check_inside_results(os.path.join(folder, "natural"))  # again, just before the removal and the rename
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp_folder, folder)


def _peak_safe(signal: np.ndarray) -> np.ndarray:
    """Metamers are not constrained to [-1, 1]: scale down (never up) so the 16-bit WAV does not clip."""
    peak = np.max(np.abs(signal))
    return signal / peak * 0.99 if peak > 0.99 else signal
