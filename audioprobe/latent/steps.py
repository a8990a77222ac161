"""The steps of Study 1 as the workflow runs them: each reads files, calls the analysis, writes files."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd

from audioprobe.io.atomic import read_csv, write_csv, write_json
from audioprobe.io.store import LayerFile, write_arrays
from audioprobe.latent.projection import MEMORY_MB, Projection
from audioprobe.latent.split import class_codes, cv_folds, split_groups, split_masks

log = logging.getLogger(__name__)


def layer_matrix(path) -> tuple[np.ndarray, list[str], dict[str, list[str]], tuple[int, ...]]:
    """A layer file as [clips, values] plus clip ids, labels and the per-clip shape."""
    with LayerFile(path) as layer:
        data = layer.activations[()]
        return data.reshape(data.shape[0], -1), layer.clip_ids, layer.labels, tuple(data.shape[1:])


def make_split(manifest_path, out_path, factors, settings: dict, *, section: str = "latent",
               labels_key: str = "latent.factors", use: str = "decoding") -> pd.DataFrame:
    """The train / val / test split of a study's first job, which also checks the labels it names: each is a
    label of the manifest with at least two values (errors name ``labels_key``, and ``section``.split for
    the fractions). Study 2 calls it with section metamers and labels_key metamers.label."""
    from audioprobe.config import check_labels
    from audioprobe.datasets.manifest import read_manifest

    clips = read_manifest(manifest_path)
    check_labels(clips, factors, labels_key, manifest_path, use=use)
    split = split_groups(clips, factors, val_fraction=settings["val_fraction"],
                         test_fraction=settings["test_fraction"], seed=settings["seed"], labels_key=labels_key,
                         split_key=f"{section}.split")
    counts = split.groupby("split")["group"].nunique().to_dict()
    log.info("recording groups per split: %s", counts)
    write_csv(out_path, split, config={"factors": factors, **settings})
    return split


DECODED_ON = ("train+val clips (the test split is never decoded); the projection is refitted on each fold's "
              "training clips")


def make_folds(manifest_path, split_path, out_path, factors, settings: dict) -> pd.DataFrame:
    """The decoding folds over the clips outside the test split, written with their settings."""
    from audioprobe.datasets.manifest import read_manifest

    folds = cv_folds(read_manifest(manifest_path), read_csv(split_path), factors, n_folds=settings["folds"],
                     seed=settings["seed"])
    log.info("decoding folds over %d clips of %d recording groups outside the test split: %s", len(folds),
             folds["group"].nunique(), folds.groupby("fold")["group"].nunique().to_dict())
    write_csv(out_path, folds, config={"factors": factors, **settings, "clips": "train+val"})
    return folds


def _rows(data, index: np.ndarray, chunk: int) -> np.ndarray:
    """Rows ``index`` (sorted) of an HDF5 layer as [rows, values] float32, read in chunks of clips."""
    source = LayerChunks(data, index, chunk)
    rows = np.empty(source.shape, np.float32)
    for first, block in source:
        rows[first:first + len(block)] = block
    return rows


def project_layer(layer_path, split_path, out_path, *, components: int, seed: int, chunk: int = 256,
                  memory_mb: float | None = MEMORY_MB, route: str | None = None) -> None:
    """Fit the projection on the training clips and project every clip, reading the layer in chunks: in memory
    (exact) where that fits ``memory_mb`` (``latent.projection_memory_mb``; None: always exact), streamed
    otherwise (:func:`audioprobe.latent.projection.choose_route`; ``route`` exact or streamed forces one)."""
    with LayerFile(layer_path) as layer:
        data = layer.activations
        clip_ids, labels, shape = layer.clip_ids, layer.labels, tuple(data.shape[1:])
        width = int(np.prod(shape))
        train = np.flatnonzero(split_masks(split_path, clip_ids)["train"])
        route = _route(route, len(train), width, len(train), memory_mb)
        if route == "exact":
            x_train = _rows(data, train, chunk)
            projection = Projection.fit(x_train, components, seed=seed)
            del x_train
            z = np.concatenate([projection.transform(data[i:i + chunk].reshape(-1, width))
                                for i in range(0, data.shape[0], chunk)])
            fit = {"route": "exact", "memory_mb": memory_mb}
        else:
            is_train = np.zeros((1, data.shape[0]), bool)
            is_train[0, train] = True
            (projection,), z, fit = _fit_streamed_rows(data, np.arange(data.shape[0]), is_train, components, seed,
                                                       memory_mb, chunk)
            z = z[0]
    log.info("%s: %d values -> %d components (%.1f %% of training variance), fitted on %d clips (%s)",
             layer_path, width, components, 100 * projection.explained_variance_ratio.sum(), len(train),
             route)
    projection.save(out_path, {"projected": z}, clip_ids=clip_ids, labels=labels,
                    attrs={"layer_shape": json.dumps(shape), "config": {"components": components, "seed": seed},
                           "source": str(layer_path), "fit": fit})


def project_folds(layer_path, folds_path, out_path, *, components: int, seed: int, chunk: int = 256,
                  memory_mb: float | None = MEMORY_MB, route: str | None = None) -> None:
    """For each decoding fold, fit the projection on the fold's training clips and project every clip
    outside the test split through it (``/projected`` [folds, clips, components]). In memory (exact) where that
    fits ``memory_mb`` (``latent.projection_memory_mb``; None: always exact); otherwise every fold is fitted by
    streaming over the layer's rows in chunks, all folds from the same few passes (``route`` exact or streamed
    forces one)."""
    from audioprobe.latent.projection import fold_projections

    folds = read_csv(folds_path)
    fold_of = folds["fold"].to_numpy()
    with LayerFile(layer_path) as layer:
        data = layer.activations
        index = _fold_rows(layer.clip_ids, folds["clip_id"], layer_path, folds_path)
        order = np.argsort(index)
        width = int(np.prod(data.shape[1:]))
        largest = max(int((fold_of != f).sum()) for f in np.unique(fold_of))
        route = _route(route, len(index), width, largest, memory_mb)
        if route == "exact":
            x = np.empty((len(index), width), np.float32)
            for first, block in LayerChunks(data, index[order], chunk):
                x[order[first:first + len(block)]] = block
            z, ratios = fold_projections(x, fold_of, components, seed=seed)
            del x
            fit = {"route": "exact", "memory_mb": memory_mb}
        else:
            train = fold_of[order][None, :] != np.unique(fold_of)[:, None]
            projections, in_file_order, fit = _fit_streamed_rows(data, index[order], train, components, seed,
                                                                 memory_mb, chunk)
            z = np.empty_like(in_file_order)
            z[:, order] = in_file_order
            del in_file_order
            ratios = np.stack([p.explained_variance_ratio for p in projections])
        labels = {name: list(np.asarray(values)[index]) for name, values in layer.labels.items()}
    log.info("%s: %d folds, each projection fitted on its fold's %s training clips (%.1f %% of their variance "
             "kept on average; %s)", layer_path, z.shape[0],
             sorted({int((fold_of != f).sum()) for f in np.unique(fold_of)}), 100 * ratios.sum(1).mean(), route)
    write_arrays(out_path, {"projected": z, "fold": fold_of, "explained_variance_ratio": ratios},
                 clip_ids=list(folds["clip_id"]), labels=labels,
                 attrs={"config": {"components": components, "seed": seed}, "source": str(layer_path),
                        "decoded_on": DECODED_ON, "fit": fit})


def _route(route: str | None, rows: int, values: int, train_rows: int, memory_mb: float | None) -> str:
    from audioprobe.latent.projection import choose_route

    if route not in (None, "exact", "streamed"):
        raise ValueError(f"route must be exact, streamed or None (chosen by the memory budget), got {route!r}")
    return route or choose_route(rows, values, train_rows, memory_mb)


def _stored_itemsize(data) -> int:
    """Bytes per stored value: a float16 file's reader (:class:`audioprobe.io.store.Float32Reads`) says float32."""
    return getattr(data, "dataset", data).dtype.itemsize


