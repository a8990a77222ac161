"""The steps of Study 1 as the workflow runs them: each reads files, calls the analysis, writes files."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from audioprobe.io.atomic import read_csv, write_csv, write_json
from audioprobe.io.store import LayerFile, write_arrays
from audioprobe.latent.projection import Projection
from audioprobe.latent.split import class_codes, split_groups, split_masks

log = logging.getLogger(__name__)


def layer_matrix(path) -> tuple[np.ndarray, list[str], dict[str, list[str]], tuple[int, ...]]:
    """A layer file as [clips, values] plus clip ids, labels and the per-clip shape."""
    with LayerFile(path) as layer:
        data = layer.activations[()]
        return data.reshape(data.shape[0], -1), layer.clip_ids, layer.labels, tuple(data.shape[1:])


def make_split(manifest_path, out_path, factors, settings: dict) -> pd.DataFrame:
    from audioprobe.datasets.manifest import read_manifest

    split = split_groups(read_manifest(manifest_path), factors, val_fraction=settings["val_fraction"],
                         test_fraction=settings["test_fraction"], seed=settings["seed"])
    counts = split.groupby("split")["group"].nunique().to_dict()
    log.info("recording groups per split: %s", counts)
    write_csv(out_path, split, config={"factors": factors, **settings})
    return split


def project_layer(layer_path, split_path, out_path, *, components: int, seed: int, chunk: int = 256) -> None:
    """Fit the projection on the training clips and project every clip, reading the layer in chunks."""
    with LayerFile(layer_path) as layer:
        data = layer.activations
        clip_ids, labels, shape = layer.clip_ids, layer.labels, tuple(data.shape[1:])
        train = np.flatnonzero(split_masks(split_path, clip_ids)["train"])
        x_train = np.concatenate([data[i:i + chunk].reshape(-1, int(np.prod(shape)))[
            train[(train >= i) & (train < i + chunk)] - i] for i in range(0, data.shape[0], chunk)])
        projection = Projection.fit(x_train, components, seed=seed)
        del x_train
        z = np.concatenate([projection.transform(data[i:i + chunk].reshape(-1, int(np.prod(shape))))
                            for i in range(0, data.shape[0], chunk)])
    log.info("%s: %d values -> %d components (%.1f %% of training variance), fitted on %d clips",
             layer_path, int(np.prod(shape)), components, 100 * projection.explained_variance_ratio.sum(), len(train))
    projection.save(out_path, {"projected": z}, clip_ids=clip_ids, labels=labels,
                    attrs={"layer_shape": json.dumps(shape), "config": {"components": components, "seed": seed},
                           "source": str(layer_path)})


def projected(path) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    import h5py

    with h5py.File(path, "r") as file, LayerFile(path) as meta:
        return file["projected"][()], meta.clip_ids, meta.labels


def groups_of(split_path, clip_ids) -> np.ndarray:
    groups = read_csv(split_path).set_index("clip_id")["group"].astype(str)
    return groups.loc[list(clip_ids)].to_numpy()


def factor_labels(labels: dict[str, list[str]], factors: list[str], where) -> dict[str, np.ndarray]:
    missing = [f for f in factors if f not in labels]
    if missing:
        raise ValueError(f"{where} has no label {missing[0]!r} (latent.factors); its labels are {sorted(labels)}")
    out = {f: np.asarray(labels[f]) for f in factors}
    for factor, values in out.items():
        if len(set(values)) < 2:
            raise ValueError(f"factor {factor!r} has a single class ({values[0]!r}) in {where}: nothing to decode "
                             "or disentangle; choose another factor or dataset")
    return out


# --- decoding --------------------------------------------------------------------------------------------

def decode_all_layers(projections: dict[str, str], split_path, factors, settings: dict, outputs) -> None:
    from audioprobe.latent import decode

    features, labels, clip_ids = {}, None, None
    for layer, path in projections.items():
        features[layer], ids, layer_labels = projected(path)
        if clip_ids is not None and ids != clip_ids:
            raise ValueError(f"{path} lists different clips from the other layers: rerun its projection")
        clip_ids, labels = ids, layer_labels
    factor_values = factor_labels(labels, factors, projections[next(iter(projections))])
    table = decode.decode_layers(features, factor_values, groups_of(split_path, clip_ids), k=settings["k"],
                                 metric=settings["metric"], n_folds=settings["folds"], seed=settings["seed"])
    summary = decode.summarise_decoding(table)
    tests = pd.concat([decode.layer_comparisons(table, factor).assign(factor=factor) for factor in factors],
                      ignore_index=True)
    record = {"factors": factors, **settings}
    write_csv(outputs.folds, table, config=record)
    write_csv(outputs.tests, tests, config=record)
    decode.plot_decoding(summary, outputs.figure)
    write_csv(outputs.summary, summary, config=record)
    for factor in factors:
        best = decode.best_layer(table, factor)
        accuracy = summary[(summary.factor == factor) & (summary.layer == best)]["mean_accuracy"].iloc[0]
        log.info("%s: best layer %s (mean accuracy %.3f)", factor, best, accuracy)


def best_layer(summary_path) -> str:
    """The layer with the highest decoding accuracy averaged over factors (first one on ties)."""
    summary = read_csv(summary_path)
    order = list(dict.fromkeys(summary["layer"]))
    means = summary.groupby("layer")["mean_accuracy"].mean().reindex(order)
    return str(means.idxmax())


# --- flow --------------------------------------------------------------------------------------------------

def encode_classes(values: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, list[str]]]:
    """[clips, factors] integer codes and each factor's class names."""
    coded = {factor: class_codes(v) for factor, v in values.items()}
    return np.stack([codes for codes, _ in coded.values()], axis=1), {f: names for f, (_, names) in coded.items()}


