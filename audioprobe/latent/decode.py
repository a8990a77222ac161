"""KNN decoding of labelled factors from each layer's features, with leakage-free grouped cross-validation.

Clips cut from one source recording (overlapping patches, neighbouring time blocks) are near-duplicates.
Splitting rows at random puts such twins on both sides of a fold, and a nearest-neighbour classifier
then "decodes" the recording rather than the factor. Here every fold holds out whole groups (a group is a
source recording), stratified by label as far as the groups allow, and every layer of a factor is scored
on the same folds so layers can be compared fold by fold. Features may differ per fold (a projection fitted
on that fold's training clips only). Chance is a label-permutation null over the same folds, not the
training majority class, which grouped folds push below 1/K.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from audioprobe import stats
from audioprobe.plots import save_figure

log = logging.getLogger(__name__)

DECODE_COLUMNS = ["layer", "factor", "fold", "accuracy", "balanced_accuracy", "majority_chance",
                  "majority_chance_balanced", "n_train", "n_test", "missing_in_training", "split", "decoded_on"]
CONTRASTS = (("first vs best", "first", "best"), ("best vs last", "best", "last"),
             ("first vs last", "first", "last"))


class FoldWarning(UserWarning):
    """Some fold has a test clip whose class is absent from that fold's training clips."""


def describe_split(n_folds: int, group_by: str = "source recording") -> str:
    return f"{n_folds}-fold StratifiedGroupKFold by {group_by}"


def group_folds(groups, labels, n_folds: int = 10, seed: int = 0, *, factor: str = "labels"):
    """Cross-validation folds made of whole groups, stratified by label where the groups allow it.

    Returns a list of ``(train_idx, test_idx)`` index arrays; every clip is in exactly one test fold and
    no group is on both sides of a fold. A class with too few groups to be in training in every fold is
    not an error: a :class:`FoldWarning` names it, and :func:`missing_in_training` lists it per fold.
    """
    groups, labels = _vector(groups, "groups"), _vector(labels, factor)
    if len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} entries but {factor!r} has {len(labels)}; "
                         "give one group and one label per clip")
    _check_folds_setting(n_folds, seed)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"factor {factor!r} has a single class ({_plain(classes[0])!r}) across "
                         f"{len(labels)} clips: there is nothing to decode; drop it or add clips of "
                         "other classes")
    n_groups = len(np.unique(groups))
    if n_groups < n_folds:
        raise ValueError(f"there are {n_groups} groups (source recordings) but {n_folds} folds were "
                         f"asked for; each fold needs a whole group, so use at most n_folds={n_groups}")
    counts = pd.Series(labels).value_counts()
    if counts.max() < n_folds:
        raise ValueError(f"every class of {factor!r} has fewer clips than the {n_folds} folds "
                         f"(largest class: {counts.max()} clips); use fewer folds")
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # sklearn's warning counts clips, not groups; the check below reports what matters.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds = [(np.sort(train), np.sort(test))
                 for train, test in splitter.split(np.zeros((len(labels), 1)), labels, groups)]
    empty = [i for i, (_, test) in enumerate(folds) if len(test) == 0]
    if empty:
        raise ValueError(f"folds {empty} received no group ({n_groups} groups for {n_folds} folds); "
                         "use fewer folds")
    problems = _gap_messages(missing_in_training(folds, labels), labels, groups, factor)
    if problems:
        warnings.warn("; ".join(problems), FoldWarning, stacklevel=2)
    return folds


def missing_in_training(folds, labels) -> list[list]:
    """Per fold, the classes that occur in its test clips but not in its training clips (sorted).

    Test clips of such a class can never be classified correctly in that fold.
    """
    labels = np.asarray(labels)
    return [sorted(_plain(label) for label in set(np.unique(labels[test])) - set(np.unique(labels[train])))
            for train, test in folds]


def decode_factor(features, labels, groups, *, k: int = 3, metric: str = "euclidean", n_folds: int = 10,
                  seed: int = 0, group_by: str = "source recording") -> pd.DataFrame:
    """Decode ``labels`` from ``features`` [N, D] with a k-nearest-neighbour classifier, fold by fold.

    Folds come from :func:`group_folds`. Returns one row per fold with: fold (0-based), accuracy,
    balanced_accuracy, majority_chance, majority_chance_balanced, n_train, n_test, missing_in_training,
    split. ``majority_chance`` is the accuracy on the test fold of always predicting the training fold's
    majority class (ties go to the first class in sorted order) and ``majority_chance_balanced`` the
    balanced accuracy of that same guess. With grouped folds this baseline can lie well below 1/K; the
    permutation null (:func:`null_distribution`) is the chance level to compare with.
    """
    x = _features(features, "features")
    labels = _vector(labels, "labels")
    if len(x) != len(labels):
        raise ValueError(f"features have {len(x)} rows but there are {len(labels)} labels; give one row "
                         "per clip")
    folds = group_folds(groups, labels, n_folds, seed)
    table = _score_folds(fold_neighbours(x, folds, k=k, metric=metric), labels, folds)
    table["split"] = describe_split(n_folds, group_by)
    return table