def _fold_rows(clip_ids, fold_clips, layer_path, folds_path) -> np.ndarray:
    """The layer file's row of each clip of the folds, in the folds' order."""
    position = {clip: i for i, clip in enumerate(clip_ids)}
    missing = [c for c in fold_clips if c not in position]
    if missing:
        raise ValueError(f"{layer_path} has no clip {missing[0]!r} of {folds_path}: rerun the folds rule")
    return np.array([position[c] for c in fold_clips], dtype=np.int64)


def _fit_streamed_rows(data, index, train, components: int, seed: int, memory_mb: float | None, chunk: int):
    """Streamed fits (one per row of ``train``) on rows ``index`` (sorted) of a layer, planned to stay within
    ``memory_mb`` MB (None: no limit): (projections, [fits, rows, components] in ``index`` order, a record of how
    they were fitted)."""
    from audioprobe.latent.projection import (
        BLOCK,
        POWER_ITERATIONS,
        fit_streamed,
        plan_streamed,
        streamed_peak_mb,
    )

    width, itemsize = int(np.prod(data.shape[1:])), _stored_itemsize(data)
    budget = float("inf") if memory_mb is None else float(memory_mb)
    batch, chunk_rows = plan_streamed(len(index), width, len(train), components, budget, chunk_rows=chunk,
                                      itemsize=itemsize)
    peak = streamed_peak_mb(len(index), width, batch, components, chunk_rows=chunk_rows, itemsize=itemsize)
    if peak > budget:
        log.warning("the streamed projection needs about %.0f MB even in its smallest plan, more than "
                    "latent.projection_memory_mb (%.0f)", peak, budget)
    log.info("streaming %d rows x %d values: %d fits per batch, chunks of %d rows, about %.0f MB", len(index),
             width, batch, chunk_rows, peak)
    projections, z = fit_streamed(LayerChunks(data, index, chunk_rows), train, components, seed,
                                  fits_per_batch=batch)
    fit = {"route": "streamed", "method": "block Krylov", "block": BLOCK, "power_iterations": POWER_ITERATIONS,
           "chunk_rows": chunk_rows, "fits_per_batch": batch, "memory_mb": memory_mb}
    return projections, z, fit


