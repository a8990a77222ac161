"""Evaluations of a dissection: last-layer accuracy (AND Tables 2 and 7), pruning by concept (Table 4),
ablation by part of speech (Figure 4) and caption-cluster interpretability (Figure 6)."""

from __future__ import annotations

import logging
import re
import zlib

import numpy as np
import pandas as pd

from audioprobe.dissect.neurons import HEAD, channel_masks
from audioprobe.dissect.text import POS_COLUMNS, concept_text

log = logging.getLogger(__name__)


# --- last layer ----------------------------------------------------------------------------------------------


def _key(name: str) -> str:
    return concept_text(str(name)).strip().lower()


def last_layer_accuracy(closed: pd.DataFrame, icl: pd.DataFrame, classes: list[str], concepts: list[str],
                        encoder) -> pd.DataFrame:
    """Per method and similarity function: top-1 and top-5 accuracy of the head neurons' concepts against
    their classes, their chance levels, and the mean sentence-embedding cosine of the top-1 concept and the
    class name.

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
    table = pd.DataFrame(rows, columns=list(rows[0]) if rows else ["method", "function"])
    # Chance: a uniform guess names the class with probability k / M among M concepts (top-5 of 10 is 0.5).
    table["top1_chance"] = 1 / len(concepts)
    table["top5_chance"] = np.where(table["function"] == "llm", np.nan, min(5, len(concepts)) / len(concepts))
    return table


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


CONCEPT_STRATEGIES = ("db", "tab", "ocp")


def candidate_pool(open_table: pd.DataFrame, layers, units: dict | None = None) -> list[tuple[str, int]]:
    """The neurons every pruning strategy chooses from, sorted: the summarised neurons of the pruned layers,
    or, given ``units`` ({layer: neuron count}), every neuron of those layers.

    OCP can only prune a neuron that has a summary, so by default DB, TAB and the random baselines are
    restricted to the same neurons (the paper summarised every neuron; ``dissect.neurons.per_layer: all``
    does too)."""
    if units is not None:
        return [(layer, n) for layer in layers for n in range(units[layer])]
    rows = open_table[open_table["layer"].isin(list(layers))]
    return sorted({(str(layer), int(neuron)) for layer, neuron in zip(rows["layer"], rows["neuron"])})


def pruning_selections(classes, concepts, tops: dict, open_table: pd.DataFrame, layers, settings: dict) -> dict:
    """{(strategy, class): [draw, ...]}, each draw a sorted list of (layer, neuron): what each strategy prunes
    to unlearn a class.

    Every strategy chooses from the same pool (`candidate_pool`; ``pruning.pool``: the summarised neurons,
    or all neurons of the pruned layers, when OCP takes part only if every one of them is summarised).
    db/tab: the class is among the neuron's top concepts; ocp: a calibrated noun of the neuron is a whole
    word of the class name (the original matched substrings, so "rain" pruned neurons for "train"). These
    are one draw each. random_<strategy>: ``pruning.random_seeds`` draws, each of exactly as many pool
    neurons as <strategy> prunes for that class, drawn with a seed of its own (seed, draw, strategy, class);
    the original drew once."""
    pruning = settings["pruning"]
    pool = pruning_pool(open_table, layers, tops, pruning)
    with_ocp = set(pool) <= set(candidate_pool(open_table, layers))
    if not with_ocp:
        log.warning("pruning.pool is all but not every neuron of the pruned layers is summarised: OCP, which "
                    "needs a summary, is left out (set dissect.neurons.per_layer: all to include it)")
    keys = {_key(c): i for i, c in enumerate(concepts)}
    nouns = {(str(row["layer"]), int(row["neuron"])): _words(row["nouns"]) for _, row in open_table.iterrows()}
    selections = {}
    for name in classes:
        chosen = _concept_choices(name, keys.get(_key(name)), pool, tops, nouns, settings)
        if not with_ocp:
            del chosen["ocp"]
        for strategy, neurons in chosen.items():
            selections[(strategy, name)] = [neurons]
            selections[(f"random_{strategy}", name)] = [
                _random_choice(pool, len(neurons), pruning["seed"], draw, strategy, name)
                for draw in range(pruning["random_seeds"])]
    return selections


def pruning_pool(open_table, layers, tops: dict, pruning: dict) -> list[tuple[str, int]]:
    """``candidate_pool`` for ``pruning.pool``; the layers' sizes come from the closed-set top concepts."""
    if pruning["pool"] == "summarised":
        return candidate_pool(open_table, layers)
    return candidate_pool(open_table, layers, {layer: tops[f"{layer}/db/{pruning['db_function']}"].shape[0]
                                               for layer in layers})