def folds_from_index(fold_of, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, test_idx)`` pairs from one fold number per clip (0 .. F-1, every fold used).

    With ``groups``, a group split over two folds is refused: its clips would be neighbours of each other.
    """
    fold_of = _vector(fold_of, "folds")
    if not np.issubdtype(fold_of.dtype, np.integer):
        raise ValueError(f"folds must be whole fold numbers, got dtype {fold_of.dtype}")
    numbers = np.unique(fold_of)
    if numbers[0] != 0 or numbers[-1] != len(numbers) - 1 or len(numbers) < 2:
        raise ValueError(f"folds must number at least two folds 0, 1, ... without gaps, got {numbers.tolist()}")
    if groups is not None:
        groups = _vector(groups, "groups")
        if len(groups) != len(fold_of):
            raise ValueError(f"groups has {len(groups)} entries but folds has {len(fold_of)}")
        spread = pd.Series(fold_of).groupby(pd.Series(groups)).nunique()
        if (spread > 1).any():
            raise ValueError(f"group {spread.index[np.argmax(spread.to_numpy() > 1)]!r} lies in more than one "
                             "fold; folds must hold out whole groups (rerun the latent_folds rule)")
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in numbers]


def decode_layers(features: dict, factors: dict, groups, *, folds=None, k: int = 3, metric: str = "euclidean",
                  n_folds: int = 10, seed: int = 0, group_by: str = "source recording",
                  split: str | None = None, decoded_on: str = "all clips given") -> pd.DataFrame:
    """Decode every factor from every layer; every layer of a factor is scored on the same folds.

    ``features`` maps layer name -> [N, D] array, or -> [F, N, D]: one matrix per fold, e.g. a projection
    fitted on that fold's training clips only (then ``folds`` is required). ``factors`` maps factor
    name -> N labels; ``groups`` gives each clip's source recording. ``folds`` (one fold number per clip)
    fixes the folds for every factor; without it each factor gets its own :func:`group_folds`.
    Returns columns layer, factor, fold, accuracy, balanced_accuracy, majority_chance,
    majority_chance_balanced, n_train, n_test, missing_in_training, split, decoded_on; rows ordered by
    factor, then layer (in the order given), then fold. To also compute the permutation null, call
    :func:`decode_with_null`: it finds the neighbours once for both.
    """
    return _decode(features, factors, groups, folds=folds, k=k, metric=metric, n_folds=n_folds, seed=seed,
                   permutations=None, text=(group_by, split, decoded_on))[0]


def null_distribution(features: dict, factors: dict, groups, *, permutations: int, folds=None, k: int = 3,
                      metric: str = "euclidean", n_folds: int = 10, seed: int = 0) -> pd.DataFrame:
    """Label-permutation null of the mean cross-validated accuracy, per layer and factor.

    Each permutation shuffles the labels of whole groups among the groups of the same fold (see
    :func:`permuted_labels`) and reruns the same grouped cross-validation: same folds, same features, same
    k. The folds stay fixed because the per-fold projections were fitted on them (without labels). A clip's
    nearest training neighbours do not depend on the labels, so they are found once per layer and fold and
    every permutation only re-votes. Every layer of a factor sees
    the same seeded permutations. Returns columns layer, factor, permutation, accuracy (mean over folds) and
    null_unit ("recording", or "clip" where some group mixes labels; a warning then names the groups).
    """
    permutations = _check_count(permutations, "permutations")
    return _decode(features, factors, groups, folds=folds, k=k, metric=metric, n_folds=n_folds, seed=seed,
                   permutations=permutations, text=None)[1]


def decode_with_null(features: dict, factors: dict, groups, *, permutations: int, folds=None, k: int = 3,
                     metric: str = "euclidean", n_folds: int = 10, seed: int = 0, group_by: str = "source recording",
                     split: str | None = None, decoded_on: str = "all clips given") -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(decode_layers(...), null_distribution(...))`` with the same arguments, equal to those two calls, in one
    pass: each layer's neighbours are found once and serve the decoding and the null of every factor (with
    ``folds`` given every factor shares the folds, so once per layer; otherwise once per layer and factor)."""
    permutations = _check_count(permutations, "permutations")
    return _decode(features, factors, groups, folds=folds, k=k, metric=metric, n_folds=n_folds, seed=seed,
                   permutations=permutations, text=(group_by, split, decoded_on))


def _decode(features, factors, groups, *, folds, k, metric, n_folds, seed, permutations, text):
    """The decoding table (when ``text`` = (group_by, split, decoded_on) is given) and the null (when
    ``permutations`` is), layer by layer, with one neighbour search per layer and set of folds."""
    arrays, factors, groups = _check_layers(features, factors, groups, folds)
    if permutations is not None:
        streams = np.random.SeedSequence(_check_seed(seed)).spawn(len(factors))
    fold_lists, shuffles = {}, {}
    for i, (factor, labels) in enumerate(factors.items()):
        fold_lists[factor] = _folds_for(folds, groups, labels, n_folds, seed, factor)
        if permutations is not None:
            shuffles[factor] = _shuffled_codes(labels, groups, fold_lists[factor], permutations,
                                               streams[i], factor)
    tables, nulls = {}, {}
    for layer, x in arrays.items():
        found = {}
        for factor, labels in factors.items():
            shared = "every factor" if folds is not None else factor  # the same folds: the same neighbours
            if shared not in found:
                found[shared] = fold_neighbours(x, fold_lists[factor], k=k, metric=metric)
            if text is not None:
                tables[factor, layer] = _decoded_table(found[shared], labels, fold_lists[factor], layer,
                                                       factor, text)
            if permutations is not None:
                nulls[factor, layer] = _null_table(found[shared], shuffles[factor], fold_lists[factor], layer,
                                                   factor)
    order = [(factor, layer) for factor in factors for layer in arrays]
    table = pd.concat([tables[key] for key in order], ignore_index=True)[DECODE_COLUMNS] if tables else None
    null = pd.concat([nulls[key] for key in order], ignore_index=True) if nulls else None
    return table, null