class LayerChunks:
    """Rows ``index`` (sorted positions) of a layer's activations as float32 [rows, values] blocks of at most
    ``chunk_rows`` rows, in file order. Each block is read run by run of consecutive rows (random row access is
    slow in h5py) into one buffer, which the next block overwrites."""

    def __init__(self, data, index, chunk_rows: int):
        self.data, self.index, self.chunk_rows = data, np.asarray(index, dtype=np.int64), int(chunk_rows)
        if len(self.index) > 1 and not (np.diff(self.index) > 0).all():
            raise ValueError("LayerChunks reads rows in increasing order: sort the index")
        self.shape = (len(self.index), int(np.prod(data.shape[1:])))

    def __iter__(self):
        buffer = np.empty((min(self.chunk_rows, len(self.index)), *self.data.shape[1:]), self.data.dtype)
        for first in range(0, len(self.index), self.chunk_rows):
            rows = self.index[first:first + self.chunk_rows]
            for start, stop, at in _runs(rows):
                self.data.read_direct(buffer, np.s_[start:stop], np.s_[at:at + stop - start])
            yield first, buffer[:len(rows)].reshape(len(rows), -1).astype(np.float32, copy=False)


def _runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, position in ``rows``) of each run of consecutive values of the sorted ``rows``."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [len(rows)]])
    return [(int(rows[a]), int(rows[b - 1]) + 1, int(a)) for a, b in zip(starts, ends)]


def projected(path) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
    with LayerFile(path) as stored:
        return stored.file["projected"][()], stored.clip_ids, stored.labels


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

