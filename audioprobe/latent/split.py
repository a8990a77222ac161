"""A persistent train / validation / test split by recording group, stratified by label combination."""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


def split_groups(clips: pd.DataFrame, factors: list[str], *, val_fraction: float, test_fraction: float,
                 seed: int, labels_key: str = "latent.factors", split_key: str = "latent.split") -> pd.DataFrame:
    """clip_id, group, split: whole recording groups go to one split, each label combination spread
    over the three splits in proportion where it has enough groups. Errors name ``labels_key`` (the config
    key that chose ``factors``) and ``split_key`` (the one that set the fractions)."""
    if not 0 <= val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"{split_key}: val_fraction and test_fraction must be fractions that leave a "
                         f"training share (got val {val_fraction}, test {test_fraction})")
    columns = [f"label_{f}" for f in factors]
    missing = [c for c in columns if c not in clips.columns]
    if missing:
        raise ValueError(f"the manifest has no label column {missing[0][6:]!r} ({labels_key}); its labels are "
                         f"{[c[6:] for c in clips.columns if c.startswith('label_')]}")
    stratum = clips[columns].astype(str).agg("|".join, axis=1)
    group_stratum = stratum.groupby(clips["group"]).agg(lambda s: s.value_counts().index[0])
    rng = np.random.default_rng(seed)
    assignment = {}
    for _, groups in sorted(group_stratum.groupby(group_stratum), key=lambda item: item[0]):
        names = sorted(groups.index)
        rng.shuffle(names)
        n_test = max(1, int(round(test_fraction * len(names)))) if len(names) >= 2 else 0
        n_val = int(round(val_fraction * len(names))) if len(names) - n_test >= 2 else 0
        for i, name in enumerate(names):
            assignment[name] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    out = pd.DataFrame({"clip_id": clips["clip_id"], "group": clips["group"],
                        "split": clips["group"].map(assignment)})
    for name in ("train", "test"):  # an empty validation split is allowed: the test split stands in
        if not (out["split"] == name).any():
            raise ValueError(f"the {name} split is empty: {clips['group'].nunique()} recording groups are too "
                             f"few for these fractions; add recordings or change {split_key}")
    return out


def cv_folds(clips: pd.DataFrame, split: pd.DataFrame, factors: list[str], *, n_folds: int,
             seed: int) -> pd.DataFrame:
    """clip_id, group, fold for every clip outside the test split: grouped cross-validation folds for
    decoding, stratified by label combination (e.g. material x action) so one set of folds serves every
    factor and every layer. Test clips get no fold: they are never decoded, fitted or used to pick a layer.
    """
    import warnings

    from audioprobe.latent.decode import FoldWarning, group_folds

    if list(split["clip_id"]) != list(clips["clip_id"]):
        raise ValueError("the split lists other clips than the manifest: rerun the latent_split rule")
    columns = [f"label_{f}" for f in factors]
    keep = (split["split"] != "test").to_numpy()
    combination = clips[columns].astype(str).agg(" x ".join, axis=1).to_numpy()[keep]
    groups = split["group"].astype(str).to_numpy()[keep]
    with warnings.catch_warnings():  # a combination missing from some fold's training is no decoding gap
        warnings.simplefilter("ignore", FoldWarning)
        folds = group_folds(groups, combination, n_folds, seed, factor=" x ".join(factors))
    fold = np.empty(len(groups), dtype=int)
    for number, (_, test) in enumerate(folds):
        fold[test] = number
    return pd.DataFrame({"clip_id": split["clip_id"].to_numpy()[keep], "group": groups, "fold": fold})


def split_masks(split_path, clip_ids) -> dict[str, np.ndarray]:
    """Boolean masks over ``clip_ids`` for each split, read from a split table."""
    from audioprobe.io.atomic import read_csv

    split = read_csv(split_path).set_index("clip_id")["split"]
    missing = [c for c in clip_ids if c not in split.index]
    if missing:
        raise ValueError(f"{split_path} has no split for clip {missing[0]!r}: rerun the split rule")
    split = split.loc[list(clip_ids)].to_numpy()
    return {name: split == name for name in SPLITS}


def class_codes(values) -> tuple[np.ndarray, list[str]]:
    """Integer codes of string labels, in sorted order of the label names, and the names."""
    names = sorted(set(values))
    return np.searchsorted(names, values), names
