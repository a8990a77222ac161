"""The synthesis step: metamers of the chosen target sounds at every layer of one network, optimised in one
batch (:mod:`audioprobe.metamers.synthesis`) and stored in one HDF5 file, and its reader."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np

from audioprobe.io.atomic import atomic_path
from audioprobe.io.store import STRING, open_h5, read_strings
from audioprobe.metamers.networks import load_network
from audioprobe.metamers.waveforms import choose_targets, read_waveforms

log = logging.getLogger(__name__)


def synthesise_step(*, waveforms_path, split_path, out_h5, network: dict, synthesis_settings: dict, targets: dict,
                    threads: int, weights_path=None, evaluation_path=None, log: logging.Logger = log) -> None:
    """``weights_path`` and ``evaluation_path``: a keyword network's training outputs (see
    :func:`audioprobe.metamers.networks.load_network`)."""
    from audioprobe.metamers.synthesis import Settings, synthesise

    data = read_waveforms(waveforms_path)
    chosen = choose_targets(data, split_path, per_word=targets["per_word"], seed=targets["seed"])
    waves = data["waveforms"][chosen["index"].to_numpy()]
    net = load_network(network, waves.shape[1], threads, weights_path=weights_path, evaluation_path=evaluation_path)
    log.info("%d target sounds x %d layers (%s) in one batch", len(chosen), len(net.layers), ", ".join(net.layers))
    metamers, curve = synthesise(net.forward, waves, net.layers, Settings(**synthesis_settings), log=log,
                                 framework=net.framework)
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("metamers", data=metamers, track_times=False)
        file.create_dataset("loss", data=curve, track_times=False)
        file.create_dataset("targets", data=waves, track_times=False)
        for key in ("clip_id", "word"):
            file.create_dataset(key, data=chosen[key].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("layers", data=np.array(net.layers, dtype=object), dtype=STRING, track_times=False)
        file.attrs["config"] = json.dumps({"network": network, "synthesis": synthesis_settings, "targets": targets},
                                          sort_keys=True, default=str)
        file.attrs["complete"] = True


def read_metamers(path) -> dict:
    with open_h5(path) as file:
        strings = {k: read_strings(file[k]) for k in ("clip_id", "word", "layers")}
        return {"metamers": file["metamers"][()], "loss": file["loss"][()], "targets": file["targets"][()],
                **strings}