def decode_all_layers(projections: dict[str, str], folds_path, factors, settings: dict, outputs) -> None:
    """Grouped KNN decoding of every factor from every layer's per-fold projections, the permutation null,
    the layer comparisons and the figure."""
    from audioprobe.latent import decode

    features, labels, clip_ids = {}, None, None
    for layer, path in projections.items():
        features[layer], ids, layer_labels = projected(path)
        if clip_ids is not None and ids != clip_ids:
            raise ValueError(f"{path} lists different clips from the other layers: rerun its projection")
        clip_ids, labels = ids, layer_labels
    folds = read_csv(folds_path)
    if list(folds["clip_id"]) != clip_ids:
        raise ValueError(f"the projections list other clips than {folds_path}: rerun project_folds")
    factor_values = factor_labels(labels, factors, projections[next(iter(projections))])
    n_folds = int(folds["fold"].nunique())
    common = {"folds": folds["fold"].to_numpy(), "k": settings["k"], "metric": settings["metric"],
              "seed": settings["seed"]}
    groups = folds["group"].astype(str).to_numpy()
    split = f"{decode.describe_split(n_folds)}, stratified by {' x '.join(factors)}"
    table, null = decode.decode_with_null(features, factor_values, groups, permutations=settings["permutations"],
                                          split=split, decoded_on=DECODED_ON, **common)
    resolution = decode.null_resolution(factor_values, groups, common["folds"], settings["permutations"])
    for _, row in resolution.iterrows():
        log.info("%s: the null shuffles %ss within %s and reaches 10^%.1f distinct relabelings: the smallest "
                 "attainable p is about %.2g%s", row["factor"], row["null_unit"], row["null_shuffled_within"],
                 row["null_relabelings_log10"], row["null_min_p"],
                 f"; folds {row['null_frozen_folds']} hold one class and never move" if row["null_frozen_folds"]
                 else "")
    summary = decode.summarise_decoding(table, null, resolution)
    tests = pd.concat([decode.layer_comparisons(table, factor).assign(factor=factor) for factor in factors],
                      ignore_index=True)
    record = {"factors": factors, **settings, "decoded_on": DECODED_ON}
    write_csv(outputs.folds, table, config=record)
    write_csv(outputs.null, null, config=record)
    write_csv(outputs.tests, tests, config={**record, "caveat": decode.LAYER_TEST_CAVEAT})
    decode.plot_decoding(summary, outputs.figure)
    write_csv(outputs.summary, summary, config=record)
    for factor in factors:
        best = decode.best_layer(table, factor)
        row = summary[(summary.factor == factor) & (summary.layer == best)].iloc[0]
        log.info("%s: best layer %s (mean accuracy %.3f; permutation chance %.3f, 95th percentile %.3f, p %.4f)",
                 factor, best, row["mean_accuracy"], row["null_mean"], row["null_p95"], row["p_permutation"])


def best_layer(summary_path, candidates=None) -> str:
    """The layer with the highest decoding accuracy averaged over factors (first one on ties), among
    ``candidates`` when given (the layers the network can be continued from, which the transfer needs)."""
    summary = read_csv(summary_path)
    order = [layer for layer in dict.fromkeys(summary["layer"]) if candidates is None or layer in candidates]
    if not order:
        raise ValueError(f"{summary_path}: none of the decoded layers is one the network can be continued from "
                         f"({', '.join(candidates)}): extract one of those, or set latent.flow.layer")
    means = summary.groupby("layer")["mean_accuracy"].mean().reindex(order)
    return str(means.idxmax())


# --- flow --------------------------------------------------------------------------------------------------

def encode_classes(values: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, list[str]]]:
    """[clips, factors] integer codes and each factor's class names."""
    coded = {factor: class_codes(v) for factor, v in values.items()}
    return np.stack([codes for codes, _ in coded.values()], axis=1), {f: names for f, (_, names) in coded.items()}


