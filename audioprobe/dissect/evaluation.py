"""Evaluations of a dissection: last-layer accuracy (AND Tables 2 and 7), pruning by concept (Table 4),
ablation by part of speech (Figure 4) and caption-cluster interpretability (Figure 6)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from audioprobe.dissect.steps import HEAD, POS_COLUMNS, channel_masks, concept_text

log = logging.getLogger(__name__)


# --- last layer ----------------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return concept_text(str(name)).strip().lower()


def last_layer_accuracy(closed: pd.DataFrame, icl: pd.DataFrame, classes: list[str], concepts: list[str],
                        encoder) -> pd.DataFrame:
    """Per method and similarity function: top-1 and top-5 accuracy of the head neurons' concepts against
    their classes, and the mean sentence-embedding cosine of the top-1 concept and the class name.

    Output neurons whose class is not in the concept set cannot be named correctly: they are left out and
    counted in ``not_in_concepts``; neurons without a prediction (constant ones) are counted in ``skipped``."""
    known = {_key(c) for c in concepts}
    missing = [name for name in classes if _key(name) not in known]
    if missing:
        log.warning("classes missing from the concept set (their output neurons are left out): %s",
                    ", ".join(missing))
    head = closed[closed["layer"] == HEAD]
    rows = []
    for (method, function), group in head.groupby(["method", "function"], sort=True):
        predictions = [[_name(row[f"top{i}"]) for i in range(1, 6)] for _, row in group.iterrows()]
        rows.append(_accuracy_row(method, function, group["class"].tolist(), predictions, known, encoder))
    if len(icl):
        head_icl = icl[icl["layer"] == HEAD].sort_values("neuron")
        predictions = [[_name(concept)] for concept in head_icl["concept"]]
        rows.append(_accuracy_row("icl", "llm", [classes[n] for n in head_icl["neuron"]], predictions, known,
                                  encoder))
    return pd.DataFrame(rows)


def _name(value) -> str:
    return value if isinstance(value, str) else ""


def _accuracy_row(method, function, truths, predictions, known: set, encoder) -> dict:
    named = [(truth, top) for truth, top in zip(truths, predictions) if _key(truth) in known]
    kept = [(truth, top) for truth, top in named if top and top[0]]
    top1 = [_key(top[0]) == _key(truth) for truth, top in kept]
    top5 = [_key(truth) in {_key(p) for p in top[:5]} for truth, top in kept]
    if kept:
        first = encoder.encode([concept_text(top[0]) for _, top in kept])
        truth = encoder.encode([concept_text(t) for t, _ in kept])
        cosine = float(np.mean(np.sum(first * truth, axis=1)))
    else:
        cosine = float("nan")
    return {"method": method, "function": function, "neurons": len(kept), "skipped": len(named) - len(kept),
            "not_in_concepts": len(truths) - len(named),
            "top1_accuracy": float(np.mean(top1)) if kept else float("nan"),
            "top5_accuracy": float(np.mean(top5)) if kept and function != "llm" else float("nan"),
            "cosine": cosine}


def plot_last_layer(table: pd.DataFrame, path) -> None:
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    labels = [f"{m}\n{f}" for m, f in zip(table["method"], table["function"])]
    figure, axis = plt.subplots(figsize=(max(4, 0.9 * len(table)), 3.2))
    x = np.arange(len(table))
    axis.bar(x - 0.2, table["top1_accuracy"], 0.4, label="top-1")
    axis.bar(x + 0.2, table["top5_accuracy"].fillna(0), 0.4, label="top-5")
    axis.set_xticks(x, labels, fontsize=7)
    axis.set_ylim(0, 1)
    axis.set_ylabel("accuracy of output neurons")
    axis.legend(fontsize=7)
    axis.set_title("Last-layer dissection", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


# --- pruning by concept ---------------------------------------------------------------------------------------


def _words(text) -> set[str]:
    return set(re.findall(r"[a-z]+", str(text).lower())) if isinstance(text, str) else set()


def pruning_selections(classes, concepts, tops: dict, open_table: pd.DataFrame, layers, settings: dict) -> dict:
    """{(strategy, class): [(layer, neuron), ...]}: the neurons each strategy prunes to unlearn a class.

    db/tab: the class is among the neuron's top concepts; ocp: a calibrated noun of the neuron is a whole word
    of the class name (the original matched substrings, so "rain" pruned neurons for "train"); random: as many
    neurons as the concept strategies prune on average for that class, drawn with a seed."""
    pruning = settings["pruning"]
    keys = {_key(c): i for i, c in enumerate(concepts)}
    rng = np.random.default_rng(pruning["seed"])
    all_neurons = [(layer, n) for layer in layers for n in range(tops[f"{layer}/db/{pruning['db_function']}"].shape[0])]
    selections = {}
    for name in classes:
        index = keys.get(_key(name))
        chosen = {}
        for method, function in (("db", pruning["db_function"]), ("tab", pruning["tab_function"])):
            if method not in settings["methods"] or index is None:
                continue
            chosen[method] = [(layer, int(n)) for layer in layers
                              for n in np.flatnonzero((tops[f"{layer}/{method}/{function}"][:, :pruning["top"]]
                                                       == index).any(axis=1))]
        class_words = _words(concept_text(name))
        chosen["ocp"] = [(row["layer"], int(row["neuron"])) for _, row in open_table.iterrows()
                         if row["layer"] in layers and _words(row["nouns"]) & class_words]
        size = int(round(np.mean([len(v) for v in chosen.values()]))) if chosen else 0
        picks = rng.choice(len(all_neurons), size=min(size, len(all_neurons)), replace=False)
        chosen["random"] = [all_neurons[i] for i in sorted(picks)]
        for strategy, neurons in chosen.items():
            selections[(strategy, name)] = neurons
    return selections


def pruning_effects(network, selections: dict, units: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Change (after - before) of the true-class probability and logit on held-out clips of the target class
    (delta_target) and of the other classes (delta_rest), per strategy and class, and their means."""
    base = network.baseline
    names = np.asarray(network.head.classes)
    rows = []
    for (strategy, name), neurons in sorted(selections.items()):
        target = names[network.truth] == name
        if not target.any():
            continue
        after = network.outputs(channel_masks(neurons, units)) if neurons else base
        row = {"strategy": strategy, "class": name, "pruned": len(neurons)}
        for quantity in ("probability", "logit"):
            change = after[quantity] - base[quantity]
            row[f"delta_target_{quantity}"] = float(change[target].mean())
            row[f"delta_rest_{quantity}"] = float(change[~target].mean()) if (~target).any() else float("nan")
            row[f"difference_{quantity}"] = row[f"delta_target_{quantity}"] - row[f"delta_rest_{quantity}"]
        rows.append(row)
        log.info("pruned %d neurons for %s (%s): target %+.3f, rest %+.3f", len(neurons), name, strategy,
                 row["delta_target_probability"], row["delta_rest_probability"])
    per_class = pd.DataFrame(rows)
    summary = per_class.groupby("strategy", sort=True).agg(
        classes=("class", "count"), mean_pruned=("pruned", "mean"),
        **{column: (column, "mean") for column in per_class.columns if column.startswith(("delta", "difference"))}
    ).reset_index()
    return per_class, summary