def _concept_choices(name, index, pool, tops, nouns: dict, settings) -> dict:
    """db/tab/ocp choices for class ``name`` (concept ``index``) among ``pool``; ``nouns`` maps each summarised
    neuron to the words of its calibrated nouns."""
    pruning = settings["pruning"]
    chosen = {}
    for method, function in (("db", pruning["db_function"]), ("tab", pruning["tab_function"])):
        if method not in settings["methods"] or index is None:
            continue
        chosen[method] = [(layer, n) for layer, n in pool
                          if index in tops[f"{layer}/{method}/{function}"][n, :pruning["top"]]]
    class_words = _words(concept_text(name))
    chosen["ocp"] = [neuron for neuron in pool if nouns.get(neuron, set()) & class_words]
    return chosen


def _random_choice(pool, count: int, seed: int, draw: int, strategy: str, name: str) -> list:
    """``count`` pool neurons, sorted, drawn by a generator seeded with (seed, draw, strategy, class)."""
    entropy = [seed, draw, zlib.crc32(strategy.encode()), zlib.crc32(str(name).encode())]
    picks = np.random.default_rng(entropy).choice(len(pool), size=count, replace=False)
    return [pool[i] for i in sorted(picks)]


def strategy_order(strategy: str) -> tuple[int, int]:
    """db, random_db, tab, random_tab, ocp, random_ocp: each strategy beside its own random baseline."""
    base = strategy.removeprefix("random_")
    rank = CONCEPT_STRATEGIES.index(base) if base in CONCEPT_STRATEGIES else len(CONCEPT_STRATEGIES)
    return rank, int(strategy.startswith("random_"))


PRUNING_MEASURES = tuple(f"{kind}_{quantity}" for quantity in ("probability", "logit")
                         for kind in ("delta_target", "delta_rest", "difference"))


def sd(values) -> float:
    """Sample standard deviation (ddof = 1); NaN for fewer than two values (no spread to report)."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1)) if len(values) > 1 else float("nan")


def pruned_outputs(network, units: dict):
    """A function of a set of (layer, neuron) to the network's held-out outputs with those neurons switched
    off, each set computed once (strategies, draws and seeds often prune the same neurons)."""
    cache = {}

    def outputs(neurons):
        key = frozenset(neurons)
        if key not in cache:
            cache[key] = network.outputs(channel_masks(sorted(key), units)) if key else network.baseline
        return cache[key]

    return outputs


def pruning_effects(network, selections: dict, units: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Change (after - before) of the true-class probability and logit on held-out clips of the target class
    (delta_target) and of the other classes (delta_rest), per strategy and class, and their means over
    classes.

    A strategy with several draws (the random baselines) gets, per class, the mean over draws and its SD
    (``<measure>_sd``, ddof = 1); per strategy, each draw's mean over classes, then the mean and SD of these
    over draws. Strategies of one draw have no SD (NaN)."""
    base = network.baseline
    names = np.asarray(network.head.classes)
    outputs = pruned_outputs(network, units)
    rows, draws_of = [], {}
    for (strategy, name), draws in sorted(selections.items()):
        target = names[network.truth] == name
        if not target.any():
            continue
        values = {measure: [] for measure in PRUNING_MEASURES}
        for neurons in draws:
            after = outputs(neurons)
            for quantity in ("probability", "logit"):
                change = after[quantity] - base[quantity]
                on_target = float(change[target].mean())
                on_rest = float(change[~target].mean()) if (~target).any() else float("nan")
                values[f"delta_target_{quantity}"].append(on_target)
                values[f"delta_rest_{quantity}"].append(on_rest)
                values[f"difference_{quantity}"].append(on_target - on_rest)
        row = {"strategy": strategy, "class": name, "pruned": len(draws[0]), "draws": len(draws)}
        for measure, draw_values in values.items():
            row[measure] = float(np.mean(draw_values))
            row[f"{measure}_sd"] = sd(draw_values)
        rows.append(row)
        draws_of.setdefault(strategy, []).append(values)
        log.info("pruned %d neurons for %s (%s, %d draws): target %+.3f, rest %+.3f", len(draws[0]), name,
                 strategy, len(draws), row["delta_target_probability"], row["delta_rest_probability"])
    per_class = pd.DataFrame(rows)
    summary = []
    for strategy, group in per_class.groupby("strategy", sort=False):
        row = {"strategy": strategy, "classes": len(group), "mean_pruned": float(group["pruned"].mean()),
               "draws": int(group["draws"].iloc[0])}
        for measure in PRUNING_MEASURES:
            by_draw = np.mean([values[measure] for values in draws_of[strategy]], axis=0)  # mean over classes
            row[measure] = float(by_draw.mean())
            row[f"{measure}_sd"] = sd(by_draw)
        summary.append(row)
    summary = pd.DataFrame(summary)
    summary = summary.iloc[sorted(range(len(summary)), key=lambda i: strategy_order(summary["strategy"][i]))]
    return per_class, summary.reset_index(drop=True)