def early_stopping_note(n_val: int, settings: dict, unvalidated: list[str] | None = None) -> str:
    """What curve.csv says about early stopping; ``unvalidated`` lists label combinations the validation
    split lacks (see :func:`combinations_without_val`)."""
    if n_val:
        note = f"on the validation split ({n_val} clips, patience {settings['patience']} epochs)"
        if unvalidated:
            note += (f"; the validation split has no recording of {len(unvalidated)} label combination(s) "
                     f"({', '.join(unvalidated)}), so the stopping epoch ignores them")
        return note
    return (f"off: the validation split is empty (too few recording groups per label combination), so the flow "
            f"trained for all {settings['epochs']} configured epochs and the last epoch is kept; test clips "
            "never stand in")


def combinations_without_val(values: dict[str, np.ndarray], masks: dict[str, np.ndarray]) -> list[str]:
    """The label combinations (e.g. "wood x tapping") that occur outside the validation split but have no
    validation clip, sorted."""
    combination = np.array([" x ".join(map(str, row)) for row in zip(*values.values())])
    return sorted(set(combination[~masks["val"]]) - set(combination[masks["val"]]))


def train_flow_step(projection_path, split_path, outputs, *, layer: str, factors, settings: dict, threads: int,
                    log: logging.Logger = log) -> None:
    """Train the flow on the training split; early-stop on the validation split only (never on test clips),
    or, without validation clips, train for the configured epochs and record that in curve.csv."""
    import torch

    from audioprobe.latent import flow as flows
    from audioprobe.plots import plot_curve

    torch.set_num_threads(max(1, threads))
    z, clip_ids, labels = projected(projection_path)
    values = factor_labels(labels, factors, projection_path)
    codes, classes = encode_classes(values)
    masks = split_masks(split_path, clip_ids)
    train, val = masks["train"], masks["val"]
    hyper = {k: settings[k] for k in ("stages", "hidden", "householder", "sigma", "epochs", "batch_size",
                                      "learning_rate", "patience", "pairing", "seed")}
    unvalidated = combinations_without_val(values, masks) if val.any() else []
    if unvalidated:
        log.warning("the validation split has no recording of %s: early stopping judges the flow without them; "
                    "add recordings of those combinations or raise latent.split.val_fraction",
                    ", ".join(unvalidated))
    stopping = early_stopping_note(int(val.sum()), hyper, unvalidated)
    log.info("flow on %s: %d training, %d validation clips, %d dimensions; early stopping %s", layer, train.sum(),
             val.sum(), z.shape[1], stopping)
    model, curve = flows.train_flow(z[train], codes[train], z[val] if val.any() else None,
                                    codes[val] if val.any() else None, log=log, **hyper)
    latents = flows.forward(model, z)
    error = flows.round_trip_error(model, z)
    dims = flows.factor_dims(z.shape[1], len(factors))
    record = {"layer": layer, "factors": list(factors), "classes": classes, "dim": int(z.shape[1]),
              "n_factors": len(factors), "factor_dims": dims, **hyper}
    flows.save_flow(outputs.checkpoint, model, record)
    write_csv(outputs.curve, curve.assign(early_stopping=stopping), config={**record, "early_stopping": stopping})
    plot_curve(curve, outputs.curve_figure, title=f"flow on {layer}" + ("" if val.any() else
                                                                        " (no validation split: all epochs)"))
    write_arrays(outputs.latents, {"latents": latents}, clip_ids=clip_ids, labels=labels,
                 attrs={"config": record, "layer": layer})
    write_json(outputs.invertibility, {"max_abs_round_trip_error": error, "clips": len(clip_ids),
                                       "tolerance": 1e-4, "within_tolerance": bool(error <= 1e-4)})
    kept = int(curve.loc[curve["kept"], "epoch"].iloc[0])
    log.info("round-trip error %.2e; kept epoch %d of %d", error, kept, len(curve))


def latents_of(path):
    with LayerFile(path) as stored:
        return stored.file["latents"][()], stored.clip_ids, stored.labels, stored.attrs["config"]


# --- Figure 1 and the manipulation check ---------------------------------------------------------------------

