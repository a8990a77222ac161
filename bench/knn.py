"""Benchmark of Study 1's KNN decoding with its permutation null: the previous path against the current one.

Synthetic maas-synth-like data at 1x, 10x and 100x (3, 30 and 300 takes of 24 material x action pairs, 11
clips per recording: 792, 7,920 and 79,200 clips), split by ``audioprobe.latent.split`` as the workflow does
(train + val, about 60 %, decoded in 10 grouped folds), with 64 features per fold ([F, N, 64] float32: one
"projection" per fold). Per layer, both factors (material, action) are decoded and get a 1,000-permutation
null, the work of the decode_layers rule:

- previous: ``decode_layers`` then ``null_distribution`` as they were before issue 13 (kept below): scikit-learn's
  brute-force neighbours per fold, found again for every factor and again inside the null, and votes over
  [permutations, clips, k, classes] booleans;
- current: ``decode.decode_with_null``: neighbours once per layer for both factors (float32 BLAS screening,
  float64 re-ranking), votes by counting.

Both run in the same process on the same data; the script checks that they give identical tables. It also
reports how often a pure float32 top-k (no float64 re-ranking) would pick another neighbour set.

    nice -n 5 .venv/bin/python bench/knn.py [--scales 1 10 100] [--layers 1] [--out bench/out/knn.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.provenance import git_state  # noqa: E402
from audioprobe.latent import decode
from audioprobe.latent.split import cv_folds, split_groups

MATERIALS, ACTIONS, CLIPS_PER_RECORDING, TAKES_1X = 6, 4, 11, 3


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100], help="multiples of 3 takes")
    parser.add_argument("--layers", type=int, default=1, help="layers timed per scale (seconds are per layer)")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench" / "out" / "knn.json"))
    return parser.parse_args(argv)


# --- data ---------------------------------------------------------------------------------------------------

def dataset(scale: int, *, n_folds: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Factors, groups and fold numbers of the train + val clips of a maas-synth-like set."""
    takes = TAKES_1X * scale
    material, action, take = (a.ravel() for a in np.meshgrid(np.arange(MATERIALS), np.arange(ACTIONS),
                                                              np.arange(takes), indexing="ij"))
    recording = [f"m{m}a{a}_{t:03d}" for m, a, t in zip(material, action, take)]
    clips = pd.DataFrame({"group": np.repeat(recording, CLIPS_PER_RECORDING),
                          "label_material": np.repeat(material, CLIPS_PER_RECORDING).astype(str),
                          "label_action": np.repeat(action, CLIPS_PER_RECORDING).astype(str)})
    clips.insert(0, "clip_id", [f"{g}_{i % CLIPS_PER_RECORDING:02d}" for i, g in enumerate(clips["group"])])
    factors = ["material", "action"]
    split = split_groups(clips, factors, val_fraction=0.2, test_fraction=0.4, seed=seed)
    folds = cv_folds(clips, split, factors, n_folds=n_folds, seed=seed)
    kept = clips.set_index("clip_id").loc[folds["clip_id"]]
    labels = {f: kept[f"label_{f}"].to_numpy() for f in factors}
    return labels, folds["group"].to_numpy(), folds["fold"].to_numpy()


def layer_features(labels: dict, groups, n_folds: int, components: int, rng) -> np.ndarray:
    """[F, N, components] float32: material and action directions, a per-recording offset and clip noise,
    rotated and standardised differently in each fold as if projected per fold."""
    material = rng.normal(0, 1.0, (MATERIALS, components))[labels["material"].astype(int)]
    action = rng.normal(0, 1.0, (ACTIONS, components))[labels["action"].astype(int)]
    names, group_of = np.unique(groups, return_inverse=True)
    base = material + action + rng.normal(0, 1.5, (len(names), components))[group_of]
    base += rng.normal(0, 1.0, base.shape)
    out = np.empty((n_folds, len(base), components), np.float32)
    for f in range(n_folds):
        rotation = np.linalg.qr(rng.normal(size=(components, components)))[0]
        x = base @ rotation
        out[f] = (x - x.mean(0)) / x.std(0)
    return out


