"""Analysis of a listening test: join the answers to the trial list, recognition accuracy per model x layer,
paired comparisons of two architectures layer by layer, and confusion matrices.

Trials are counted as follows everywhere in this module:

- catch trials (clean natural clips added to check attention) are left out of the per-condition numbers
  and reported per participant by :func:`catch_accuracy`;
- swapped trials (a failed or missing metamer replaced by its natural clip) are left out of the
  per-condition numbers, because the sound heard was not a metamer; :func:`accuracy_table` says how many;
- unanswered trials (an empty answer, or a trial missing from a participant's file) count as wrong by
  default (``unanswered="incorrect"``), or are left out with ``unanswered="exclude"``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from audioprobe import stats
from audioprobe.io.atomic import read_csv
from audioprobe.metamers.listening import NATURAL, condition_label, normalise_word

RESPONSE_COLUMNS = ("participant", "trial", "stimulus", "answer", "response_time_ms", "played")
TRIAL_COLUMNS = ("participant", "trial", "stimulus", "clip_id", "word", "model", "layer", "catch", "swapped")
NO_ANSWER = "(no answer)"
Z95 = 1.959963984540054
UNANSWERED = ("incorrect", "exclude")


def read_responses(paths, trials_csv) -> pd.DataFrame:
    """The answers in one or more response CSVs (as downloaded from the test page) joined to trials.csv.

    One row per trial of every participant who has a response file, in (participant, trial) order, with
    the trial list's columns plus: answer (normalised: case-folded, whitespace collapsed), answer_raw,
    answered, correct, response_time_ms, played, responded (the trial has a row in a response file),
    condition (``natural`` or ``model/layer``, ordered as in conditions.json when it lies beside
    trials.csv) and file. A trial without an answer is kept with answered=False.

    Raises ValueError for response rows that do not fit the trial list: an unknown participant or
    stimulus, a trial number the participant does not have, a stimulus that is not the one of that trial,
    or a trial answered twice.
    """
    trials_csv = Path(trials_csv)
    trials = _read_trials(trials_csv)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no response files given")
    answers = pd.concat([_read_response_file(p) for p in paths], ignore_index=True)

    unknown_participants = sorted(set(answers["participant"]) - set(trials["participant"]))
    if unknown_participants:
        files = sorted(set(answers.loc[answers.participant.isin(unknown_participants), "file"]))
        raise ValueError(f"participant(s) {unknown_participants} in {files} are not in {trials_csv} "
                         f"(it has participants {sorted(set(trials['participant']))})")
    unknown_stimuli = sorted(set(answers["stimulus"]) - set(trials["stimulus"]))
    if unknown_stimuli:
        files = sorted(set(answers.loc[answers.stimulus.isin(unknown_stimuli), "file"]))
        raise ValueError(f"unknown stimulus id(s) {unknown_stimuli[:10]} in {files}: not in {trials_csv}; "
                         "are these answers from another package?")
    duplicated = answers.duplicated(["participant", "trial"], keep=False)
    if duplicated.any():
        row = answers[duplicated].iloc[0]
        raise ValueError(f"participant {row.participant} trial {row.trial} is answered more than once (in "
                         f"{sorted(set(answers.loc[duplicated, 'file']))}); keep one response file per participant")

    key = trials.set_index(["participant", "trial"])["stimulus"]
    for row in answers.itertuples():
        if (row.participant, row.trial) not in key.index:
            raise ValueError(f"{row.file}: participant {row.participant} has no trial {row.trial} in {trials_csv}")
        expected = key[(row.participant, row.trial)]
        if expected != row.stimulus:
            raise ValueError(f"{row.file}: participant {row.participant} trial {row.trial} was {expected} in "
                             f"{trials_csv}, but the response names {row.stimulus}; the files do not belong "
                             "together")

    taken = trials[trials["participant"].isin(set(answers["participant"]))]
    joined = taken.merge(answers.drop(columns=["stimulus"]), on=["participant", "trial"], how="left",
                         indicator=True, validate="one_to_one")
    joined["responded"] = joined.pop("_merge") == "both"
    joined["answer_raw"] = joined["answer"].fillna("")
    joined["answer"] = [normalise_word(a) for a in joined["answer_raw"]]
    joined["answered"] = joined["answer"] != ""
    joined["correct"] = joined["answered"] & (joined["answer"] == [normalise_word(w) for w in joined["word"]])
    joined["played"] = joined["played"].astype("boolean")
    joined["file"] = joined["file"].fillna("")
    order = _conditions_json_order(trials_csv.parent / "conditions.json")
    labels = [condition_label(m, l) for m, l in zip(joined["model"], joined["layer"])]
    joined["condition"] = pd.Categorical(labels, categories=_order_labels(order, labels))
    return joined.sort_values(["participant", "trial"], ignore_index=True)


def wilson_interval(correct, n, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default); (nan, nan) when n = 0."""
    if n == 0:
        return math.nan, math.nan
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def catch_accuracy(responses: pd.DataFrame, threshold: float = 0.75) -> pd.DataFrame:
    """Accuracy on catch trials per participant: participant, n, correct, accuracy, below_threshold (the
    participant's catch accuracy is under ``threshold``, a reason to check or exclude them)."""
    _check_responses(responses)
    records = []
    for participant, group in responses.groupby("participant", sort=True):
        catch = group[group["catch"]]
        n, correct = len(catch), int(catch["correct"].sum())
        accuracy = correct / n if n else math.nan
        records.append({"participant": participant, "n": n, "correct": correct, "accuracy": accuracy,
                        "unanswered": int((~catch["answered"]).sum()),
                        "below_threshold": bool(n and accuracy < threshold)})
    return pd.DataFrame.from_records(records, columns=["participant", "n", "correct", "accuracy", "unanswered",
                                                      "below_threshold"])