def plot_pruning(summary: pd.DataFrame, path) -> None:
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    x = np.arange(len(summary))
    axis.bar(x - 0.2, summary["delta_target_probability"], 0.4, label="target class")
    axis.bar(x + 0.2, summary["delta_rest_probability"], 0.4, label="other classes")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_xticks(x, summary["strategy"])
    axis.set_ylabel("change in true-class probability")
    axis.legend(fontsize=7)
    axis.set_title("Pruning neurons by concept (held-out clips)", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


# --- ablation by part of speech -------------------------------------------------------------------------------


def pos_ablation(network, open_table: pd.DataFrame, units: dict, settings: dict) -> pd.DataFrame:
    """Prune the summarised neurons with the most words of each part of speech (or the longest summaries)
    and compare with random neurons of the same number, averaged over seeds."""
    neurons = list(zip(open_table["layer"], open_table["neuron"].astype(int)))
    count = int(np.ceil(settings["fraction"] * len(neurons)))
    base = network.baseline
    rows = []

    def effect(selected):
        after = network.outputs(channel_masks(selected, units))
        return (float(after["correct"].mean() - base["correct"].mean()),
                float((after["probability"] - base["probability"]).mean()))

    random_effects = []
    for seed in range(settings["seeds"]):
        picks = np.random.default_rng(seed).choice(len(neurons), size=count, replace=False)
        random_effects.append(effect([neurons[i] for i in sorted(picks)]))
    random_effects = np.asarray(random_effects)
    for category in (*[f"n_{pos}" for pos in POS_COLUMNS], "caption_len"):
        order = np.argsort(-open_table[category].to_numpy(), kind="stable")[:count]
        accuracy, probability = effect([neurons[i] for i in sorted(order)])
        rows.append({"category": category.removeprefix("n_"), "pruned": count, "delta_accuracy": accuracy,
                     "delta_true_probability": probability,
                     "random_delta_accuracy": float(random_effects[:, 0].mean()),
                     "random_delta_accuracy_sd": float(random_effects[:, 0].std()),
                     "random_delta_true_probability": float(random_effects[:, 1].mean())})
    log.info("part-of-speech ablation: %d of %d summarised neurons pruned per category", count, len(neurons))
    return pd.DataFrame(rows)


def plot_pos_ablation(table: pd.DataFrame, path) -> None:
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    figure, axis = plt.subplots(figsize=(4.5, 3.2))
    x = np.arange(len(table))
    axis.bar(x, 100 * table["delta_accuracy"], 0.6, label="most words of the kind")
    axis.errorbar(x, 100 * table["random_delta_accuracy"], yerr=100 * table["random_delta_accuracy_sd"], fmt="o",
                  color="black", markersize=3, label="random neurons")
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_xticks(x, table["category"], fontsize=7)
    axis.set_ylabel("change in held-out accuracy (points)")
    axis.legend(fontsize=7)
    axis.set_title("Pruning by part of speech of the summaries", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


# --- interpretability by caption clusters -----------------------------------------------------------------


def caption_clusters(captions: list[str], encoder, settings: dict) -> list[set[int]]:
    """For each caption, the K-means clusters (seeded) that its sentences fall in."""
    from sklearn.cluster import KMeans

    sentences, owner = [], []
    for index, caption in enumerate(captions):
        for sentence in re.split(r"(?<=[.!?])\s+", caption.strip()):
            if sentence:
                sentences.append(sentence)
                owner.append(index)
    unique = sorted(set(sentences))
    clusters = min(settings["clusters"], len(unique))
    fit = KMeans(n_clusters=clusters, n_init=10, random_state=settings["seed"]).fit(encoder.encode(unique))
    label_of = dict(zip(unique, fit.labels_))
    out = [set() for _ in captions]
    for sentence, index in zip(sentences, owner):
        out[index].add(int(label_of[sentence]))
    return out


def uninterpretable_share(top: np.ndarray, constant: np.ndarray, clip_clusters: list[set[int]],
                          min_shared: int) -> tuple[float, int]:
    """Share of non-constant neurons for which no caption cluster holds ``min_shared`` of their top clips."""
    uninterpretable = 0
    counted = 0
    for neuron, clips in enumerate(top):
        if constant[neuron]:
            continue
        counted += 1
        votes = {}
        for clip in clips:
            for cluster in clip_clusters[clip]:
                votes[cluster] = votes.get(cluster, 0) + 1
        if max(votes.values(), default=0) < min_shared:
            uninterpretable += 1
    return (uninterpretable / counted if counted else float("nan")), counted


def plot_interpretability(table: pd.DataFrame, path) -> None:
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    figure, axis = plt.subplots(figsize=(5.5, 3.2))
    for shared, group in table.groupby("min_shared"):
        axis.plot(group["layer"], group["uninterpretable_percent"], marker="o", label=f"fewer than {shared} of top clips")
    axis.set_ylabel("uninterpretable neurons (%)")
    axis.set_ylim(0, 100)
    axis.tick_params(axis="x", labelrotation=60, labelsize=7)
    axis.legend(fontsize=7, title="no cluster holds", title_fontsize=7)
    axis.set_title("Neurons whose top clips share no caption cluster", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)