def figure1_step(latents_path, split_path, outputs, *, factors, decode: dict) -> None:
    """Figure 1 and the manipulation check on the test split only: the flow was fitted on the training clips
    and early-stopped on the validation clips, so only test clips are new to it."""
    from audioprobe.latent import decode as decoding
    from audioprobe.plots import plot_factor_scatter

    latents, clip_ids, labels, record = latents_of(latents_path)
    test = split_masks(split_path, clip_ids)["test"]
    values = factor_labels(labels, factors, latents_path)
    dims = record["factor_dims"]
    residual = [d for d in range(latents.shape[1]) if d not in dims]
    plot_factor_scatter(latents[test][:, dims], {f: v[test] for f, v in values.items()}, factors,
                        outputs.figure, title=f"test clips, flow on {record['layer']}")
    groups = groups_of(split_path, clip_ids)[test]
    n_folds = min(decode["folds"], len(set(groups)))
    settings = {"k": decode["k"], "metric": decode["metric"], "n_folds": n_folds, "seed": decode["seed"]}
    rows = []
    for factor, dim in zip(factors, dims):
        other = [d for d in dims if d != dim]
        features = {"own dimension": latents[test][:, [dim]], "other factor's dimension": latents[test][:, other],
                    "residual dimensions": latents[test][:, residual]}
        target = {factor: values[factor][test]}
        folds, null = decoding.decode_with_null(features, target, groups, permutations=decode["permutations"],
                                                decoded_on="test clips", **settings)
        for _, row in decoding.summarise_decoding(folds, null).iterrows():
            rows.append({"factor": factor, "features": row["layer"], "dimensions": features[row["layer"]].shape[1],
                         "mean_accuracy": row["mean_accuracy"], "se": row["se_accuracy"],
                         "chance_permutation": row["null_mean"], "null_p95": row["null_p95"],
                         "p_permutation": row["p_permutation"], "chance_majority": row["mean_majority_chance"],
                         "chance_uniform": 1 / len(set(target[factor])), "folds": row["n_folds"],
                         "clips": int(test.sum()), "null_unit": row["null_unit"]})
    write_csv(outputs.check, pd.DataFrame(rows), config={"factors": factors, **decode, "clips": "test split"})


# --- latent transfer -------------------------------------------------------------------------------------------

def other_factor(factors, factor: str) -> str:
    """The factor held fixed while ``factor`` is edited. Study 1 has exactly two factors (the schema's
    latent.factors takes two), so "the other factor" is one factor; more would leave some unheld."""
    if len(factors) != 2 or factor not in factors:
        raise ValueError(f"latent transfer holds the other factor fixed and needs exactly two latent.factors, got "
                         f"{list(factors)}; list two label columns")
    return next(f for f in factors if f != factor)


def partner_activations(data, partners: pd.DataFrame, chunk: int = 256) -> dict[str, np.ndarray]:
    """The layer's activations [pairs, values] float32 of M, P and Q (``partners`` columns m, p, q: rows of the
    layer), reading only those rows, each once, in increasing order."""
    owners = {column: partners[column].to_numpy() for column in ("m", "p", "q")}
    needed = np.unique(np.concatenate(list(owners.values())))
    rows = _rows(data, needed, chunk)
    return {column: rows[np.searchsorted(needed, owner)] for column, owner in owners.items()}


