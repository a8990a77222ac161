"""Benchmark of Study 1's per-fold projections (``latent.steps.project_folds``): exact route against streamed route.

1. Cost: seconds and peak memory (VmHWM of a fresh subprocess per size, dtype and route) of ``project_folds`` on
   synthetic layer files of N and 4N clips (``--clips``, default 2,000 and 8,000) of ``--values`` values
   (12,288: YAMNet layer9's width), written with ``LayerWriter`` as float32 and float16, 10 folds over all clips,
   64 components. The streamed route's predicted peak (``streamed_peak_mb``) is printed beside its measured peak.
2. Accuracy of the streamed fits against the exact ones (same folds): the explained variance captured, the
   principal angles between the spans of the first m projected coordinates, the correlation of each projected
   coordinate for components with a clear spectral gap, and with class labels the change in 3-NN accuracy;
   on the synthetic N-clip file and on real YAMNet activations (``--real`` layer files, e.g. ESC-10's from
   ``--extract-esc10 DIR``), where ``--grid`` also compares block Krylov and subspace-iteration settings and
   scikit-learn's IncrementalPCA is tried on one fold.
3. What that predicts for 60,000 clips x 14 YAMNet layers (10 folds over the 60 % train + val clips).

    nice -n 5 .venv/bin/python bench/projection.py [--clips 2000 8000] [--real DIR/layer9.h5 ...] [--grid krylov:32:5]
    nice -n 5 .venv/bin/python bench/projection.py --clips 1000 4000 --extract-esc10 /tmp/esc10 --esc10-hop 0.96 \
        --grid krylov:32:5 --no-ipca --threads 2      # about 45 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audioprobe.io.atomic import write_csv
from audioprobe.io.store import LayerWriter
from audioprobe.latent import projection as proj
from bench.provenance import git_state

# values per clip of YAMNet's layers for a 0.975 s clip (one patch)
YAMNET_VALUES = {"layer1": 49_152, "layer2": 98_304, "layer3": 49_152, "layer4": 49_152, "layer5": 24_576,
                 "layer6": 24_576, **{f"layer{i}": 12_288 for i in range(7, 13)}, "layer13": 6_144,
                 "layer14": 6_144}
LAYER_OF_WIDTH = {49_152: "layer1", 98_304: "layer2", 24_576: "layer5", 12_288: "layer9", 6_144: "layer13"}
MAAS_CLIPS, MAAS_TRAIN_VAL, MAAS_FOLDS = 60_000, 0.6, 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, nargs="+", default=[2_000, 8_000], help="synthetic layer sizes")
    parser.add_argument("--values", type=int, default=12_288, choices=sorted(LAYER_OF_WIDTH),
                        help="values per clip (a YAMNet layer's width)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float16"], choices=["float32", "float16"])
    parser.add_argument("--routes", nargs="+", default=["exact", "streamed"], choices=["exact", "streamed"])
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "lzf"])
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--clips-per-recording", type=int, default=10)
    parser.add_argument("--memory-mb", type=float, default=proj.MEMORY_MB,
                        help="latent.projection_memory_mb for the streamed plan")
    parser.add_argument("--real", nargs="*", default=[], help="layer files of real activations (accuracy only)")
    parser.add_argument("--extract-esc10", default=None, metavar="DIR",
                        help="first extract YAMNet layer2, layer6, layer9 and layer13 of ESC-10 into DIR and add "
                             "them to --real (needs TensorFlow and the weights)")
    parser.add_argument("--esc10-hop", type=float, default=0.48,
                        help="seconds between ESC-10's 0.975 s windows (0.96: about 5 per recording, 2,000 clips)")
    parser.add_argument("--grid", nargs="*", default=["krylov:32:5", "krylov:40:5", "krylov:24:6", "subspace:80:2",
                                                      "subspace:96:3", "subspace:96:4"],
                        help="method:block:power_iterations settings compared on the real layers (krylov keeps "
                             "every block, subspace the last; subspace:80:2 is 64 components + 16 oversampling)")
    parser.add_argument("--no-ipca", action="store_true", help="skip IncrementalPCA on the real layers")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (OPENBLAS_NUM_THREADS and the like; Snakemake gives the projection rules 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "bench/out/projection.json"))
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)  # layer, folds, out
    parser.add_argument("--route", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- synthetic layers -------------------------------------------------------------------------------------

def synthetic_rows(first: int, count: int, values: int, clips_per_recording: int, seed: int) -> np.ndarray:
    """Rows like a ReLU layer's: a slowly decaying spectrum (512 latent factors, power law), clips of one recording
    near each other, half the values zero on average. Row i is the same whatever the batch it is made in."""
    rank = 512
    mixing = np.random.default_rng([seed, 0]).standard_normal((rank, values), dtype=np.float32) / math.sqrt(rank)
    scales = (np.arange(1, rank + 1) ** -0.6).astype(np.float32)
    rows = []
    for i in range(first, first + count):
        recording = np.random.default_rng([seed, 1, i // clips_per_recording]).standard_normal(rank)
        own = np.random.default_rng([seed, 2, i]).standard_normal(rank)
        rows.append((0.7 * recording + 0.7 * own).astype(np.float32) * scales)
    return np.maximum(np.stack(rows) @ mixing, 0)


def write_synthetic_layer(path: Path, clips: int, values: int, dtype: str, args) -> None:
    layer = LAYER_OF_WIDTH[values]
    from audioprobe.models.yamnet import layer_shape

    shape = layer_shape(layer, 15_600)
    writer = LayerWriter(path, clips, shape, dtype=dtype, compression=args.compression,
                         attrs={"layer": layer, "axes": "patch,time,freq,channel", "model": "yamnet",
                                "config": {"clip_seconds": 0.975, "model": {"kind": "yamnet"}}})
    for first in range(0, clips, 500):
        count = min(500, clips - first)
        writer.write(synthetic_rows(first, count, values, args.clips_per_recording, args.seed).reshape(count, *shape))
    writer.finish([f"clip{i}" for i in range(clips)], {"class": [f"c{c}" for c in synthetic_classes(clips, args)]})


def synthetic_classes(clips: int, args) -> np.ndarray:
    """A label per clip (its recording's number modulo 6): nothing in the rows encodes it, so the 3-NN accuracy
    it gives is near chance and compares the routes' neighbourhoods only."""
    return (np.arange(clips) // args.clips_per_recording) % 6


def write_folds(path: Path, clip_ids: list[str], recordings: np.ndarray, folds: int, seed: int) -> None:
    """Whole recordings per fold, recordings dealt to folds in a seeded order (as grouped folds do)."""
    dealt = np.random.default_rng(seed).permutation(recordings.max() + 1)
    write_csv(path, pd.DataFrame({"clip_id": clip_ids, "group": [f"r{r}" for r in recordings],
                                  "fold": dealt[recordings] % folds}))


# --- cost: one fresh process per run ----------------------------------------------------------------------

def vm_hwm_mib() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def child(args) -> None:
    from audioprobe.latent import steps

    layer, folds, out = args.child
    before = vm_hwm_mib()
    started, cpu = time.monotonic(), time.process_time()
    steps.project_folds(layer, folds, out, components=args.components, seed=args.seed, route=args.route,
                        memory_mb=args.memory_mb)
    print(json.dumps({"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu,
                      "peak_rss_after_imports_mib": before, "peak_rss_mib": vm_hwm_mib()}))


def run_child(args, layer: Path, folds: Path, out: Path, route: str) -> dict:
    command = [sys.executable, __file__, "--child", str(layer), str(folds), str(out), "--route", route,
               "--components", str(args.components), "--seed", str(args.seed), "--memory-mb", str(args.memory_mb)]
    threads = {name: str(args.threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    result = subprocess.run(command, check=False, capture_output=True, text=True, env={**os.environ, **threads})
    if result.returncode:
        raise SystemExit(f"project_folds ({route}, {layer}) failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def fold_output(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as file:
        return {"projected": file["projected"][()], "fold": file["fold"][()],
                "ratio": file["explained_variance_ratio"][()], "fit": json.loads(file.attrs["fit"])}


# --- accuracy ---------------------------------------------------------------------------------------------

def clear_components(ratio: np.ndarray, gap: float = 0.05) -> np.ndarray:
    """Components whose eigenvalue is at least ``gap`` (relative) from both neighbours: the ones a PCA defines
    one by one (the last kept one has no known lower neighbour and is left out)."""
    relative = -np.diff(ratio.astype(np.float64)) / ratio[:-1]
    return np.minimum(np.r_[np.inf, relative], np.r_[relative, 0.0]) > gap


def largest_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The largest principal angle between the column spans of ``a`` and ``b`` (clips x m)."""
    qa, qb = np.linalg.qr(a - a.mean(0))[0], np.linalg.qr(b - b.mean(0))[0]
    cosine = np.linalg.svd(qa.T @ qb, compute_uv=False).min()
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def knn_accuracy(z: np.ndarray, labels: np.ndarray, held_out: np.ndarray) -> float:
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(3).fit(z[~held_out], labels[~held_out])
    return float((model.predict(z[held_out]) == labels[held_out]).mean())


def agreement(exact_z, exact_ratio, z, ratio, fold_of, labels=None) -> dict:
    """Streamed against exact, per fold, reported at the worst fold (mean for the 3-NN accuracy change)."""
    per_fold = []
    for f, fold in enumerate(np.unique(fold_of)):
        clear = clear_components(exact_ratio[f])
        corr = np.array([np.corrcoef(exact_z[f][:, i], z[f][:, i])[0, 1] for i in range(z.shape[2])])
        row = {"captured_variance_rel": abs(float(ratio[f].sum() / exact_ratio[f].sum() - 1)),
               "component_ratio_rel_clear": float(np.abs(ratio[f][clear] / exact_ratio[f][clear] - 1).max()),
               "clear_components": int(clear.sum()),
               "abs_corr_clear_min": float(np.abs(corr[clear]).min()),
               "signs_agree_clear": int((corr[clear] > 0).sum()),
               **{f"angle_first_{m}_deg": largest_angle_deg(exact_z[f][:, :m], z[f][:, :m]) for m in (8, 16, 32)}}
        if labels is not None:
            held_out = fold_of == fold
            row["knn_accuracy_change"] = (knn_accuracy(z[f], labels, held_out)
                                          - knn_accuracy(exact_z[f], labels, held_out))
            row["knn_accuracy_exact"] = knn_accuracy(exact_z[f], labels, held_out)
        per_fold.append(row)
    worst = {"captured_variance_rel": max, "component_ratio_rel_clear": max, "clear_components": min,
             "abs_corr_clear_min": min, "signs_agree_clear": min, "angle_first_8_deg": max,
             "angle_first_16_deg": max, "angle_first_32_deg": max, "knn_accuracy_change": np.mean,
             "knn_accuracy_exact": np.mean}
    summary = {key: float(worst[key]([row[key] for row in per_fold])) for key in per_fold[0]}
    if labels is not None:
        summary["knn_accuracy_exact_fold_sd"] = float(np.std([row["knn_accuracy_exact"] for row in per_fold]))
    return summary


def real_layer(path: Path):
    """A real layer file's rows, its folds (whole recordings: the clip id before '@') and first label."""
    from audioprobe.io.store import LayerFile

    with LayerFile(path) as layer:
        x = layer.activations[()].reshape(layer.activations.shape[0], -1).astype(np.float32)
        clip_ids = layer.clip_ids
        recordings = pd.factorize(pd.Series(clip_ids).str.split("@").str[0])[0]
        labels = pd.factorize(pd.Series(next(iter(layer.labels.values()))))[0] if layer.labels else None
    return x, clip_ids, recordings, labels


def real_accuracy(path: Path, args, scratch: Path) -> dict:
    """Both routes through project_folds on a real layer, then the settings grid against the exact fits."""
    from audioprobe.latent import steps

    x, clip_ids, recordings, labels = real_layer(path)
    write_folds(scratch / "real_folds.csv", clip_ids, recordings, args.folds, args.seed)
    timings = {}
    for route in ("exact", "streamed"):
        print(f"[{path.name}] {route} ...", file=sys.stderr)
        started = time.monotonic()
        steps.project_folds(path, scratch / "real_folds.csv", scratch / f"real_{route}.h5",
                            components=args.components, seed=args.seed, route=route)
        timings[route] = time.monotonic() - started
    exact, streamed = (fold_output(scratch / f"real_{route}.h5") for route in ("exact", "streamed"))
    fold_of = exact["fold"]
    result = {"file": str(path), "clips": len(x), "values": x.shape[1], "seconds": timings,
              "default": agreement(exact["projected"], exact["ratio"], streamed["projected"], streamed["ratio"],
                                   fold_of, labels), "grid": []}
    train = fold_of[None, :] != np.unique(fold_of)[:, None]
    for setting in args.grid:
        method, block, iterations = setting.split(":")
        block, iterations = int(block), int(iterations)
        print(f"[{path.name}] grid {setting} ...", file=sys.stderr)
        started, cpu = time.monotonic(), time.process_time()
        projections, z = proj.fit_streamed(proj.ArrayChunks(x, proj.CHUNK_ROWS), train, args.components,
                                           args.seed, block=block, power_iterations=iterations,
                                           krylov=method == "krylov")
        timing = {"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu}
        ratio = np.stack([p.explained_variance_ratio for p in projections])
        result["grid"].append({"method": method, "block": block, "power_iterations": iterations, **timing,
                               "reads": 4 + 2 * iterations,
                               "product_columns": product_columns(method, block, iterations, args.components),
                               **agreement(exact["projected"], exact["ratio"], z, ratio, fold_of, labels)})
    if not args.no_ipca:
        result["incremental_pca_fold0"] = incremental_pca(x, train[0], exact, args.components)
    return result


def product_columns(method: str, block: int, iterations: int, components: int) -> int:
    """Columns of the [values, columns] factors multiplied with every row over all passes, per fit: the flops
    are 2 x rows x values x this per fit."""
    if method == "krylov":
        return block * (iterations + 1) + block * iterations + block * (iterations + 1) + components
    return block * (2 + 2 * iterations) + components


def incremental_pca(x: np.ndarray, train: np.ndarray, exact: dict, components: int) -> dict:
    """scikit-learn's IncrementalPCA on fold 0's standardised training rows (batches of CHUNK_ROWS; one fold only,
    it has no way to share passes between folds) against the exact fit, and one streamed fit for its time."""
    from sklearn.decomposition import IncrementalPCA

    mean = x[train].mean(axis=0, dtype=np.float64)
    std = x[train].std(axis=0, dtype=np.float64)
    scale = np.where(std > 1e-12, std, 1.0)
    standard = ((x - mean) / scale).astype(np.float32)
    print("IncrementalPCA, fold 0 ...", file=sys.stderr)
    started, cpu = time.monotonic(), time.process_time()
    ipca = IncrementalPCA(components, batch_size=proj.CHUNK_ROWS).fit(standard[train])
    timing = {"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu}
    captured = float((ipca.singular_values_ ** 2).sum() / (standard[train].astype(np.float64) ** 2).sum())
    z = ipca.transform(standard)
    started, cpu = time.monotonic(), time.process_time()
    proj.fit_streamed(proj.ArrayChunks(x, proj.CHUNK_ROWS), train[None], components)
    streamed = {"seconds": time.monotonic() - started, "cpu_seconds": time.process_time() - cpu}
    return {**timing, "captured_variance_rel": abs(captured / float(exact["ratio"][0].sum()) - 1),
            **{f"angle_first_{m}_deg": largest_angle_deg(exact["projected"][0][:, :m], z[:, :m]) for m in (8, 16, 32)},
            "streamed_one_fit": streamed}


def extract_esc10(folder: Path, hop_seconds: float) -> list[Path]:
    """YAMNet (float numerics) layer2, layer6, layer9 and layer13 of ESC-10's 0.975 s windows every
    ``hop_seconds``."""
    from audioprobe import models
    from audioprobe.activations import extract
    from audioprobe.datasets import naming
    from audioprobe.datasets.manifest import ingest

    root = REPO.parent / "shared/data/esc10/ogg"
    clips = ingest(root, naming.sources(root, {"scheme": "folder"}), clip_seconds=0.975, hop_seconds=hop_seconds,
                   min_seconds=0.1, on_bad_input="skip").clips
    model = models.load("yamnet", {"kind": "yamnet", "numerics": "float"},
                        REPO.parent / "shared/models/yamnet/yamnet.tflite")
    outputs = {layer: str(folder / f"{layer}.h5") for layer in ("layer2", "layer6", "layer9", "layer13")}
    folder.mkdir(parents=True, exist_ok=True)
    extract(model, clips, root, outputs, clip_seconds=0.975, compression="none",
            attrs={"config": {"clip_seconds": 0.975, "model": {"kind": "yamnet", "numerics": "float"}}})
    return [Path(p) for p in outputs.values()]


# --- the prediction -----------------------------------------------------------------------------------------

def maas_prediction(cost: list[dict], args) -> dict:
    """The streamed route's marginal seconds per row-value (between the smallest and largest float32 runs, so
    the fixed start-up cost drops out), scaled to 60,000 clips x 14 layers (wall and CPU seconds); peak memory
    per layer from streamed_peak_mb (checked against the measured peaks in the cost table)."""
    runs = sorted((c for c in cost if c["route"] == "streamed" and c["dtype"] == "float32"), key=lambda c: c["clips"])
    small, large = runs[0], runs[-1]
    if small is large:  # one size only: its whole time, start-up included
        small = {"clips": 0, "seconds": 0.0, "cpu_seconds": 0.0}
    added = (large["clips"] - small["clips"]) * args.values
    per_value = {key: (large[key] - small[key]) / added for key in ("seconds", "cpu_seconds")}
    rows = int(MAAS_CLIPS * MAAS_TRAIN_VAL)
    layers = {}
    for layer, values in YAMNET_VALUES.items():
        batch, chunk = proj.plan_streamed(rows, values, MAAS_FOLDS, args.components, args.memory_mb)
        layers[layer] = {"values": values, "seconds": per_value["seconds"] * rows * values * MAAS_FOLDS / args.folds,
                         "cpu_seconds": per_value["cpu_seconds"] * rows * values * MAAS_FOLDS / args.folds,
                         "fits_per_batch": batch, "chunk_rows": chunk,
                         "peak_mib": proj.streamed_peak_mb(rows, values, batch, args.components, chunk_rows=chunk)}
        # the per-value cost was measured with args.folds fits sharing each pass; MaAS has MAAS_FOLDS
    return {"rows": rows, "from_clips": [small["clips"], large["clips"]], "seconds_per_row_value": per_value,
            "layers": layers, "total_seconds": sum(v["seconds"] for v in layers.values()),
            "total_cpu_seconds": sum(v["cpu_seconds"] for v in layers.values()),
            "largest_peak_mib": max(v["peak_mib"] for v in layers.values())}


# --- report -------------------------------------------------------------------------------------------------

def machine_info() -> dict:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {"nproc": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform()}


def accuracy_rows(name: str, a: dict) -> list[str]:
    knn = (f"{a['knn_accuracy_change']:+.4f} (exact {a['knn_accuracy_exact']:.3f} ± "
           f"{a['knn_accuracy_exact_fold_sd']:.3f} SD over folds)" if "knn_accuracy_change" in a else "–")
    return [(f"| {name} | {a['captured_variance_rel']:.1e} | {a['clear_components']:.0f} | "
            f"{a['abs_corr_clear_min']:.6f} | {a['signs_agree_clear']:.0f} | {a['angle_first_8_deg']:.2f}° / "
            f"{a['angle_first_16_deg']:.2f}° / {a['angle_first_32_deg']:.2f}° | {knn} |")]


def growth_rows(cost: list[dict]) -> list[str]:
    """Each route's peak RSS and seconds at the largest size over the smallest (per dtype)."""
    lines = ["", "| dtype | route | clips | peak RSS, largest / smallest | seconds, largest / smallest |",
             "|---|---|---|---|---|"]
    for dtype in dict.fromkeys(c["dtype"] for c in cost):
        for route in dict.fromkeys(c["route"] for c in cost):
            runs = sorted((c for c in cost if c["dtype"] == dtype and c["route"] == route), key=lambda c: c["clips"])
            if len(runs) > 1:
                small, large = runs[0], runs[-1]
                lines.append(f"| {dtype} | {route} | {small['clips']:,} -> {large['clips']:,} | "
                             f"{large['peak_rss_mib'] / small['peak_rss_mib']:.2f}x "
                             f"(+{large['peak_rss_mib'] - small['peak_rss_mib']:.0f} MiB) | "
                             f"{large['seconds'] / small['seconds']:.2f}x |")
    return lines


def table(result: dict) -> str:
    lines = ["| clips | dtype | route | seconds | CPU s | peak RSS (VmHWM) | predicted peak | fit |",
             "|---|---|---|---|---|---|---|---|"]
    for c in result["cost"]:
        fit = c["fit"]
        detail = (f"{fit['fits_per_batch']} fits/batch, {fit['chunk_rows']} rows/chunk" if fit["route"] == "streamed"
                  else "Gram route")
        lines.append(f"| {c['clips']:,} | {c['dtype']} | {c['route']} | {c['seconds']:.1f} | {c['cpu_seconds']:.1f} | "
                     f"{c['peak_rss_mib']:.0f} MiB | {c['predicted_peak_mib']:.0f} MiB | {detail} |")
    lines += growth_rows(result["cost"])
    lines += ["", ("| streamed vs exact | captured variance, rel. diff (worst fold) | clear components | min abs "
                   "corr, clear components | signs agree | largest angle, first 8 / 16 / 32 | 3-NN accuracy change |"),
              "|---|---|---|---|---|---|---|"]
    for name, a in result["accuracy_synthetic"].items():
        lines += accuracy_rows(f"synthetic {name}", a)
    for real in result["accuracy_real"]:
        lines += accuracy_rows(f"{Path(real['file']).name} ({real['clips']:,} clips), default setting", real["default"])
        for g in real["grid"]:
            lines += accuracy_rows(f"{Path(real['file']).name}: {g['method']}, block {g['block']}, "
                                   f"{g['power_iterations']} power iterations ({g['reads']} reads, "
                                   f"{g['product_columns']} product columns, {g['cpu_seconds']:.0f} CPU s)", g)
        if "incremental_pca_fold0" in real:
            i = real["incremental_pca_fold0"]
            lines.append(f"| {Path(real['file']).name}: IncrementalPCA, fold 0 only ({i['cpu_seconds']:.0f} CPU s; "
                         f"one streamed fit {i['streamed_one_fit']['cpu_seconds']:.0f} CPU s) | "
                         f"{i['captured_variance_rel']:.1e} | | | | {i['angle_first_8_deg']:.2f}° / "
                         f"{i['angle_first_16_deg']:.2f}° / {i['angle_first_32_deg']:.2f}° | |")
    p = result["prediction"]
    per_value = p["seconds_per_row_value"]
    lines += ["", (f"Prediction, 60,000 clips x 14 layers ({p['rows']:,} train + val rows, "
                   f"{MAAS_FOLDS} folds), from the streamed route's marginal "
                   f"{per_value['seconds'] * 1e9:.1f} ns ({per_value['cpu_seconds'] * 1e9:.1f} CPU ns) per row-value "
                   f"between {p['from_clips'][0]:,} and {p['from_clips'][1]:,} float32 clips: "
                   f"{p['total_seconds'] / 60:.0f} min ({p['total_cpu_seconds'] / 60:.0f} CPU min), largest peak "
                   f"{p['largest_peak_mib']:.0f} MiB"), "",
              "| layer | values | minutes (CPU minutes) | predicted peak | plan |", "|---|---|---|---|---|"]
    for layer, v in p["layers"].items():
        lines.append(f"| {layer} | {v['values']:,} | {v['seconds'] / 60:.1f} ({v['cpu_seconds'] / 60:.1f}) | "
                     f"{v['peak_mib']:.0f} MiB | {v['fits_per_batch']} fits/batch, {v['chunk_rows']} rows/chunk |")
    m = result["machine"]
    lines += ["", (f"load average {m['loadavg_start'][0]:.1f} at the start, {m['loadavg_end'][0]:.1f} at the end "
              f"({m['nproc']} cores)")]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        return child(args)
    git, load_start = git_state(), os.getloadavg()
    real = [Path(p) for p in args.real]
    with tempfile.TemporaryDirectory(prefix="bench-projection-") as tmp:
        tmp = Path(tmp)
        if args.extract_esc10:
            print("extracting ESC-10 ...", file=sys.stderr)
            real += extract_esc10(Path(args.extract_esc10), args.esc10_hop)
        cost, synthetic = [], {}
        for clips in args.clips:
            recordings = np.arange(clips) // args.clips_per_recording
            folds = tmp / f"folds_{clips}.csv"
            write_folds(folds, [f"clip{i}" for i in range(clips)], recordings, args.folds, args.seed)
            for dtype in args.dtypes:
                layer = tmp / f"layer_{clips}_{dtype}.h5"
                print(f"writing {layer.name} ...", file=sys.stderr)
                write_synthetic_layer(layer, clips, args.values, dtype, args)
                outputs = {}
                for route in args.routes:
                    print(f"[{clips} {dtype}] {route} ...", file=sys.stderr)
                    out = tmp / f"out_{clips}_{dtype}_{route}.h5"
                    measured = run_child(args, layer, folds, out, route)
                    outputs[route] = fold_output(out)
                    fit = outputs[route]["fit"]
                    train_rows = int(clips - clips / args.folds)
                    predicted = (proj.streamed_peak_mb(clips, args.values, fit["fits_per_batch"], args.components,
                                                       chunk_rows=fit["chunk_rows"],
                                                       itemsize=np.dtype(dtype).itemsize)
                                 if route == "streamed" else proj.exact_peak_mb(clips, args.values, train_rows))
                    cost.append({"clips": clips, "dtype": dtype, "route": route, "fit": fit,
                                 "file_mib": layer.stat().st_size / 2**20, "predicted_peak_mib": predicted,
                                 **measured})
                    out.unlink()
                if {"exact", "streamed"} <= set(outputs) and clips == min(args.clips):
                    e, s = outputs["exact"], outputs["streamed"]
                    synthetic[f"{clips:,} clips {dtype}"] = agreement(e["projected"], e["ratio"], s["projected"],
                                                                      s["ratio"], e["fold"],
                                                                      synthetic_classes(clips, args))
                layer.unlink()
        from threadpoolctl import threadpool_limits

        with threadpool_limits(args.threads):
            accuracy_real = [real_accuracy(path, args, tmp) for path in real]
    result = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("child", "route")}
        | {"block": proj.BLOCK, "power_iterations": proj.POWER_ITERATIONS,
           "chunk_rows": proj.CHUNK_ROWS, "git": git,
           "code_changed_during_run": git_state()["audioprobe_sha256"] != git["audioprobe_sha256"]},
        "machine": {**machine_info(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "cost": cost, "accuracy_synthetic": synthetic, "accuracy_real": accuracy_real,
    }
    result["prediction"] = maas_prediction(cost, args) if any(c["route"] == "streamed" for c in cost) else {}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    if result["settings"]["code_changed_during_run"]:
        print("warning: audioprobe changed during the run; the figures may mix two versions", file=sys.stderr)
    print(f"\nwritten: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