def train_flow_step(projection_path, split_path, outputs, *, layer: str, factors, settings: dict, threads: int,
                    log: logging.Logger = log) -> None:
    import torch

    from audioprobe.latent import flow as flows
    from audioprobe.plots import plot_curve

    torch.set_num_threads(max(1, threads))
    z, clip_ids, labels = projected(projection_path)
    codes, classes = encode_classes(factor_labels(labels, factors, projection_path))
    masks = split_masks(split_path, clip_ids)
    validation = masks["val"] if masks["val"].any() else masks["test"]
    hyper = {k: settings[k] for k in ("stages", "hidden", "householder", "sigma", "epochs", "batch_size",
                                      "learning_rate", "patience", "pairing", "seed")}
    log.info("flow on %s: %d training, %d validation clips, %d dimensions", layer, masks["train"].sum(),
             validation.sum(), z.shape[1])
    model, curve = flows.train_flow(z[masks["train"]], codes[masks["train"]], z[validation], codes[validation],
                                    log=log, **hyper)
    latents = flows.forward(model, z)
    error = flows.round_trip_error(model, z)
    dims = flows.factor_dims(z.shape[1], len(factors))
    record = {"layer": layer, "factors": list(factors), "classes": classes, "dim": int(z.shape[1]),
              "n_factors": len(factors), "factor_dims": dims, **hyper}
    flows.save_flow(outputs.checkpoint, model, record)
    write_csv(outputs.curve, curve, config=record)
    plot_curve(curve, outputs.curve_figure, title=f"flow on {layer}")
    write_arrays(outputs.latents, {"latents": latents}, clip_ids=clip_ids, labels=labels,
                 attrs={"config": record, "layer": layer})
    write_json(outputs.invertibility, {"max_abs_round_trip_error": error, "clips": len(clip_ids),
                                       "tolerance": 1e-4, "within_tolerance": bool(error <= 1e-4)})
    log.info("round-trip error %.2e; best validation loss %.4f", error, curve["val_loss"].min())


def latents_of(path):
    import h5py

    with h5py.File(path, "r") as file, LayerFile(path) as meta:
        return file["latents"][()], meta.clip_ids, meta.labels, meta.attrs["config"]


# --- Figure 1 and the manipulation check ---------------------------------------------------------------------

def figure1_step(latents_path, split_path, outputs, *, factors, decode: dict) -> None:
    from audioprobe.latent import decode as decoding
    from audioprobe.plots import plot_factor_scatter

    latents, clip_ids, labels, record = latents_of(latents_path)
    held_out = ~split_masks(split_path, clip_ids)["train"]
    values = factor_labels(labels, factors, latents_path)
    dims = record["factor_dims"]
    residual = [d for d in range(latents.shape[1]) if d not in dims]
    plot_factor_scatter(latents[held_out][:, dims], {f: v[held_out] for f, v in values.items()}, factors,
                        outputs.figure, title=f"held-out clips, flow on {record['layer']}")
    groups = groups_of(split_path, clip_ids)[held_out]
    rows = []
    for factor, dim in zip(factors, dims):
        other = [d for d in dims if d != dim]
        for name, columns in (("own dimension", [dim]), ("other factor's dimension", other),
                              ("residual dimensions", residual)):
            folds = decoding.decode_factor(latents[held_out][:, columns], values[factor][held_out], groups,
                                           k=decode["k"], metric=decode["metric"],
                                           n_folds=min(decode["folds"], len(set(groups))), seed=decode["seed"])
            rows.append({"factor": factor, "features": name, "dimensions": len(columns),
                         "mean_accuracy": folds["accuracy"].mean(),
                         "se": folds["accuracy"].std(ddof=1) / np.sqrt(len(folds)),
                         "chance_majority": folds["chance"].mean(),
                         "chance_uniform": 1 / len(set(values[factor][held_out])), "folds": len(folds)})
    write_csv(outputs.check, pd.DataFrame(rows), config={"factors": factors, **decode, "clips": "held out"})