def _decoded_table(neighbours, labels, folds, layer, factor, text) -> pd.DataFrame:
    group_by, split, decoded_on = text
    return _score_folds(neighbours, labels, folds).assign(
        layer=layer, factor=str(factor), split=split or describe_split(len(folds), group_by), decoded_on=decoded_on)


def _shuffled_codes(labels, groups, folds, permutations, stream, factor):
    """[permutations, N] shuffled class codes (in the smallest integer type that holds them: one byte per
    clip and permutation for up to 255 classes), the class count and the null's unit."""
    codes, n_classes = _codes(labels)
    design = null_design(codes, groups, folds)
    _log_design(design, factor)
    small = codes.astype(np.min_scalar_type(n_classes))
    shuffled = permuted_labels(small, groups, permutations, np.random.default_rng(stream), folds)
    return shuffled, n_classes, design.unit


def _null_table(neighbours, shuffle, folds, layer, factor) -> pd.DataFrame:
    shuffled, n_classes, unit = shuffle
    accuracy = np.mean([_null_fold_accuracy(shuffled, nearest, test, n_classes)
                        for nearest, (_, test) in zip(neighbours, folds)], axis=0)
    return pd.DataFrame({"layer": layer, "factor": str(factor), "permutation": np.arange(len(shuffled)),
                         "accuracy": accuracy, "null_unit": unit})


@dataclass
class NullDesign:
    """How the permutation null shuffles one factor's labels.

    ``units`` holds each unit's class code and ``unit_of`` each clip's unit; ``unit`` says what a unit is
    ("recording", or "clip" when some group mixes labels, listed in ``mixed_groups``). Labels move only
    within each of ``blocks`` (arrays of units): the test folds, or all units at once. ``frozen_folds`` are
    folds whose labels can never move (a single class, or a single unit).
    """
    units: np.ndarray
    unit_of: np.ndarray
    blocks: list
    unit: str
    mixed_groups: list
    frozen_folds: list
    within_folds: bool

    def relabelings_log10(self) -> float:
        """log10 of the number of distinct relabelings the shuffles can reach: per block, the multinomial
        count of arrangements of its units' labels, multiplied over blocks."""
        total = 0.0
        for block in self.blocks:
            counts = np.unique(self.units[block], return_counts=True)[1]
            total += (math.lgamma(len(block) + 1) - sum(math.lgamma(c + 1) for c in counts)) / math.log(10)
        return total


def null_design(codes, groups, folds=None) -> NullDesign:
    """The units and blocks of the permutation null for integer labels ``codes`` (see
    :func:`permuted_labels`)."""
    codes, groups = np.asarray(codes), np.asarray(groups)
    names, group_of = np.unique(groups, return_inverse=True)
    group_of = group_of.reshape(-1)
    first = np.zeros(len(names), dtype=int)
    first[group_of[::-1]] = np.arange(len(codes))[::-1]  # each group's first clip
    per_group = pd.Series(codes).groupby(group_of).nunique().to_numpy()
    mixed = [_plain(name) for name in names[per_group > 1]]
    units, unit_of = (codes[first], group_of) if not mixed else (codes, np.arange(len(codes)))
    blocks, frozen, within = [np.arange(len(units))], [], False
    if folds is not None:
        fold_of_unit = np.zeros(len(units), dtype=int)
        for number, (_, test) in enumerate(folds):
            fold_of_unit[unit_of[test]] = number
        per_fold = [np.flatnonzero(fold_of_unit == f) for f in range(len(folds))]
        movable = [len(np.unique(units[block])) > 1 for block in per_fold]
        if any(movable):
            blocks, within = per_fold, True
            frozen = [f for f, can in enumerate(movable) if not can]
    return NullDesign(units, unit_of, blocks, "clip" if mixed else "recording", mixed, frozen, within)


def null_resolution(factors: dict, groups, folds, permutations: int) -> pd.DataFrame:
    """Per factor: null_unit, the distinct relabelings the null can reach (log10), the smallest p-value it
    can give (about max(1 / (1 + permutations), 1 / relabelings): with few relabelings the observed labelling
    recurs among the shuffles) and the folds whose labels never move."""
    groups = _vector(groups, "groups")
    fold_list = folds_from_index(folds, groups)
    rows = []
    for factor, labels in factors.items():
        design = null_design(_codes(_vector(labels, str(factor)))[0], groups, fold_list)
        reach = design.relabelings_log10()
        rows.append({"factor": str(factor), "null_unit": design.unit, "null_relabelings_log10": round(reach, 3),
                     "null_min_p": max(1 / (1 + permutations), 10.0 ** -reach),
                     "null_frozen_folds": ",".join(map(str, design.frozen_folds)),
                     "null_shuffled_within": "test folds" if design.within_folds else "all units"})
    return pd.DataFrame(rows)


def _log_design(design: NullDesign, factor) -> None:
    if design.mixed_groups:
        shown = ", ".join(map(repr, design.mixed_groups[:10])) + (" ..." if len(design.mixed_groups) > 10 else "")
        log.warning("factor %r: %d recording group(s) mix labels (%s), so the permutation null shuffles clips, "
                    "not recordings, and is too narrow for grouped data; give each recording one label of the "
                    "factor (null_unit = clip in the summary)", factor, len(design.mixed_groups), shown)
    if design.frozen_folds:
        log.info("factor %r: fold(s) %s hold a single class (or a single %s), so their labels stay fixed in every "
                 "permutation", factor, design.frozen_folds, design.unit)
    if not design.within_folds:
        log.info("factor %r: no fold can shuffle labels within itself, so labels are shuffled over all %ss",
                 factor, design.unit)