def accuracy_table(responses: pd.DataFrame, *, unanswered: str = "incorrect", catch_threshold: float = 0.75,
                   exclude_below_threshold: bool = False) -> pd.DataFrame:
    """Recognition accuracy per model x layer, catch trials and swapped trials left out.

    Columns: condition, model, layer, n (trials counted), correct, accuracy, ci_low, ci_high (Wilson 95%,
    over trials, so it ignores that trials are grouped by participant), participants, unanswered,
    swapped (trials of this condition left out because a natural clip stood in).

    The catch-trial table per participant (:func:`catch_accuracy` with ``catch_threshold``) is attached as
    ``table.attrs["catch"]``. With ``exclude_below_threshold`` the participants it flags are left out.
    """
    _check_responses(responses)
    if unanswered not in UNANSWERED:
        raise ValueError(f"unanswered must be one of {UNANSWERED}, got {unanswered!r}")
    catch = catch_accuracy(responses, catch_threshold)
    if exclude_below_threshold:
        flagged = set(catch.loc[catch["below_threshold"], "participant"])
        responses = responses[~responses["participant"].isin(flagged)]
    records = []
    for model, layer in condition_order(responses):
        chosen = responses[~responses["catch"] & (responses["model"] == model) & (responses["layer"] == layer)]
        swapped = int(chosen["swapped"].sum())
        chosen = chosen[~chosen["swapped"]]
        if unanswered == "exclude":
            counted = chosen[chosen["answered"]]
        else:
            counted = chosen
        n, correct = len(counted), int(counted["correct"].sum())
        low, high = wilson_interval(correct, n)
        records.append({"condition": condition_label(model, layer), "model": model, "layer": layer, "n": n,
                        "correct": correct, "accuracy": correct / n if n else math.nan, "ci_low": low,
                        "ci_high": high, "participants": int(counted["participant"].nunique()),
                        "unanswered": int((~chosen["answered"]).sum()), "swapped": swapped})
    table = pd.DataFrame.from_records(records)
    table.attrs["catch"] = catch
    return table


