"""The steps of the comparison branch as the workflow runs them: each reads pooled layer files (one vector per
clip), calls a measure of ``audioprobe.compare``, and writes a table or a figure with its settings."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from audioprobe.io.atomic import read_csv, write_csv

log = logging.getLogger(__name__)


# --- reading ----------------------------------------------------------------------------------------------

def read_layers(paths: Mapping[str, str]) -> tuple[dict[str, np.ndarray], list[str], dict[str, list[str]]]:
    """{layer: [clips, values] float64} from pooled layer files, their clip ids (the same in every file, or a
    ValueError naming the files that differ) and the first file's labels."""
    from audioprobe.latent.steps import layer_matrix

    layers, clip_ids, labels, first = {}, None, None, None
    for layer, path in paths.items():
        data, ids, file_labels, _ = layer_matrix(path)
        if clip_ids is None:
            clip_ids, labels, first = ids, file_labels, path
        else:
            check_same_clips(ids, clip_ids, path, first)
        layers[layer] = data.astype(np.float64)
    return layers, clip_ids, labels


def check_same_clips(ids, reference, path, reference_path) -> None:
    if list(ids) != list(reference):
        differing = next((i for i, (a, b) in enumerate(zip(ids, reference)) if a != b), min(len(ids), len(reference)))
        raise ValueError(f"{path} and {reference_path} do not hold the same clips in the same order ({len(ids)} "
                         f"and {len(reference)} clips, first difference at row {differing}): compare models "
                         "only on activations extracted from the same manifest; rerun the older extraction")