# --- the previous implementation (before issue 13), kept for the comparison ----------------------------------

def previous_neighbours(x, folds, *, k, metric):
    from sklearn.neighbors import NearestNeighbors

    out = []
    for f, (train, test) in enumerate(folds):
        values = x[f] if x.ndim == 3 else x
        search = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(values[train])
        out.append(train[search.kneighbors(values[test], return_distance=False)])
    return out


def previous_vote(neighbour_codes, n_classes):
    counts = (neighbour_codes[..., None] == np.arange(n_classes)).sum(axis=-2)
    return counts.argmax(axis=-1)


def previous_decode_layers(features, factors, groups, *, folds, k, metric, split, decoded_on):
    fold_list = decode.folds_from_index(folds, groups)
    frames = []
    for factor, labels in factors.items():
        for layer, x in features.items():
            table = decode._score_folds(previous_neighbours(x, fold_list, k=k, metric=metric), labels, fold_list)
            frames.append(table.assign(layer=layer, factor=str(factor), split=split, decoded_on=decoded_on))
    return pd.concat(frames, ignore_index=True)[decode.DECODE_COLUMNS]


def previous_null(features, factors, groups, *, permutations, folds, k, metric, seed):
    fold_list = decode.folds_from_index(folds, groups)
    frames = []
    streams = np.random.SeedSequence(seed).spawn(len(factors))
    for (factor, labels), stream in zip(factors.items(), streams):
        codes, n_classes = decode._codes(labels)
        design = decode.null_design(codes, groups, fold_list)
        shuffled = decode.permuted_labels(codes, groups, permutations, np.random.default_rng(stream), fold_list)
        for layer, x in features.items():
            neighbours = previous_neighbours(x, fold_list, k=k, metric=metric)
            accuracy = np.mean([np.mean(previous_vote(shuffled[:, nearest], n_classes) == shuffled[:, test], axis=1)
                                for nearest, (_, test) in zip(neighbours, fold_list)], axis=0)
            frames.append(pd.DataFrame({"layer": layer, "factor": str(factor), "permutation": np.arange(permutations),
                                        "accuracy": accuracy, "null_unit": design.unit}))
    return pd.concat(frames, ignore_index=True)


# --- runs ---------------------------------------------------------------------------------------------------