def transfer_edit_step(inputs, out_path, *, factors, settings: dict) -> None:
    """Choose M, P and Q on the chosen clips (P and Q from other recordings than M, holding the other factor
    fixed), edit M's factor dimension and map the edits back to the layer. The projection and the flow were
    fitted by their own rules, so of the layer only M's, P's and Q's rows are read."""
    import h5py

    from audioprobe.io.atomic import atomic_path
    from audioprobe.latent import flow as flows
    from audioprobe.latent import transfer

    model, record = flows.load_flow(inputs.checkpoint)
    latents, clip_ids, labels, _ = latents_of(inputs.latents)
    projection = Projection.load(inputs.projection)
    use = np.ones(len(clip_ids), bool)
    if settings["clips"] == "held_out":  # the test split: the flow never trained or early-stopped on it
        use = split_masks(inputs.split, clip_ids)["test"]
    rng = np.random.default_rng(settings["seed"])
    values = factor_labels(labels, factors, inputs.latents)
    groups = groups_of(inputs.split, clip_ids)
    with LayerFile(inputs.activations) as layer, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as file:
        if layer.clip_ids != clip_ids:
            raise ValueError(f"{inputs.activations} and {inputs.latents} list different clips: rerun the flow")
        shape = tuple(layer.activations.shape[1:])
        file.attrs["layer"] = record["layer"]
        file.attrs["config"] = json.dumps({"factors": list(factors), **settings}, sort_keys=True)
        for factor, dim in zip(factors, record["factor_dims"]):
            index = np.flatnonzero(use)
            other = values[other_factor(factors, factor)][index]
            partners = transfer.choose_partners(latents[index, dim], values[factor][index], other, groups[index],
                                                typical_quantile=settings["typical_quantile"],
                                                max_clips=settings["max_clips"], rng=rng)
            for column in ("m", "p", "q"):
                partners[column] = index[partners[column]]
            group = file.create_group(factor)
            activations = partner_activations(layer.activations, partners)
            for name, z in transfer.edited_latents(latents, partners, dim).items():
                owner = activations["p" if name == "P" else "q" if name == "Q" else "m"]
                principal = flows.inverse(model, z)
                edited = projection.inverse(principal, owner)
                group.create_dataset(name, data=edited.reshape(len(owner), *shape), track_times=False)
            for column in ("m", "p", "q"):
                group.create_dataset(f"clip_{column}", data=np.array([clip_ids[i] for i in partners[column]],
                                                                     dtype=object),
                                     dtype=h5py.string_dtype(), track_times=False)
                group.create_dataset(f"group_{column}", data=partners[f"group_{column}"].to_numpy(object),
                                     dtype=h5py.string_dtype(), track_times=False)
            group.attrs["class_m"] = json.dumps(partners["class_m"].tolist())
            group.attrs["class_q"] = json.dumps(partners["class_q"].tolist())
            for column in ("p_other_fixed", "q_other_fixed"):
                group.create_dataset(column, data=partners[column].to_numpy(bool), track_times=False)
                group.attrs[column] = int(partners[column].sum())
            unchanged = group["M"][()].reshape(len(partners), -1)
            error = float(np.abs(unchanged - activations["m"]).max())
            group.attrs["round_trip_error"] = error
            log.info("%s: %d atypical clips from %d recordings, partners from other recordings; P shares the "
                     "other factor for %d, Q for %d (the rest are the fallback); unedited round trip changes "
                     "activations by at most %.2e", factor, len(partners), partners["group_m"].nunique(),
                     partners["p_other_fixed"].sum(), partners["q_other_fixed"].sum(), error)


def transfer_continue_step(edited_path, out_path, *, model_name: str, model_config: dict, weights, threads) -> None:
    import h5py

    from audioprobe import models
    from audioprobe.io.atomic import atomic_path
    from audioprobe.io.store import open_h5

    network = models.load(model_name, model_config, weights, threads=threads)
    with open_h5(edited_path) as edited, atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        layer = edited.attrs["layer"]
        for key, value in edited.attrs.items():
            out.attrs[key] = value
        out.attrs["scores"] = network.scores  # how the network turns these logits into probabilities
        for factor in edited:
            group = out.create_group(factor)
            for key, value in edited[factor].attrs.items():
                group.attrs[key] = value
            for name in ("M", "M->P", "M->Q", "P", "Q"):
                logits = network.forward_from(layer, edited[factor][name][()])["logits"]
                group.create_dataset(name, data=logits, track_times=False)
            for name in edited[factor]:  # clip and recording ids of M, P, Q and the other-factor flags
                if name not in group:
                    edited.copy(edited[factor][name], group, name=name)
            log.info("%s: continued %d clips from %s", factor, edited[factor]["M"].shape[0], layer)