def pruning_figure(summary: pd.DataFrame):
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(max(4.5, 0.8 * len(summary)), 3.4))
    x = np.arange(len(summary))
    several = summary["draws"].to_numpy() > 1
    for offset, measure, label in ((-0.2, "delta_target_probability", "target class"),
                                   (0.2, "delta_rest_probability", "other classes")):
        axis.bar(x + offset, summary[measure], 0.4, label=label)
        if several.any():  # the random baselines: mean over draws and +- 1 SD over draws
            axis.errorbar(x[several] + offset, summary[measure][several], yerr=summary[f"{measure}_sd"][several],
                          fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
    axis.axhline(0, color="black", linewidth=0.6)
    axis.set_xticks(x, summary["strategy"].str.replace("random_", "random\n(", regex=False)
                    + np.where(summary["strategy"].str.startswith("random_"), ")", ""), fontsize=7)
    axis.set_ylabel("change in true-class probability")
    axis.legend(fontsize=7)
    title = "Pruning neurons by concept (held-out clips)"
    if several.any():
        title += f"\nrandom baselines: mean \u00b1 SD over {int(summary['draws'][several].max())} draws"
    if "pool_neurons" in summary:
        title += f"\ncandidates: {summary['pool_neurons'].iloc[0]} neurons ({summary['candidate_pool'].iloc[0]})"
    axis.set_title(title, fontsize=8)
    figure.tight_layout()
    return figure


def plot_pruning(summary: pd.DataFrame, path) -> None:
    from audioprobe.plots import save_figure

    save_figure(pruning_figure(summary), path)


# --- ablation by part of speech -------------------------------------------------------------------------------


POS_CATEGORIES = (*[f"n_{pos}" for pos in POS_COLUMNS], "caption_len")


def pos_ablation(network, open_table: pd.DataFrame, units: dict, settings: dict) -> pd.DataFrame:
    """Figure 4(a): for each fraction r, prune the r share (rounded up) of the summarised neurons with the most
    words of each part of speech (or the longest calibrated summaries), and as many random ones; held-out
    accuracy and true-class probability after pruning. Everything is averaged over ``seeds``: a seed draws
    the random neurons and breaks ties in the counts (many neurons share a count, often 0); ``accuracy_sd``
    is the SD over seeds (ddof = 1; NaN for one seed)."""
    neurons = list(zip(open_table["layer"], open_table["neuron"].astype(int)))
    base = network.baseline
    outputs = pruned_outputs(network, units)

    def effect(selected):
        after = outputs(selected)
        return float(after["correct"].mean()), float((after["probability"] - base["probability"]).mean())

    rows = []
    for fraction in settings["fractions"]:
        count = int(np.ceil(fraction * len(neurons) - 1e-9))
        for category in (*POS_CATEGORIES, "random"):
            results = np.asarray([effect(_ablated(open_table, neurons, category, count, seed))
                                  for seed in range(settings["seeds"])])
            rows.append({"fraction": fraction, "category": category.removeprefix("n_"), "pruned": count,
                         "seeds": len(results), "accuracy": results[:, 0].mean(), "accuracy_sd": sd(results[:, 0]),
                         "delta_accuracy": results[:, 0].mean() - float(base["correct"].mean()),
                         "delta_true_probability": results[:, 1].mean(),
                         "baseline_accuracy": float(base["correct"].mean())})
        log.info("part-of-speech ablation: %d of %d summarised neurons pruned per category (r = %g)", count,
                 len(neurons), fraction)
    return pd.DataFrame(rows)


def _ablated(open_table, neurons, category: str, count: int, seed: int) -> list:
    """The ``count`` neurons with the highest ``category`` (ties in random order), or random ones."""
    rng = np.random.default_rng([seed, zlib.crc32(category.encode())])
    tie_break = rng.permutation(len(neurons))
    if category == "random":
        order = tie_break
    else:
        order = np.lexsort((tie_break, -open_table[category].to_numpy(dtype=float)))
    return [neurons[i] for i in sorted(order[:count])]


def pos_ablation_figure(table: pd.DataFrame):
    """Accuracy per category over the ablated share; every line of several seeds gets +- 1 SD bars."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(4.8, 3.4))
    for category, group in table.groupby("category", sort=False):
        random = category == "random"
        spread = group["accuracy_sd"].notna().all()
        axis.errorbar(100 * group["fraction"], 100 * group["accuracy"],
                      yerr=100 * group["accuracy_sd"] if spread else None, capsize=2 if spread else 0,
                      marker="o", markersize=3, color="black" if random else None,
                      linestyle="--" if random else "-", label=category)
    axis.axhline(100 * table["baseline_accuracy"].iloc[0], color="grey", linewidth=0.6, label="no pruning")
    axis.set_xlabel("summarised neurons ablated (%)")
    axis.set_ylabel("held-out accuracy (%)")
    axis.legend(fontsize=7)
    seeds = f"mean \u00b1 SD over {int(table['seeds'].iloc[0])} seeds\n" if "seeds" in table else ""
    axis.set_title("Figure 4(a): ablating neurons with the most words of a part of speech\n"
                   f"{seeds}(panels b and c, adjective groups, not implemented)", fontsize=8)
    figure.tight_layout()
    return figure


def plot_pos_ablation(table: pd.DataFrame, path) -> None:
    from audioprobe.plots import save_figure

    save_figure(pos_ablation_figure(table), path)


# --- interpretability by caption clusters -----------------------------------------------------------------


def caption_sentences(captions: list[str]) -> tuple[list[str], list[int]]:
    """The captions' sentences without junk ones (the calibration's JUNK phrases, e.g. "Sure, here are ...",
    as the original clustering dropped them), and the index of the caption each came from."""
    from audioprobe.dissect.text import JUNK

    sentences, owner = [], []
    for index, caption in enumerate(captions):
        for sentence in re.split(r"(?<=[.!?])\s+", caption.strip()):
            if sentence and not JUNK.search(sentence):
                sentences.append(sentence)
                owner.append(index)
    return sentences, owner


def caption_clusters(captions: list[str], encoder, settings: dict) -> list[set[int]]:
    """For each caption, the K-means clusters (seeded) that its non-junk sentences fall in (none for a
    caption of junk only)."""
    from sklearn.cluster import KMeans

    sentences, owner = caption_sentences(captions)
    if not sentences:
        raise ValueError("every caption sentence is empty or junk: there is nothing to cluster; check captions.csv")
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