def participant_accuracy(responses: pd.DataFrame, *, unanswered: str = "incorrect") -> pd.DataFrame:
    """Each participant's accuracy per condition (catch and swapped trials left out): participant,
    condition, model, layer, n, correct, accuracy."""
    _check_responses(responses)
    if unanswered not in UNANSWERED:
        raise ValueError(f"unanswered must be one of {UNANSWERED}, got {unanswered!r}")
    counted = responses[~responses["catch"] & ~responses["swapped"]]
    if unanswered == "exclude":
        counted = counted[counted["answered"]]
    table = (counted.groupby(["participant", "model", "layer"], sort=True)["correct"]
             .agg(n="size", correct="sum").reset_index())
    table["correct"] = table["correct"].astype(int)
    table["accuracy"] = table["correct"] / table["n"]
    table.insert(1, "condition", [condition_label(m, l) for m, l in zip(table["model"], table["layer"])])
    return table


def compare_architectures(responses: pd.DataFrame, model_a: str, model_b: str, *, layers=None,
                          unanswered: str = "incorrect") -> pd.DataFrame:
    """Per layer, model_a's metamers against model_b's, paired across participants (Table 1).

    For each layer, every participant who heard both models' metamers at that layer gives one pair: their
    accuracy on model_a's and on model_b's. The pairs go to :func:`audioprobe.stats.compare_pairs` (paired
    t-test and Wilcoxon), with Bonferroni and Holm corrections across the layers.

    ``layers`` defaults to the layers both models have, in condition order; give a list of names, or of
    (layer_a, layer_b) pairs when the two architectures name their layers differently.

    Returns one row per layer: layer, layer_a, layer_b, model_a, model_b, then the columns of
    :func:`audioprobe.stats.compare_pairs` (n is the number of participants).
    """
    per_participant = participant_accuracy(responses, unanswered=unanswered)
    order = condition_order(responses)
    layers_of = {m: [l for model, l in order if model == m] for m in (model_a, model_b)}
    for model in (model_a, model_b):
        if model == NATURAL:
            layers_of[model] = [NATURAL]
        elif not layers_of[model]:
            models = sorted({m for m, _ in order if m != NATURAL})
            raise ValueError(f"no trials of model {model!r} in the responses (models: {models})")
    if layers is None:
        pairs = [(l, l) for l in layers_of[model_a] if l in layers_of[model_b]]
        if not pairs:
            raise ValueError(f"{model_a} (layers {layers_of[model_a]}) and {model_b} (layers "
                             f"{layers_of[model_b]}) share no layer name; pass layers=[(layer_a, layer_b), ...]")
    else:
        pairs = [(l, l) if isinstance(l, str) else tuple(l) for l in layers]
        for layer_a, layer_b in pairs:
            for model, layer in ((model_a, layer_a), (model_b, layer_b)):
                if layer not in layers_of[model]:
                    raise ValueError(f"model {model!r} has no layer {layer!r} (it has {layers_of[model]})")
    accuracy = per_participant.set_index(["model", "layer", "participant"])["accuracy"].sort_index()
    rows, meta, untested = [], [], []
    for layer_a, layer_b in pairs:
        info = {"layer": layer_a if layer_a == layer_b else f"{layer_a} | {layer_b}", "layer_a": layer_a,
                "layer_b": layer_b, "model_a": model_a, "model_b": model_b}
        a, b = _per_participant(accuracy, model_a, layer_a), _per_participant(accuracy, model_b, layer_b)
        both = a.index.intersection(b.index)
        if len(both) < 2:  # recorded, not fatal: too few participants heard both (e.g. failed metamers swapped out)
            untested.append({**info, "n": len(both), "note": f"not tested: {len(both)} participant(s) heard both "
                                                              "conditions; a paired comparison needs at least 2"})
            continue
        rows.append((condition_label(model_a, layer_a), a[both].to_numpy(), condition_label(model_b, layer_b),
                     b[both].to_numpy()))
        meta.append(info)
    parts = [pd.concat([pd.DataFrame.from_records(meta), stats.compare_pairs(rows)], axis=1)] if rows else []
    if untested:
        parts.append(pd.DataFrame.from_records(untested).assign(p_t=np.nan, p_wilcoxon=np.nan))
    table = pd.concat(parts, ignore_index=True)
    # corrections across the layers actually tested (an untested layer's NaN p-value does not count)
    table = stats.add_corrections(table.drop(columns=[c for c in table if c.endswith(("_bonferroni", "_holm"))]))
    order = {layer_a: i for i, (layer_a, _) in enumerate(pairs)}
    return table.sort_values("layer_a", key=lambda c: c.map(order)).reset_index(drop=True)


