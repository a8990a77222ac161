"""People's confusions in the listening test against a network's on the same metamers (issue 15, measure 4).

For each condition (a generating network and layer, or the natural sounds) people's answers and a network's
answers to the same clips become confusion matrices over the words (row: the true word, column: the answer;
an answer outside the words, or none, counts in its row's total only), and each matrix an RDM between words:
with P the row proportions, the dissimilarity of words i and j is 1 - (P_ij + P_ji) / 2 (words often taken
for each other are similar; Shepard 1957). The two RDMs are compared with rsatoolbox (Spearman by default).
Beside it: both accuracies and the agreement, the fraction of trials where the person gave the network's
answer to that clip."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audioprobe.io.atomic import read_csv, write_csv
from audioprobe.metamers.listening import normalise_word

MIN_WORDS = 3  # an RDM needs three words for a correlation between its pairs


def confusion_counts(true_words, answers, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(counts [word, word], trials per true word) from one answer per trial."""
    index = {word: i for i, word in enumerate(words)}
    counts = np.zeros((len(words), len(words)))
    totals = np.zeros(len(words))
    for truth, answer in zip(true_words, answers):
        totals[index[truth]] += 1
        if answer in index:
            counts[index[truth], index[answer]] += 1
    return counts, totals


def confusion_rdm(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Condensed RDM between the words (upper triangle, row by row): 1 - the symmetrised row proportions.
    A word without trials has no row: its pairs are NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        proportions = counts / totals[:, None]
    similarity = (proportions + proportions.T) / 2
    upper = np.triu_indices(len(counts), k=1)
    return 1.0 - similarity[upper]


def compare_confusions(human: np.ndarray, network: np.ndarray, method: str) -> tuple[float, str]:
    """rsatoolbox's comparison of two confusion RDMs over the word pairs both have, or NaN and why not."""
    from audioprobe.compare.rsa import compare_rdms_with_gaps

    both = np.isfinite(human) & np.isfinite(network)
    if both.sum() < MIN_WORDS:
        return np.nan, "fewer than 3 word pairs heard"
    if np.ptp(human[both]) == 0:
        return np.nan, "people's answers confuse no words differently (e.g. all correct)"
    if np.ptp(network[both]) == 0:
        return np.nan, "the network's answers confuse no words differently (e.g. all correct)"
    human, network = np.where(both, human, np.nan), np.where(both, network, np.nan)
    return float(compare_rdms_with_gaps(network, human, method)[0]), ""


def heard_trials(responses: pd.DataFrame) -> pd.DataFrame:
    """The trials that count: answered or not, but not catch trials, nor natural clips swapped in for a metamer
    that failed validation."""
    heard = responses[responses["responded"] & ~responses["catch"] & ~responses["swapped"]].copy()
    heard["true"] = [normalise_word(w) for w in heard["word"]]
    heard["given"] = heard["answer"].where(heard["answered"], "")
    return heard


def behaviour_table(responses: pd.DataFrame, answers: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """One row per condition x evaluating network (see the module docstring)."""
    heard = heard_trials(responses)
    words = sorted(set(heard["true"]) | set(answers["word"]))
    by_clip = answers.set_index(["evaluator", "model", "layer", "clip_id"])["answer"]
    records = []
    for (model, layer), trials in heard.groupby(["model", "layer"], sort=False):
        human = confusion_rdm(*confusion_counts(trials["true"], trials["given"], words))
        clips = trials.drop_duplicates("clip_id")
        for evaluator in sorted(set(answers["evaluator"])):
            given = [by_clip.get((evaluator, model, layer, clip), "") for clip in clips["clip_id"]]
            network = confusion_rdm(*confusion_counts(clips["true"], given, words))
            score, note = compare_confusions(human, network, method)
            said = [by_clip.get((evaluator, model, layer, clip), "") for clip in trials["clip_id"]]
            records.append({"model": model, "layer": layer, "evaluator": evaluator, "method": method,
                            "rsa": score, "note": note, "trials": len(trials), "clips": len(clips),
                            "human_accuracy": float(np.mean(trials["given"] == trials["true"])),
                            "network_accuracy": float(np.mean(np.asarray(given) == clips["true"].to_numpy())),
                            "agreement": float(np.mean(np.asarray(said) == trials["given"].to_numpy()))})
    return pd.DataFrame.from_records(records)


def behaviour_step(package_dir, response_paths: list, answers_csv, settings: dict, out_csv) -> pd.DataFrame:
    from pathlib import Path

    from audioprobe.metamers.analysis import read_responses

    responses = read_responses(response_paths, Path(package_dir) / "trials.csv")
    table = behaviour_table(responses, read_csv(answers_csv), settings["method"])
    write_csv(out_csv, table, config={**settings, "responses": [str(p) for p in response_paths]})
    return table