def permuted_labels(codes, groups, permutations: int, rng: np.random.Generator, folds=None) -> np.ndarray:
    """[permutations, N] relabelings that shuffle whole recordings' labels.

    With ``folds`` (``(train, test)`` pairs) labels are shuffled among the recordings of the same test fold:
    the folds were stratified on the true labels, and keeping each fold's class counts keeps that design, so
    an uninformative layer's accuracy follows the null (a free shuffle gives stratified folds' chance too
    low a value when classes have few recordings). A fold with a single class stays as it is. Where that
    cannot move any label (every fold a single recording or a single class) labels are shuffled over all
    recordings. A group that mixes labels makes clips the unit instead of recordings (see
    :func:`null_design`, whose ``unit`` says which).
    """
    codes = np.asarray(codes)
    design = null_design(codes, groups, folds)
    units, unit_of = design.units, design.unit_of
    out = np.empty((permutations, len(codes)), dtype=codes.dtype)
    for i in range(permutations):
        shuffled = units.copy()
        for block in design.blocks:
            shuffled[block] = units[rng.permutation(block)]
        out[i] = shuffled[unit_of]
    return out


def null_summary(observed: float, null) -> dict:
    """Mean and 95th percentile of a null sample and the permutation p-value of ``observed``:
    (1 + #{null >= observed}) / (1 + n), so it is never 0."""
    null = np.asarray(null, float)
    return {"null_mean": float(null.mean()), "null_p95": float(np.quantile(null, 0.95)),
            "p_permutation": float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null))),
            "permutations": len(null)}