def file_config(path) -> str:
    from audioprobe.io.store import open_h5

    with open_h5(path) as file:
        return file.attrs["config"]


def transfer_statistics_step(outputs_path, outputs, *, settings: dict) -> None:
    """Distances per pair, then the paired tests over M's recordings (each recording's mean distance per
    reference x condition; n = recordings), corrected over all comparisons, and Figure 2 from the same."""
    from audioprobe.io.store import open_h5
    from audioprobe.latent import transfer
    from audioprobe.plots import plot_transfer

    tables, matched = [], {}
    with open_h5(outputs_path) as file:
        layer = file.attrs["layer"]
        for factor in file:
            if "group_m" not in file[factor]:
                raise ValueError(f"{outputs_path} has no recording of M for {factor!r}: rerun transfer_edit and "
                                 "transfer_continue")
            logits = {name: file[factor][name][()] for name in transfer.CONDITIONS + transfer.REFERENCES}
            group_m = np.asarray(file[factor]["group_m"][()]).astype(str)
            table = transfer.distances(logits, settings["distance_space"], str(file.attrs.get("scores", "sigmoid")))
            tables.append(table.assign(factor=factor, group_m=group_m[table["pair"].to_numpy()]))
            matched[factor] = {key: int(file[factor].attrs.get(key, -1)) for key in ("p_other_fixed", "q_other_fixed")}
    distances = pd.concat(tables, ignore_index=True)
    statistics = recording_level_statistics(distances)
    factor_of = statistics["label_a"].str.split(": ").str[0]
    for key in ("p_other_fixed", "q_other_fixed"):
        statistics[f"pairs_{key}"] = factor_of.map(lambda f: matched[f][key])
    for _, row in statistics.iterrows():
        log.info("%s vs %s: mean difference %.4f over %d recordings (%d pairs), t %.2f, Bonferroni p %.4g",
                 row["label_a"], row["label_b"], row["mean_diff"], row["n_recordings"], row["n_pairs"], row["t"],
                 row["p_t_bonferroni"])
    record = {**settings, "layer": layer, "distance": f"Euclidean on {settings['distance_space']}",
              "unit": TRANSFER_UNIT, "selection": json.loads(file_config(outputs_path))}
    write_csv(outputs.distances, distances, config=record)
    plot_transfer(distances, statistics, outputs.figure, space=settings["distance_space"], layer=layer)
    write_csv(outputs.statistics, statistics, config=record)


TRANSFER_UNIT = ("M's recording: each recording's distances are averaged per reference and condition, and the "
                 "paired tests run over recordings (n_recordings), not over overlapping clips (n_pairs)")


def recording_level_statistics(distances: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Paired t and Wilcoxon tests of each edit against M over M's recordings, per factor, with Bonferroni
    and Holm corrections across all comparisons, the Bonferroni-adjusted CIs that match them, and
    n_recordings / n_pairs per row."""
    from audioprobe.latent import transfer
    from audioprobe.stats import compare_pairs, confidence_interval

    rows, counts = [], []
    for factor, table in distances.groupby("factor", sort=False):
        means = transfer.recording_means(table)
        for a, x, b, y in transfer.comparisons(means, unit="group_m"):
            rows.append((f"{factor}: {a}", x, f"{factor}: {b}", y))
            counts.append((means["group_m"].nunique(), int(table["pair"].nunique())))
    statistics = compare_pairs(rows)
    statistics["n_recordings"] = [n for n, _ in counts]
    statistics["n_pairs"] = [n for _, n in counts]
    statistics["ci_low"], statistics["ci_high"] = confidence_interval(
        statistics["mean_diff"], statistics["se_diff"], statistics["df"], level=level, family=len(statistics))
    statistics["ci_level"] = f"{100 * (1 - (1 - level) / len(statistics)):.4g} % (95 % Bonferroni-adjusted " \
                             f"for {len(statistics)} comparisons; over recordings)"
    return statistics
