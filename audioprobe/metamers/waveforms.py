"""The keyword dataset as fixed-length 16-kHz waveforms in one HDF5 file, and the test clips chosen from it as
metamer targets."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pandas as pd

from audioprobe.datasets.manifest import load_clip, read_manifest
from audioprobe.io.atomic import atomic_path, read_csv
from audioprobe.io.store import STRING, open_h5, read_strings

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000


def keyword_waveforms(manifest_path, root, out_path, *, clip_seconds: float, label: str = "word",
                      log: logging.Logger = log) -> None:
    """Every clip of a keyword dataset as 16-kHz mono float32, cropped or padded to ``clip_seconds``;
    the manifest's ``label`` column names the word."""
    clips = read_manifest(manifest_path)
    if f"label_{label}" not in clips.columns:
        raise ValueError(f"{manifest_path} has no {label!r} label (metamers.label); its labels are "
                         f"{[c[6:] for c in clips.columns if c.startswith('label_')]}")
    clips = clips.assign(label_word=clips[f"label_{label}"])
    samples = int(round(clip_seconds * SAMPLE_RATE))
    waves = np.stack([load_clip(root, row, SAMPLE_RATE, samples) for _, row in clips.iterrows()])
    silent = np.flatnonzero(np.sqrt(np.mean(waves ** 2, axis=1)) < 1e-4)
    clipped = np.flatnonzero(np.mean(np.abs(waves) >= 0.999, axis=1) > 0.01)
    log.info("%d clips, %d words; %d silent, %d clipped", len(clips), clips["label_word"].nunique(), len(silent),
             len(clipped))
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as file:
        file.create_dataset("waveforms", data=waves, track_times=False)
        file.create_dataset("clip_id", data=clips["clip_id"].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("word", data=clips["label_word"].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("group", data=clips["group"].to_numpy(dtype=object), dtype=STRING, track_times=False)
        file.create_dataset("silent", data=np.isin(np.arange(len(clips)), silent), track_times=False)
        file.create_dataset("clipped", data=np.isin(np.arange(len(clips)), clipped), track_times=False)
        file.attrs["sample_rate"] = SAMPLE_RATE
        file.attrs["config"] = json.dumps({"clip_seconds": clip_seconds, "manifest": str(manifest_path)})
        file.attrs["complete"] = True


def read_waveforms(path) -> dict:
    with open_h5(path) as file:
        return {"waveforms": file["waveforms"][()], "silent": file["silent"][()], "clipped": file["clipped"][()],
                **{k: read_strings(file[k]) for k in ("clip_id", "word", "group")}}


def choose_targets(data: dict, split_path, *, per_word: int, seed: int) -> pd.DataFrame:
    """Test-split clips to make metamers of: ``per_word`` per word, never silent or clipped ones.

    Silent or clipped candidates are skipped and listed in the log; a word with no usable test clip is
    an error naming it.
    """
    split = read_csv(split_path).set_index("clip_id")["split"]
    table = pd.DataFrame({"index": np.arange(len(data["clip_id"])), "clip_id": data["clip_id"], "word": data["word"],
                          "silent": data["silent"], "clipped": data["clipped"]})
    table = table[table["clip_id"].map(split) == "test"]
    unusable = table[table.silent | table.clipped]
    for _, row in unusable.iterrows():
        log.warning("not a metamer target: %s is %s", row.clip_id, "silent" if row.silent else "clipped")
    usable = table[~(table.silent | table.clipped)]
    rng = np.random.default_rng(seed)
    chosen = []
    for word in sorted(set(table["word"])):
        candidates = usable[usable.word == word]
        if candidates.empty:
            raise ValueError(f"no usable test clip of the word {word!r} (all silent or clipped): check the dataset")
        chosen.append(candidates.iloc[rng.permutation(len(candidates))[:per_word]])
    return pd.concat(chosen).sort_values("index").reset_index(drop=True)