def summarise_decoding(table: pd.DataFrame, null: pd.DataFrame | None = None,
                       resolution: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per layer x factor: n_folds, mean/sd/se/min/max accuracy, mean balanced accuracy, the mean majority
    baseline, split and decoded_on; with ``null`` (see :func:`null_distribution`) also null_mean, null_p95,
    p_permutation, p_permutation_holm (Holm across the layers of a factor), permutations and null_unit; with
    ``resolution`` (see :func:`null_resolution`) also its per-factor columns.

    Layers and factors keep the order in which they first appear in ``table``.
    """
    _require_columns(table, ["layer", "factor", "fold", "accuracy", "balanced_accuracy", "majority_chance"],
                     "a decoding table")
    table = table.assign(split=table["split"] if "split" in table else "unknown split",
                         decoded_on=table["decoded_on"] if "decoded_on" in table else "unknown clips")
    rows = []
    for (factor, layer), part in table.groupby(["factor", "layer"], sort=False):
        mean, se = stats.mean_and_se(part["accuracy"])
        row = {"layer": layer, "factor": factor, "n_folds": len(part), "mean_accuracy": mean,
               "sd_accuracy": float(part["accuracy"].std(ddof=1)) if len(part) > 1 else np.nan,
               "se_accuracy": se, "min_accuracy": float(part["accuracy"].min()),
               "max_accuracy": float(part["accuracy"].max()),
               "mean_balanced_accuracy": float(part["balanced_accuracy"].mean()),
               "mean_majority_chance": float(part["majority_chance"].mean())}
        if null is not None:
            sample = null[(null["factor"] == factor) & (null["layer"] == layer)]["accuracy"]
            if sample.empty:
                raise ValueError(f"the null distribution has no row for layer {layer!r}, factor {factor!r}; "
                                 "compute it with null_distribution on the same layers and factors")
            row.update(null_summary(mean, sample))
            if "null_unit" in null.columns:
                row["null_unit"] = "; ".join(dict.fromkeys(null.loc[sample.index, "null_unit"].astype(str)))
        rows.append({**row, "split": "; ".join(dict.fromkeys(part["split"].astype(str))),
                     "decoded_on": "; ".join(dict.fromkeys(part["decoded_on"].astype(str)))})
    summary = pd.DataFrame(rows)
    if null is not None:
        summary["p_permutation_holm"] = summary.groupby("factor", sort=False)["p_permutation"].transform(
            lambda p: stats.holm(p.to_numpy()))
    if resolution is not None:
        extra = resolution.drop(columns=[c for c in resolution.columns if c in summary.columns and c != "factor"])
        summary = summary.merge(extra, on="factor", how="left", validate="many_to_one")
    return summary


def best_layer(table: pd.DataFrame, factor) -> str:
    """The layer with the highest mean accuracy for ``factor`` (the earliest such layer on a tie)."""
    accuracy = _accuracy_by_fold(table, factor)
    means = accuracy.mean(axis=0)
    return str(means.index[int(np.argmax(means.to_numpy()))])


LAYER_TEST_CAVEAT = ("optimistic: the folds share training clips (their accuracies are not independent) and the "
                     "best layer is chosen on the same folds it is tested on; read these p-values as descriptive")


def layer_comparisons(table: pd.DataFrame, factor) -> pd.DataFrame:
    """Paired comparisons across folds of the first vs best, best vs last and first vs last layer.

    The best layer has the highest mean accuracy (earliest on a tie); first and last follow the table's
    layer order. Each comparison pairs the two layers' accuracies fold by fold (:func:`stats.compare_pairs`)
    and the Bonferroni and Holm corrections run across the comparisons actually made. When the best layer
    is the first or the last, a contrast would compare a layer with itself: its row is kept with NaN
    statistics and a ``note``, and it does not count as a test.

    Caveat reported with the numbers (:data:`LAYER_TEST_CAVEAT`): the best layer is chosen on the same folds
    it is tested on, and cross-validation folds share training clips, so these p-values are optimistic.

    Returns columns factor, contrast, layer_a, layer_b, best_layer, then those of
    :func:`stats.compare_pairs` (comparison, n, mean_a, mean_b, mean_diff, se_diff, t, df, p_t, w,
    p_wilcoxon, note, and the corrected p-values).
    """
    accuracy = _accuracy_by_fold(table, factor)
    layers = list(accuracy.columns)
    roles = {"first": layers[0], "best": best_layer(table, factor), "last": layers[-1]}
    pairs = [(name, roles[a], roles[b], a, b) for name, a, b in CONTRASTS]
    tested = [pair for pair in pairs if pair[1] != pair[2]]
    results = {}
    if tested:
        compared = stats.compare_pairs([(a, accuracy[a].to_numpy(), b, accuracy[b].to_numpy())
                                        for _, a, b, _, _ in tested])
        results = {pair[0]: row for pair, (_, row) in zip(tested, compared.iterrows())}
    rows = []
    for name, a, b, role_a, role_b in pairs:
        row = results.get(name)
        if row is None:
            row = pd.Series({"comparison": f"{a} vs {b}", "label_a": a, "label_b": b, "n": len(accuracy),
                             "mean_a": accuracy[a].mean(), "mean_b": accuracy[b].mean(), "mean_diff": 0.0,
                             "note": f"not tested: the {role_a} and the {role_b} layer are both {a}"})
        rows.append({"factor": factor, "contrast": name, "layer_a": a, "layer_b": b,
                     "best_layer": roles["best"], **row.drop(["label_a", "label_b"]).to_dict()})
    out = pd.DataFrame(rows)
    columns = ["factor", "contrast", "layer_a", "layer_b", "best_layer", "comparison", "n", "mean_a", "mean_b",
               "mean_diff", "se_diff", "t", "df", "p_t", "w", "p_wilcoxon", "note",
               *(f"{p}_{method}" for p in stats.P_COLUMNS for method in ("bonferroni", "holm"))]
    return out.reindex(columns=columns)


def plot_decoding(summary: pd.DataFrame, path) -> None:
    """Mean accuracy ± SE per layer, one line per factor; its chance level is the permutation null's mean
    (dashed) with the null's uncorrected 95th percentile (dotted): a layer above the dotted line would have
    p < 0.05 on its own, before the Holm correction across layers (``p_permutation_holm`` in the summary).

    ``path`` ends in .png or .svg; the file is written atomically (temporary file beside it, then
    renamed), so a reader never sees half a figure.
    """
    from matplotlib.figure import Figure

    _require_columns(summary, ["layer", "factor", "mean_accuracy", "se_accuracy", "null_mean", "null_p95"],
                     "a decoding summary with a permutation null (see summarise_decoding)")
    if summary.empty:
        raise ValueError("the decoding summary is empty: there is nothing to plot")
    target = Path(path)
    layers = list(dict.fromkeys(summary["layer"].astype(str)))
    position = {layer: i for i, layer in enumerate(layers)}
    figure = Figure(figsize=(max(5.0, 0.5 * len(layers) + 2.5), 4.0), layout="constrained")
    axes = figure.add_subplot()
    handles = []
    for i, (factor, part) in enumerate(summary.groupby("factor", sort=False)):
        x = part["layer"].astype(str).map(position).to_numpy()
        colour = f"C{i % 10}"
        handles.append(axes.errorbar(x, part["mean_accuracy"], yerr=part["se_accuracy"].fillna(0),
                                     color=colour, marker="o", capsize=3, label=str(factor)))
        handles.extend(axes.plot(x, part["null_mean"], color=colour, linestyle="--", linewidth=1,
                                 label=f"{factor}: chance (permutation mean)"))
        handles.extend(axes.plot(x, part["null_p95"], color=colour, linestyle=":", linewidth=1,
                                 label=f"{factor}: permutation 95th percentile (uncorrected)"))
    axes.set_xticks(range(len(layers)), layers, rotation=45 if len(layers) > 6 else 0,
                    ha="right" if len(layers) > 6 else "center")
    axes.set_xlabel("layer")
    axes.set_ylabel("KNN accuracy (mean ± SE over folds)")
    axes.set_ylim(0, 1.02)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(handles=handles, fontsize="small")
    split = "; ".join(dict.fromkeys(summary["split"].astype(str))) if "split" in summary else ""
    if split:
        axes.set_title(split, fontsize="small")
    save_figure(figure, target)


BLAS_METRICS = ("euclidean", "cosine")
SCREEN_BLOCK_BYTES = 64 * 2**20
EXACT_PAIRS = 2**16
VOTE_ELEMENTS = 2**20
VOTE_TABLE_SIZE = 2**20
_FLOAT32_UNIT = 2.0 ** -24
PADDING_SCORE = 1e30  # far above any real score: scaled values are below 1 in magnitude


def fold_neighbours(x, folds, *, k: int, metric: str = "euclidean",
                    block_bytes: int = SCREEN_BLOCK_BYTES) -> list[np.ndarray]:
    """Per fold, [n_test, k] indices (into all clips) of each test clip's k nearest training clips.

    ``x`` is [N, D] (one feature matrix for every fold) or [F, N, D] (fold f uses x[f]); ``folds`` holds
    ``(train_idx, test_idx)`` pairs. Euclidean and cosine neighbours come from :func:`nearest_points`:
    float32 matrix products (multi-threaded BLAS) in blocks of at most ``block_bytes`` of scores, then
    float64 distances for every candidate that float32 rounding could place among the k nearest, so neither
    the precision nor ``block_bytes`` changes the result. Tie rule: among training clips at exactly the same
    distance the one with the smaller index is nearer. That is scikit-learn's brute-force result wherever no
    exact tie straddles the k-th place; at such a tie scikit-learn has no fixed rule (its choice changes with
    the data size and the thread count). Other metrics (manhattan) use scikit-learn, with its tie handling.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive whole number of neighbours, got {k!r}")
    smallest = min(len(train) for train, _ in folds)
    if k > smallest:
        raise ValueError(f"k={k} neighbours but the smallest training fold has {smallest} clips; use "
                         f"k <= {smallest} or fewer folds")
    out = []
    for f, (train, test) in enumerate(folds):
        values = x[f] if x.ndim == 3 else x
        out.append(train[nearest_points(values[test], values[train], k=k, metric=metric, block_bytes=block_bytes)])
    return out


def nearest_points(queries, points, *, k: int, metric: str = "euclidean",
                   block_bytes: int = SCREEN_BLOCK_BYTES) -> np.ndarray:
    """[n_queries, k] row indices of ``points`` nearest to each query, nearest first; equal distances go to
    the lower index.

    Euclidean and cosine run in two stages. Screening: a float32 score per pair from one matrix product,
    ``|p|^2 - 2 q.p`` (euclidean: the squared distance less the query's constant ``|q|^2``) or ``-q.p`` on unit
    vectors (cosine), computed for blocks of queries; every point whose score is within twice the worst-case
    float32 error (:func:`_screening_error`) of the query's k-th smallest score is a candidate
    (:func:`_candidates`). Ranking: the candidates' float64 distances (sum of squared differences; 1 - cosine)
    ordered by (distance, index). Every point that can be among the k nearest in float64 is a candidate, so
    the result depends neither on float32 rounding nor on the block size. Other metrics use scikit-learn.
    """
    if not 1 <= k <= len(points):
        raise ValueError(f"k={k} neighbours among {len(points)} points: k must be between 1 and {len(points)}")
    if metric not in BLAS_METRICS:
        return _nearest_sklearn(queries, points, k, metric)
    queries, points = _metric_space(queries, metric), _metric_space(points, metric)
    scale = _power_of_two_scale(queries, points) if metric == "euclidean" else 1.0  # unit vectors need none
    screened, far = _split_far_points(points, k) if metric == "euclidean" else (np.arange(len(points)), None)
    near = points if far is None else points[screened]
    screen_points, n_blocks = _screening_points(near, metric, k, scale)
    screen_queries = _screening_queries(queries, metric, scale)
    error = _screening_error(queries, near, scale)
    rows = max(1, block_bytes // (4 * len(screen_points)))
    out = np.empty((len(queries), k), dtype=np.intp)
    buffer = np.empty((min(rows, len(queries)), len(screen_points)), dtype=np.float32)  # reused: no page faults
    for start in range(0, len(queries), rows):
        block = slice(start, start + rows)
        scores = np.matmul(screen_queries[block], screen_points.T, out=buffer[:len(screen_queries[block])])
        query, point = _candidates(scores, n_blocks, k, 2 * error[block])
        candidates = _with_far_points(query, screened[point], far, len(scores))
        out[block] = _ranked(queries[block], points, candidates, k, metric)
    return out


def _split_far_points(points, k) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices of the points to screen, indices of the far points or None). The screening margin grows with
    the largest point's squared norm, so one outlier (a flow latent of norm 3,000 among norms of 8) would make
    every point a candidate. Points beyond twice the 99th percentile of the norms skip the screening and are
    ranked in float64 for every query instead: the neighbours are the same, only the work changes."""
    norms = np.sqrt(np.einsum("ij,ij->i", points, points))
    far = norms > 2 * np.quantile(norms, 0.99)
    if not far.any() or (~far).sum() < k:
        return np.arange(len(points)), None
    return np.flatnonzero(~far), np.flatnonzero(far)


def _with_far_points(query, point, far, n_queries) -> tuple[np.ndarray, np.ndarray]:
    """The screened (query, point) candidates plus every (query, far point) pair."""
    if far is None:
        return query, point
    return (np.concatenate([query, np.repeat(np.arange(n_queries), len(far))]),
            np.concatenate([point, np.tile(far, n_queries)]))


def _nearest_sklearn(queries, points, k, metric) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(points)
    return search.kneighbors(queries, return_distance=False)


def _metric_space(values, metric) -> np.ndarray:
    """float64 rows; for cosine scaled to unit length (a zero row stays zero, as in scikit-learn)."""
    values = np.asarray(values, dtype=np.float64)
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", values, values))
        values = values / np.where(norms == 0, 1.0, norms)[:, None]
    return values


def _power_of_two_scale(*arrays) -> float:
    """A power of two that brings the largest magnitude into [0.5, 1): float32 then neither overflows nor
    loses the small values to underflow, and the scaling itself is exact."""
    largest = max(float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays)
    return 1.0 if largest == 0 else 2.0 ** -np.ceil(np.log2(largest) + 1e-12)


def _screening_points(points, metric, k, scale) -> tuple[np.ndarray, int]:
    """float32 [g * m, D + 1]: the scaled points and their squared norm (euclidean) or 0 (cosine), padded with
    rows that score PADDING_SCORE, and m: the points form m interleaved blocks of g (block j holds rows j,
    j + m, j + 2m, ...; every block holds a real point, and m >= 2k). The padding score is finite: BLAS
    kernels multiply zero-padded lanes of their own with it, and 0 * inf would raise an invalid-value flag."""
    n, d = points.shape
    block_size = max(1, min(64, n // (2 * k)))
    n_blocks = -(-n // block_size)
    out = np.zeros((block_size * n_blocks, d + 1), dtype=np.float32)
    scaled = points * scale
    out[:n, :d] = scaled
    if metric == "euclidean":
        out[:n, d] = np.einsum("ij,ij->i", scaled, scaled)
    out[n:, d] = PADDING_SCORE
    return out, n_blocks


def _screening_queries(queries, metric, scale) -> np.ndarray:
    """float32 [n, D + 1]: -2 q (euclidean) or -q (cosine), scaled as the points, then a 1 that adds the
    points' last column."""
    out = np.ones((len(queries), queries.shape[1] + 1), dtype=np.float32)
    out[:, :-1] = queries * (-2.0 * scale if metric == "euclidean" else -scale)
    return out


def _screening_error(queries, points, scale) -> np.ndarray:
    """Per query, a bound on |float32 score - exact score| over all points, in the screening scale.

    A product of D + 1 terms in any order errs by at most (D + 1) u times the sum of the terms' magnitudes
    (u = 2^-24), rounding the inputs to float32 adds about 3 u of it, and that sum is at most
    (|q| + |p|)^2 in the scaled space. The bound used is twice (D + 8) u (|q| + max |p|)^2, plus a floor for
    values that float32 holds only as subnormals."""
    query_norms = np.sqrt(np.einsum("ij,ij->i", queries, queries)) * scale
    largest_point = float(np.sqrt(np.einsum("ij,ij->i", points, points).max())) * scale
    terms = queries.shape[1] + 8
    return 2 * terms * _FLOAT32_UNIT * (query_norms + largest_point) ** 2 + 1e-36


def _candidates(scores, n_blocks, k, margin) -> tuple[np.ndarray, np.ndarray]:
    """(query, point) pairs whose float32 score is at most the query's k-th smallest score plus ``margin``:
    all points that can be among the k nearest. The k smallest block minima are the scores of k distinct
    points, so the largest of them bounds the k-th smallest score from above; only the blocks whose minimum
    is within that bound plus ``margin`` are searched."""
    n = len(scores)
    block_size = scores.shape[1] // n_blocks
    minima = np.minimum.reduce(scores.reshape(n, block_size, n_blocks), axis=1)
    bound = np.partition(minima, k - 1, axis=1)[:, k - 1] + margin
    query, block = np.nonzero(minima <= bound[:, None])
    point = block[:, None] + n_blocks * np.arange(block_size)
    keep = scores[query[:, None], point] <= bound[query][:, None]
    return np.broadcast_to(query[:, None], point.shape)[keep], point[keep]


def _ranked(queries, points, candidates, k, metric) -> np.ndarray:
    """Per query, its k candidates with the smallest float64 distance, ties to the lower point index."""
    query, point = candidates
    distance = np.empty(len(query))
    for start in range(0, len(query), EXACT_PAIRS):
        pairs = slice(start, start + EXACT_PAIRS)
        q, p = queries[query[pairs]], points[point[pairs]]
        distance[pairs] = np.square(q - p).sum(axis=1) if metric == "euclidean" else 1.0 - (q * p).sum(axis=1)
    order = np.lexsort((point, distance, query))
    counts = np.bincount(query, minlength=len(queries))
    first = np.cumsum(counts) - counts
    return point[order[first[:, None] + np.arange(k)]]


def _vote(neighbour_codes: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority vote over the last axis of integer class codes; a tie goes to the smallest code, as in
    scikit-learn's KNeighborsClassifier (uniform weights)."""
    *shape, k = neighbour_codes.shape
    flat = neighbour_codes.reshape(-1, k)
    counts = np.zeros(len(flat) * n_classes, dtype=np.min_scalar_type(k))
    offsets = np.arange(0, len(counts), n_classes)
    for column in flat.T:  # one clip's k codes sit in different columns, so no index repeats within a column
        counts[offsets + column] += 1
    return counts.reshape(-1, n_classes).argmax(axis=1).reshape(shape)


def _vote_table(n_classes: int, k: int) -> np.ndarray | None:
    """The vote of every k-tuple of class codes, indexed by the tuple read as a base-``n_classes`` number
    (first neighbour most significant); None when there are more than VOTE_TABLE_SIZE tuples."""
    if n_classes ** k > VOTE_TABLE_SIZE:
        return None
    tuples = np.stack(np.unravel_index(np.arange(n_classes ** k), (n_classes,) * k), axis=-1)
    return _vote(tuples, n_classes).astype(np.min_scalar_type(n_classes))


def _null_fold_accuracy(shuffled, nearest, test, n_classes) -> np.ndarray:
    """Per permutation (rows of ``shuffled``), the fraction of ``test`` clips whose neighbours' vote is right.

    The vote is looked up in :func:`_vote_table` (the same rule as :func:`_vote`, at the cost of one lookup
    per clip), and permutations run in chunks that keep the temporaries near VOTE_ELEMENTS entries."""
    k = nearest.shape[1]
    table = _vote_table(n_classes, k)
    chunk = max(1, VOTE_ELEMENTS // (nearest.size * (1 if table is not None else max(n_classes, 2))))
    correct = np.empty(len(shuffled), dtype=np.int64)
    for start in range(0, len(shuffled), chunk):
        labels = shuffled[start:start + chunk]
        if table is None:
            predicted = _vote(labels[:, nearest], n_classes)
        else:
            code = np.zeros((len(labels), len(nearest)), dtype=np.min_scalar_type(n_classes ** k - 1))
            for column in nearest.T:
                code *= n_classes
                code += labels[:, column]
            predicted = table[code]
        correct[start:start + chunk] = np.count_nonzero(predicted == labels[:, test], axis=1)
    return correct / len(test)


def _codes(labels) -> tuple[np.ndarray, int]:
    names, codes = np.unique(labels, return_inverse=True)
    return codes.reshape(-1), len(names)


def _score_folds(neighbours, labels: np.ndarray, folds) -> pd.DataFrame:
    from sklearn.metrics import balanced_accuracy_score

    codes, n_classes = _codes(labels)
    gaps = missing_in_training(folds, labels)
    rows = []
    for fold, ((train, test), nearest, gap) in enumerate(zip(folds, neighbours, gaps)):
        predicted = _vote(codes[nearest], n_classes)
        classes, counts = np.unique(codes[train], return_counts=True)
        guess = np.full(len(test), classes[np.argmax(counts)])
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            rows.append({"fold": fold, "accuracy": float(np.mean(predicted == codes[test])),
                         "balanced_accuracy": float(balanced_accuracy_score(codes[test], predicted)),
                         "majority_chance": float(np.mean(guess == codes[test])),
                         "majority_chance_balanced": float(balanced_accuracy_score(codes[test], guess)),
                         "n_train": len(train), "n_test": len(test),
                         "missing_in_training": ",".join(map(str, gap))})
    return pd.DataFrame(rows)


def _check_layers(features, factors, groups, folds):
    if not features:
        raise ValueError("no layers given: features must map at least one layer name to an array")
    if not factors:
        raise ValueError("no factors given: factors must map at least one factor name to labels")
    groups = _vector(groups, "groups")
    n = len(groups)
    arrays = {str(layer): _features(values, f"layer {layer!r}", per_fold=folds is not None)
              for layer, values in features.items()}
    n_folds = len(np.unique(folds)) if folds is not None else None
    for layer, x in arrays.items():
        if x.ndim == 3 and x.shape[0] != n_folds:
            raise ValueError(f"layer {layer!r} has features for {x.shape[0]} folds but folds has {n_folds}; "
                             "pass one matrix per fold")
    for name, length in [*((f"layer {layer!r}", a.shape[-2]) for layer, a in arrays.items()),
                         *((f"factor {factor!r}", len(np.asarray(y))) for factor, y in factors.items())]:
        if length != n:
            raise ValueError(f"{name} has {length} rows but groups has {n}; every layer and factor "
                             "needs one row per clip, in the same order")
    return arrays, {str(f): _vector(y, str(f)) for f, y in factors.items()}, groups


def _folds_for(folds, groups, labels, n_folds, seed, factor):
    if folds is None:
        return group_folds(groups, labels, n_folds, seed, factor=factor)
    if len(np.unique(labels)) < 2:
        raise ValueError(f"factor {factor!r} has a single class ({_plain(labels[0])!r}) across {len(labels)} "
                         "clips: there is nothing to decode; drop it or add clips of other classes")
    fold_list = folds_from_index(folds, groups)
    problems = _gap_messages(missing_in_training(fold_list, labels), labels, groups, factor)
    if problems:
        warnings.warn("; ".join(problems), FoldWarning, stacklevel=4)
    return fold_list


def _check_count(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be a whole number so the results can be reproduced, got {seed!r}")
    return int(seed)


def _accuracy_by_fold(table: pd.DataFrame, factor) -> pd.DataFrame:
    """Accuracy as folds x layers (layers in table order) for one factor; every layer needs every fold."""
    _require_columns(table, ["layer", "factor", "fold", "accuracy"], "a decoding table")
    part = table[table["factor"] == factor]
    if part.empty:
        raise ValueError(f"factor {factor!r} is not in the table; it has {list(dict.fromkeys(table['factor']))}")
    if part.duplicated(["layer", "fold"]).any():
        raise ValueError(f"factor {factor!r} has more than one row for some layer and fold")
    layers = list(dict.fromkeys(part["layer"]))
    accuracy = part.pivot(index="fold", columns="layer", values="accuracy")[layers]
    if accuracy.isna().any().any():
        raise ValueError(f"the layers of factor {factor!r} were not scored on the same folds; layer "
                         "comparisons need every layer on every fold (use decode_layers)")
    return accuracy


def _gap_messages(gaps, labels, groups, factor) -> list[str]:
    group_counts = pd.Series(groups).groupby(pd.Series([_plain(label) for label in labels])).nunique()
    short = sorted({label for gap in gaps for label in gap}, key=str)
    return [f"class {label!r} of {factor!r} is missing from training in "
            f"{sum(label in gap for gap in gaps)} fold(s): it has {group_counts[label]} source "
            "recording(s); add recordings of it or drop it" for label in short]


def _plain(value):
    """A numpy scalar as the Python value it holds, so messages read 2 and 'wood', not np.int64(2)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_folds_setting(n_folds, seed) -> None:
    if isinstance(n_folds, bool) or not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be a whole number >= 2, got {n_folds!r}")
    _check_seed(seed)


def _vector(values, name) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name!r} must be one value per clip (1-D), got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{name!r} is empty; decoding needs clips")
    return array


def _features(values, name, per_fold: bool = False) -> np.ndarray:
    x = np.asarray(values)
    if x.ndim != 2 and not (per_fold and x.ndim == 3):
        shapes = "[clips, dimensions] (or [folds, clips, dimensions] with folds given)" if per_fold else \
            "[clips, dimensions]"
        raise ValueError(f"{name} must be a 2-D array {shapes}, got shape {x.shape}; "
                         "pool or reshape it, e.g. values.reshape(len(values), -1)")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; fix or drop those clips first")
    return x


def _require_columns(table, columns, what) -> None:
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"expected {what} with columns {columns}; {missing} are missing "
                         f"(it has {list(table.columns)})")