# --- latent transfer -------------------------------------------------------------------------------------------

def transfer_edit_step(inputs, out_path, *, factors, settings: dict) -> None:
    import h5py

    from audioprobe.io.atomic import atomic_path
    from audioprobe.latent import flow as flows
    from audioprobe.latent import transfer

    model, record = flows.load_flow(inputs.checkpoint)
    latents, clip_ids, labels, _ = latents_of(inputs.latents)
    projection = Projection.load(inputs.projection)
    activations, layer_ids, _, shape = layer_matrix(inputs.activations)
    if layer_ids != clip_ids:
        raise ValueError(f"{inputs.activations} and {inputs.latents} list different clips: rerun the flow")
    use = np.ones(len(clip_ids), bool)
    if settings["clips"] == "held_out":
        use = ~split_masks(inputs.split, clip_ids)["train"]
    rng = np.random.default_rng(settings["seed"])
    values = factor_labels(labels, factors, inputs.latents)
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as file:
        file.attrs["layer"] = record["layer"]
        file.attrs["config"] = json.dumps({"factors": list(factors), **settings}, sort_keys=True)
        for factor, dim in zip(factors, record["factor_dims"]):
            index = np.flatnonzero(use)
            partners = transfer.choose_partners(latents[index, dim], values[factor][index],
                                                typical_quantile=settings["typical_quantile"],
                                                max_clips=settings["max_clips"], rng=rng)
            for column in ("m", "p", "q"):
                partners[column] = index[partners[column]]
            group = file.create_group(factor)
            for name, z in transfer.edited_latents(latents, partners, dim).items():
                owner = partners["p" if name == "P" else "q" if name == "Q" else "m"].to_numpy()
                principal = flows.inverse(model, z)
                edited = projection.inverse(principal, activations[owner])
                group.create_dataset(name, data=edited.reshape(len(owner), *shape), track_times=False)
            for column in ("m", "p", "q"):
                group.create_dataset(f"clip_{column}", data=np.array([clip_ids[i] for i in partners[column]],
                                                                     dtype=object),
                                     dtype=h5py.string_dtype(), track_times=False)
            group.attrs["class_m"] = json.dumps(partners["class_m"].tolist())
            group.attrs["class_q"] = json.dumps(partners["class_q"].tolist())
            unchanged = group["M"][()].reshape(len(partners), -1)
            error = float(np.abs(unchanged - activations[partners["m"].to_numpy()]).max())
            group.attrs["round_trip_error"] = error
            log.info("%s: %d atypical clips; unedited round trip changes activations by at most %.2e",
                     factor, len(partners), error)


def transfer_continue_step(edited_path, out_path, *, model_name: str, model_config: dict, weights, threads) -> None:
    import h5py

    from audioprobe import models
    from audioprobe.io.atomic import atomic_path

    network = models.load(model_name, model_config, weights, threads=threads)
    with h5py.File(edited_path, "r") as edited, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        layer = edited.attrs["layer"]
        for key, value in edited.attrs.items():
            out.attrs[key] = value
        for factor in edited:
            group = out.create_group(factor)
            for name in ("M", "M->P", "M->Q", "P", "Q"):
                logits = network.forward_from(layer, edited[factor][name][()])["logits"]
                group.create_dataset(name, data=logits, track_times=False)
            log.info("%s: continued %d clips from %s", factor, edited[factor]["M"].shape[0], layer)


def file_config(path) -> str:
    import h5py

    with h5py.File(path, "r") as file:
        return file.attrs["config"]


def transfer_statistics_step(outputs_path, outputs, *, settings: dict) -> None:
    import h5py

    from audioprobe.latent import transfer
    from audioprobe.plots import plot_transfer
    from audioprobe.stats import compare_pairs

    tables, rows = [], []
    with h5py.File(outputs_path, "r") as file:
        layer = file.attrs["layer"]
        for factor in file:
            logits = {name: file[factor][name][()] for name in file[factor]}
            table = transfer.distances(logits, settings["distance_space"]).assign(factor=factor)
            tables.append(table)
            rows += [(f"{factor}: {a}", x, f"{factor}: {b}", y) for a, x, b, y in transfer.comparisons(table)]
    distances = pd.concat(tables, ignore_index=True)
    statistics = compare_pairs(rows)
    record = {**settings, "layer": layer, "distance": f"Euclidean on {settings['distance_space']}",
              "selection": json.loads(file_config(outputs_path))}
    write_csv(outputs.distances, distances, config=record)
    plot_transfer(distances, statistics, outputs.figure, space=settings["distance_space"], layer=layer)
    write_csv(outputs.statistics, statistics, config=record)