def clip_subset(n_clips: int, max_clips: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of at most ``max_clips`` clips drawn without replacement (all clips for None)."""
    if max_clips is None or max_clips >= n_clips:
        return np.arange(n_clips)
    return np.sort(np.random.default_rng(seed).choice(n_clips, size=max_clips, replace=False))


# --- CKA between two models -------------------------------------------------------------------------------

def cka_pair(files_a: Mapping[str, str], files_b: Mapping[str, str], models: tuple[str, str], settings: dict,
             out_table, out_figure) -> pd.DataFrame:
    """Linear CKA of every layer of model A with every layer of model B on the same clips: a long table
    (model_a, layer_a, model_b, layer_b, cka) and a heatmap."""
    from audioprobe.compare.cka import cka_matrix

    layers_a, ids_a, _ = read_layers(files_a)
    layers_b, ids_b, _ = read_layers(files_b)
    check_same_clips(ids_b, ids_a, next(iter(files_b.values())), next(iter(files_a.values())))
    rows = clip_subset(len(ids_a), settings["max_clips"], settings["seed"])
    log.info("CKA (%s) of %d x %d layers on %d clips", "unbiased" if settings["unbiased"] else "biased",
             len(layers_a), len(layers_b), len(rows))
    matrix = cka_matrix({k: v[rows] for k, v in layers_a.items()}, {k: v[rows] for k, v in layers_b.items()},
                        unbiased=settings["unbiased"])
    table = matrix.stack().rename("cka").reset_index()
    table.insert(0, "model_a", models[0])
    table.insert(2, "model_b", models[1])
    table["clips"] = len(rows)
    write_csv(out_table, table, config={"models": list(models), **settings})
    plot_cka(matrix, models, settings["unbiased"], out_figure)
    return table


def plot_cka(matrix: pd.DataFrame, models: tuple[str, str], unbiased: bool, path) -> None:
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    size = (2.0 + 0.45 * matrix.shape[1], 1.6 + 0.4 * matrix.shape[0])
    figure, axis = plt.subplots(figsize=size, layout="constrained")
    image = axis.imshow(matrix.to_numpy(), vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    axis.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=90)
    axis.set_yticks(range(matrix.shape[0]), matrix.index)
    axis.set_xlabel(models[1])
    axis.set_ylabel(models[0])
    axis.set_title(f"linear CKA{' (unbiased)' if unbiased else ''}")
    figure.colorbar(image, ax=axis)
    save_figure(figure, path)


# --- RSA with the categorical RDMs of the labels ----------------------------------------------------------

def read_groups(manifest_path, clip_ids: list[str]) -> np.ndarray:
    """The recording group of each clip, in the order of ``clip_ids``."""
    from audioprobe.datasets.manifest import read_manifest

    groups = read_manifest(manifest_path).set_index("clip_id")["group"]
    missing = [c for c in clip_ids if c not in groups.index]
    if missing:
        raise ValueError(f"clips {missing[:5]} of the layer files are not in {manifest_path}: the activations are "
                         "older than the manifest; rerun their extraction")
    return groups.loc[clip_ids].to_numpy()


def chosen_labels(labels: dict[str, list[str]], names: list[str], path) -> dict[str, np.ndarray]:
    missing = [n for n in names if n not in labels]
    if missing:
        raise ValueError(f"compare.label_rsa.labels names {missing}, which {path} does not carry (its labels: "
                         f"{sorted(labels)}): name labels of the dataset's manifest")
    return {n: np.asarray(labels[n], dtype=object) for n in names}


def label_rsa(files: Mapping[str, str], manifest_path, model: str, depth: Mapping[str, float], settings: dict,
              out_table) -> pd.DataFrame:
    """Each layer's RDM compared with each label's categorical RDM (0 within a class, 1 across) by each
    method, with a bootstrap interval over recordings (``unit: group``) or clips (``unit: clip``)."""
    from audioprobe.compare.rsa import label_rdm

    layers, clip_ids, stored_labels = read_layers(files)
    rows = clip_subset(len(clip_ids), settings["max_clips"], settings["seed"])
    labels = chosen_labels(stored_labels, settings["labels"], next(iter(files.values())))
    groups = read_groups(manifest_path, clip_ids)[rows] if settings["unit"] == "group" else None
    targets = {name: label_rdm(values[rows]) for name, values in labels.items()}
    records = []
    for layer, data in layers.items():
        log.info("%s %s: RDM of %d clips against %s", model, layer, len(rows), ", ".join(targets))
        for label, target in targets.items():
            for method in settings["methods"]:
                result = _layer_ci(data[rows], target, method, settings, groups, f"{model} {layer}")
                records.append({"model": model, "layer": layer, "depth": depth[layer], "label": label,
                                "method": method, "score": result.estimate, "ci_low": result.low,
                                "ci_high": result.high, "clips": len(rows),
                                "groups": len(set(groups)) if groups is not None else len(rows)})
    table = pd.DataFrame.from_records(records)
    write_csv(out_table, table, config={"model": model, **settings})
    return table


def _layer_ci(features, target, method, settings, groups, what):
    from audioprobe.compare.rsa import bootstrap_ci

    try:
        return bootstrap_ci(features, target, method, n_bootstrap=settings["bootstrap"], seed=settings["seed"],
                            ci=settings["ci"], rdm_method=settings["rdm"], groups=groups)
    except ValueError as error:
        raise ValueError(f"{what}: {error}") from error


def layer_profiles(tables: Mapping[str, str], out_figure) -> pd.DataFrame:
    """Score against relative depth, one line per model with its interval, one panel per label and method
    (as Tuckute et al. 2023's layer profiles)."""
    import matplotlib.pyplot as plt

    from audioprobe.plots import save_figure

    frame = pd.concat([read_csv(path) for path in tables.values()], ignore_index=True)
    panels = frame[["method", "label"]].drop_duplicates().to_records(index=False).tolist()
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False,
                                layout="constrained")
    for axis, (method, label) in zip(axes[0], panels):
        for model in tables:
            rows = frame[(frame.model == model) & (frame.method == method) & (frame.label == label)]
            rows = rows.sort_values("depth")
            line, = axis.plot(rows.depth, rows.score, marker="o", label=model)
            axis.fill_between(rows.depth, rows.ci_low, rows.ci_high, color=line.get_color(), alpha=0.2)
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xlabel("relative depth (layer index / last index)")
        axis.set_ylabel(f"RSA with {label} ({method})")
        axis.set_title(label)
        axis.legend(fontsize="small")
    save_figure(figure, out_figure)
    return frame