def timed(run) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def float32_only_differences(x, fold_list, k) -> dict:
    """Over all folds: how many test clips' k nearest (as sets) would differ if the float32 screening scores
    were ranked directly instead of re-ranking the candidates in float64, and how many candidates the float64
    ranking sees per clip (k where no near-tie needs a look)."""
    clips, differing, candidates = 0, 0, 0
    for f, (train, test) in enumerate(fold_list):
        queries, points = x[f][test].astype(np.float64), x[f][train].astype(np.float64)
        scale = decode._power_of_two_scale(queries, points)
        screen_points, n_blocks = decode._screening_points(points, "euclidean", k, scale)
        screen_queries = decode._screening_queries(queries, "euclidean", scale)
        error = decode._screening_error(queries, points, scale)
        exact = np.sort(decode.nearest_points(queries, points, k=k), axis=1)
        rows = max(1, 2**24 // len(screen_points))
        for start in range(0, len(queries), rows):
            block = slice(start, start + rows)
            scores = screen_queries[block] @ screen_points.T
            top = np.sort(np.argpartition(scores, k - 1, axis=1)[:, :k], axis=1)
            differing += int(np.sum(np.any(top != exact[block], axis=1)))
            candidates += len(decode._candidates(scores, n_blocks, k, 2 * error[block])[0])
        clips += len(queries)
    return {"test_clips": clips, "float32_sets_differing": differing, "fraction_differing": differing / clips,
            "candidates_per_clip": candidates / clips}


def run_scale(scale: int, args) -> dict:
    factors, groups, fold_of = dataset(scale, n_folds=args.folds, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    features = {f"layer{i}": layer_features(factors, groups, args.folds, args.components, rng)
                for i in range(args.layers)}
    fold_list = decode.folds_from_index(fold_of, groups)
    common = {"folds": fold_of, "k": args.k, "metric": "euclidean"}
    split, decoded_on = "bench split", "train + val"
    print(f"{scale}x: {len(groups)} clips, previous path ...", file=sys.stderr)
    old_wall, old_cpu, (old_table, old_null) = timed(lambda: (
        previous_decode_layers(features, factors, groups, split=split, decoded_on=decoded_on, **common),
        previous_null(features, factors, groups, permutations=args.permutations, seed=args.seed, **common)))
    print(f"{scale}x: current path ...", file=sys.stderr)
    new_wall, new_cpu, (new_table, new_null) = timed(lambda: decode.decode_with_null(
        features, factors, groups, permutations=args.permutations, seed=args.seed, split=split,
        decoded_on=decoded_on, **common))
    neighbours_wall, _, _ = timed(lambda: [decode.fold_neighbours(x, fold_list, k=args.k) for x in features.values()])
    pd.testing.assert_frame_equal(old_table, new_table)
    pd.testing.assert_frame_equal(old_null, new_null)
    layers = len(features)
    return {"scale": scale, "clips_decoded": len(groups), "folds": args.folds,
            "train_clips_per_fold": float(np.mean([len(train) for train, _ in fold_list])),
            "layers": layers, "identical_tables": True,
            "previous_seconds_per_layer": old_wall / layers, "previous_cpu_seconds_per_layer": old_cpu / layers,
            "current_seconds_per_layer": new_wall / layers, "current_cpu_seconds_per_layer": new_cpu / layers,
            "current_neighbours_seconds_per_layer": neighbours_wall / layers,
            "speedup": old_wall / new_wall, "mean_accuracy": new_table.groupby("factor")["accuracy"].mean().to_dict(),
            "float32_only": float32_only_differences(next(iter(features.values())), fold_list, args.k),
            "loadavg_after": os.getloadavg()}


# --- report -------------------------------------------------------------------------------------------------

def machine_info() -> dict:
    import sklearn
    from threadpoolctl import threadpool_info

    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    blas = [{key: pool.get(key) for key in ("internal_api", "num_threads", "version", "architecture")}
            for pool in threadpool_info()]
    return {"nproc": os.cpu_count(), "sched_affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "python": platform.python_version(), "numpy": np.__version__, "sklearn": sklearn.__version__,
            "thread_pools": blas, "platform": platform.platform()}




def table(result: dict) -> str:
    header = ("| scale | clips decoded | previous s/layer | current s/layer (neighbours) | speed-up | identical | "
              "float32-only sets differing |")
    lines = [header, "|---|---|---|---|---|---|---|"]
    for run in result["runs"]:
        f32 = run["float32_only"]
        lines.append(f"| {run['scale']}x | {run['clips_decoded']:,} | {run['previous_seconds_per_layer']:.1f} | "
                     f"{run['current_seconds_per_layer']:.1f} ({run['current_neighbours_seconds_per_layer']:.1f}) | "
                     f"**{run['speedup']:.1f}x** | {'yes' if run['identical_tables'] else 'NO'} | "
                     f"{f32['float32_sets_differing']} / {f32['test_clips']:,} "
                     f"({f32['candidates_per_clip']:.3f} candidates/clip) |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    git, load_start = git_state(), os.getloadavg()
    runs = [run_scale(scale, args) for scale in args.scales]
    result = {"settings": {**vars(args), "git": git,
                           "code_changed_during_run": git_state()["audioprobe_sha256"] != git["audioprobe_sha256"]},
              "machine": {**machine_info(), "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
                          "nice": os.nice(0)},
              "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nload average before {load_start[0]:.1f}, after {result['machine']['loadavg_end'][0]:.1f}; "
          f"{os.cpu_count()} cores", file=sys.stderr)
    print(f"written: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