def _per_participant(accuracy: pd.Series, model: str, layer: str) -> pd.Series:
    try:
        return accuracy.loc[(model, layer)]
    except KeyError:  # every trial of that condition was swapped out or unanswered
        return pd.Series(dtype=float)


def confusion_matrices(responses: pd.DataFrame, path, *, max_labels: int = 40) -> dict[str, pd.DataFrame]:
    """One confusion matrix (true word x answered word) per condition, drawn as a grid of panels and saved
    to ``path`` (PNG or SVG, by extension) with :func:`audioprobe.plots.save_figure`.

    Catch and swapped trials are left out. Rows are the true words; columns are the same words, then any
    other answer, then "(no answer)". Panels show each row as proportions (rows sum to 1); word labels are
    drawn when there are at most ``max_labels`` of them. Returns the count matrices by condition label.
    """
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    _check_responses(responses)
    counted = responses[~responses["catch"] & ~responses["swapped"]].copy()
    if counted.empty:
        raise ValueError("no trials to count: every trial is a catch or swapped trial")
    counted["true"] = [normalise_word(w) for w in counted["word"]]
    counted["given"] = counted["answer"].where(counted["answered"], NO_ANSWER)
    truth = sorted(set(counted["true"]))
    others = sorted(set(counted["given"]) - set(truth) - {NO_ANSWER})
    columns = truth + others + [NO_ANSWER]
    matrices = {}
    for model, layer in condition_order(counted):
        chosen = counted[(counted["model"] == model) & (counted["layer"] == layer)]
        matrix = pd.crosstab(pd.Categorical(chosen["true"], categories=truth),
                             pd.Categorical(chosen["given"], categories=columns), dropna=False)
        matrix.index.name, matrix.columns.name = "word", "answer"
        matrices[condition_label(model, layer)] = matrix.astype(int)

    n = len(matrices)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    labelled = len(columns) <= max_labels
    panel = 1.6 + 0.11 * len(columns)
    margin = (0.45 + 0.06 * max(map(len, columns))) if labelled else 0.4
    width, height = panel * ncols + margin + 1.3, (panel + 0.45) * nrows + margin + 0.5
    figure, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, sharex=True, sharey=True)
    # a fixed layout: constrained layout measures every tick label and is slow with many words
    figure.subplots_adjust(left=margin / width, right=1 - 1.3 / width, bottom=margin / height,
                           top=1 - 0.5 / height, wspace=0.08, hspace=0.45 * nrows / (panel + 0.45) + 0.05)
    image = None
    for index, (axis, (label, matrix)) in enumerate(zip(axes.flat, matrices.items())):
        counts = matrix.to_numpy(dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        proportions = np.divide(counts, totals, out=np.full_like(counts, np.nan), where=totals > 0)
        image = axis.imshow(proportions, vmin=0, vmax=1, cmap="viridis", aspect="auto", interpolation="nearest")
        correct = int(np.trace(counts[:, :len(truth)]))
        axis.set_title(f"{label}: {correct}/{int(counts.sum())} correct", fontsize=8)
        row, column = divmod(index, ncols)
        axis.tick_params(labelbottom=labelled and (row == nrows - 1 or index + ncols >= n),
                         labelleft=labelled and column == 0, labelsize=7)
        axis.tick_params(axis="x", labelrotation=90)
    if labelled:
        axes[0, 0].set_xticks(range(len(columns)), columns)
        axes[0, 0].set_yticks(range(len(truth)), truth)
    else:
        axes[0, 0].set_xticks([])
        axes[0, 0].set_yticks([])
    for axis in list(axes.flat)[n:]:
        axis.set_visible(False)
    figure.supxlabel("answer", fontsize=9)
    figure.supylabel("word", fontsize=9)
    colorbar_axis = figure.add_axes([1 - 1.0 / width, margin / height, 0.15 / width, 1 - (margin + 0.5) / height])
    figure.colorbar(image, cax=colorbar_axis, label="proportion of the word's trials")
    figure.suptitle("Confusions per condition (catch and swapped trials left out)", fontsize=10)
    save_figure(figure, path)
    return matrices


def condition_order(responses: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, layer) pairs present in ``responses``: natural first, then in the order of the
    ``condition`` column's categories (conditions.json), else by model and then layer, numbers in names
    compared as numbers (conv2 before conv10)."""
    present = list(dict.fromkeys(zip(responses["model"], responses["layer"])))
    if isinstance(responses.get("condition", None), pd.Series) and \
            isinstance(responses["condition"].dtype, pd.CategoricalDtype):
        rank = {c: i for i, c in enumerate(responses["condition"].cat.categories)}
        return sorted(present, key=lambda p: (p != (NATURAL, NATURAL), rank.get(condition_label(*p), len(rank)),
                                              _natural_key(p[0]), _natural_key(p[1])))
    return sorted(present, key=lambda p: (p != (NATURAL, NATURAL), _natural_key(p[0]), _natural_key(p[1])))


def _read_trials(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"trial list not found: {path}")
    trials = read_csv(path)
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    if missing:
        raise ValueError(f"{path} is not a trial list: missing column(s) {missing}")
    for column in ("catch", "swapped"):
        trials[column] = trials[column].map(lambda v: str(v).strip().lower() in ("true", "1"))
    for column in ("stimulus", "clip_id", "word", "model", "layer"):
        trials[column] = trials[column].astype(str)
    if "swap_reason" in trials.columns:
        trials["swap_reason"] = trials["swap_reason"].astype(object).fillna("")
    return trials


def _read_response_file(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"response file not found: {path}")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in RESPONSE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path} is not a response file: missing column(s) {missing} (it has "
                         f"{list(frame.columns)})")
    frame = frame[list(RESPONSE_COLUMNS)].copy()
    for column in ("participant", "trial"):
        bad = ~frame[column].str.strip().str.fullmatch(r"\d+")
        if bad.any():
            raise ValueError(f"{path}: {column} must be a whole number, got {frame.loc[bad, column].iloc[0]!r} "
                             f"on line {int(np.flatnonzero(bad)[0]) + 2}")
        frame[column] = frame[column].astype(int)
    frame["stimulus"] = frame["stimulus"].str.strip()
    frame["response_time_ms"] = pd.to_numeric(frame["response_time_ms"].replace("", np.nan), errors="coerce")
    played = frame["played"].str.strip().str.lower()
    frame["played"] = played.map({"true": True, "1": True, "false": False, "0": False, "": None})
    frame["file"] = str(path)
    return frame


def _conditions_json_order(path: Path) -> list[str]:
    if not path.is_file():
        return []
    with open(path) as handle:
        summary = json.load(handle)
    return [c["label"] for c in summary.get("conditions", [])]


def _order_labels(order: list[str], labels) -> list[str]:
    present = list(dict.fromkeys(labels))
    known = [label for label in order if label in present]
    rest = sorted((label for label in present if label not in known),
                  key=lambda label: (label != NATURAL, _natural_key(label)))
    return known + rest


def _natural_key(text: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", str(text)) if part]


def _check_responses(responses) -> None:
    if not isinstance(responses, pd.DataFrame):
        raise TypeError(f"responses must be the DataFrame from read_responses, got {type(responses).__name__}")
    needed = ("participant", "word", "model", "layer", "catch", "swapped", "answer", "answered", "correct")
    missing = [c for c in needed if c not in responses.columns]
    if missing:
        raise ValueError(f"responses lacks column(s) {missing}: make it with read_responses")
