"""Does storing activations as float16 change Study 1's decoding? (issue 13: float16 halves the disk)

The default run's maas-synth set (seed 1, 5 takes of 6 s per material x action pair, 0.975 s clips every
0.48 s) is generated into a temporary folder and a few YAMNet layers are extracted twice with
``audioprobe.activations.extract``, once stored float32 and once float16. Each layer file then goes through
Study 1's own steps as the workflow runs them: grouped folds by recording stratified by material x action
(``latent.split.cv_folds``, every clip in train+val), a standardise + PCA-64 + standardise projection fitted
per fold on that fold's training clips (``latent.steps.project_folds``, which reads the file through
``LayerFile``: float16 arrives as float32), and KNN decoding of material and action on those folds
(``latent.decode.decode_layers``, k = 3, euclidean). Per layer and factor it prints the mean accuracy for
both dtypes, their difference, the fold standard deviation of the float32 accuracies and the largest per-fold
difference, and the bytes on disk per clip for both dtypes.

``--projections 256 1024`` also stores each layer projected (``activations.store: {layer: {project: K}}``,
float32, seed ``--projection-seed``) in the same run, from the same clips and folds, and compares each K with
the full float32 layer the same way: Study 1's per-fold standardise + PCA + standardise then runs on the K
components instead of the layer's values.

    .venv/bin/python bench/float16.py [--layers layer4 layer8 layer12 layer14] [--projections 256 1024]
        [--out bench/out/float16.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audioprobe import models  # noqa: E402
from bench.provenance import git_state  # noqa: E402
from audioprobe.activations import extract  # noqa: E402
from audioprobe.datasets import maas_synth, naming  # noqa: E402
from audioprobe.datasets.generate import generate_maas_synth  # noqa: E402
from audioprobe.datasets.manifest import ingest  # noqa: E402
from audioprobe.io.atomic import read_csv, write_csv  # noqa: E402
from audioprobe.io.store import LayerFile  # noqa: E402
from audioprobe.latent.decode import decode_layers  # noqa: E402
from audioprobe.latent.split import cv_folds  # noqa: E402
from audioprobe.latent.steps import project_folds  # noqa: E402

CLIP_SECONDS, HOP_SECONDS = 0.975, 0.48
FACTORS = ["material", "action"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", nargs="+", default=["layer4", "layer8", "layer12", "layer14"])
    parser.add_argument("--takes", type=int, default=5, help="maas-synth recordings per material x action pair")
    parser.add_argument("--recording-seconds", type=float, default=6.0)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--projections", type=int, nargs="*", default=[],
                        help="also store every layer projected to each of these numbers of components")
    parser.add_argument("--projection-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--weights", default=str(REPO.parent / "shared/models/yamnet/yamnet.tflite"))
    parser.add_argument("--out", default=str(REPO / "bench/out/float16.json"))
    return parser.parse_args(argv)


def make_clips(folder: Path, args) -> pd.DataFrame:
    settings = {"seed": args.seed, "takes": args.takes, "sample_rate": 16000,
                "recording_seconds": args.recording_seconds, "materials": list(maas_synth.MATERIALS),
                "actions": list(maas_synth.ACTIONS)}
    generate_maas_synth(folder, settings)
    return ingest(folder, naming.sources(folder, {"scheme": "latentaudio"}), clip_seconds=CLIP_SECONDS,
                  hop_seconds=HOP_SECONDS, min_seconds=0.1, on_bad_input="fail").clips


def write_folds(clips: pd.DataFrame, path: Path, args) -> pd.DataFrame:
    """Study 1's decoding folds with every clip in train+val (no test split: nothing here picks a layer)."""
    split = pd.DataFrame({"clip_id": clips["clip_id"], "group": clips["group"].astype(str), "split": "train"})
    folds = cv_folds(clips, split, FACTORS, n_folds=args.folds, seed=args.seed)
    write_csv(path, folds, config={"factors": FACTORS, "folds": args.folds, "seed": args.seed})
    return folds


def variants(args) -> dict[str, dict]:
    """name -> how the layers are stored: float32 (the reference), float16, and float32 projected to each K."""
    stored = {"float32": {"dtype": "float32"}, "float16": {"dtype": "float16"}}
    for components in args.projections:
        projected = {layer: {"components": components, "seed": args.projection_seed} for layer in args.layers}
        stored[f"project{components}"] = {"dtype": "float32", "projected": projected}
    return stored


def extract_layers(model, clips, root: Path, out: Path, layers: list[str], name: str, how: dict) -> dict:
    outputs = {layer: out / name / f"{layer}.h5" for layer in layers}
    started = time.monotonic()
    extract(model, clips, root, outputs, clip_seconds=CLIP_SECONDS, dtype=how["dtype"], compression="none",
            projected=how.get("projected"),
            attrs={"config": {"clip_seconds": CLIP_SECONDS, "model": {"kind": "yamnet"}, "dtype": how["dtype"],
                              **({"stored_projected": how["projected"]} if "projected" in how else {})}})
    return {"paths": outputs, "seconds": time.monotonic() - started,
            "bytes_per_clip": {layer: path.stat().st_size / len(clips) for layer, path in outputs.items()}}


def decode_dtype(paths: dict, folds_path: Path, out: Path, args) -> pd.DataFrame:
    """Study 1's fold projections of every layer file, then KNN decoding of both factors on the same folds."""
    features, labels = {}, None
    for layer, path in paths.items():
        projected = out / f"{path.parent.name}-{layer}-folds.h5"
        project_folds(path, folds_path, projected, components=args.components, seed=args.seed)
        with LayerFile(projected) as stored:
            features[layer] = stored.file["projected"][()]
            labels = stored.labels
    folds = read_csv(folds_path)
    return decode_layers(features, {f: np.asarray(labels[f]) for f in FACTORS}, folds["group"].astype(str),
                         folds=folds["fold"].to_numpy(), k=args.k)


def compare(tables: dict[str, pd.DataFrame], other: str = "float16") -> pd.DataFrame:
    """Per layer and factor: the mean accuracy of the float32 files and of ``other``'s on the same folds."""
    keys = ["layer", "factor", "fold"]
    both = tables["float32"][keys + ["accuracy"]].merge(tables[other][keys + ["accuracy"]], on=keys,
                                                        suffixes=("_float32", f"_{other}"))
    both["difference"] = both[f"accuracy_{other}"] - both["accuracy_float32"]
    grouped = both.groupby(["layer", "factor"], sort=False)
    return pd.DataFrame({
        "float32": grouped["accuracy_float32"].mean(), other: grouped[f"accuracy_{other}"].mean(),
        "difference": grouped["difference"].mean(), "fold_sd_float32": grouped["accuracy_float32"].std(ddof=1),
        "largest_fold_difference": grouped["difference"].apply(lambda d: d.abs().max()),
        "folds": grouped.size()}).reset_index()


def table(summary: pd.DataFrame, sizes: dict) -> str:
    lines = ["| layer | factor | float32 | float16 | float16 - float32 | fold SD (float32) | largest fold difference |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.layer} | {r.factor} | {r.float32:.3f} | {r.float16:.3f} | {r.difference:+.3f} | "
              f"{r.fold_sd_float32:.3f} | {r.largest_fold_difference:.3f} |" for r in summary.itertuples()]
    lines += ["", "| layer | bytes per clip, float32 | float16 | ratio |", "|---|---|---|---|"]
    for layer, wide in sizes["float32"].items():
        narrow = sizes["float16"][layer]
        lines.append(f"| {layer} | {wide:,.0f} | {narrow:,.0f} | {narrow / wide:.3f} |")
    return "\n".join(lines)


def projection_table(summaries: dict[str, pd.DataFrame], sizes: dict) -> str:
    """Accuracy of the full float32 layer and of each projection (difference, largest per-fold difference),
    then bytes per clip of each."""
    names = list(summaries)
    head = " | ".join(f"{name} | {name} - full | largest fold difference" for name in names)
    lines = [f"| layer | factor | full (float32) | fold SD (full) | {head} |",
             "|---|---|---|---|" + "---|" * (3 * len(names))]
    reference = next(iter(summaries.values()))
    for index, row in enumerate(reference.itertuples()):
        cells = [f"{summaries[name].iloc[index][name]:.3f} | {summaries[name].iloc[index]['difference']:+.3f} | "
                 f"{summaries[name].iloc[index]['largest_fold_difference']:.3f}" for name in names]
        lines.append(f"| {row.layer} | {row.factor} | {row.float32:.3f} | {row.fold_sd_float32:.3f} | "
                     f"{' | '.join(cells)} |")
    lines += ["", f"| layer | bytes per clip, full (float32) | {' | '.join(names)} |",
              "|---|---|" + "---|" * len(names)]
    for layer, full in sizes["float32"].items():
        cells = [f"{sizes[name][layer]:,.0f} ({full / sizes[name][layer]:,.0f}x smaller)" for name in names]
        lines.append(f"| {layer} | {full:,.0f} | {' | '.join(cells)} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-float16-") as tmp:
        tmp = Path(tmp)
        print("generating maas-synth clips ...", file=sys.stderr)
        clips = make_clips(tmp / "audio", args)
        folds_path = tmp / "folds.csv"
        write_folds(clips, folds_path, args)
        model = models.load("yamnet", {"kind": "yamnet"}, args.weights, threads=args.threads)
        extracted, tables = {}, {}
        for name, how in variants(args).items():
            print(f"{name}: extracting {', '.join(args.layers)} ...", file=sys.stderr)
            extracted[name] = extract_layers(model, clips, tmp / "audio", tmp / "layers", args.layers, name, how)
            print(f"{name}: projecting per fold and decoding ...", file=sys.stderr)
            tables[name] = decode_dtype(extracted[name]["paths"], folds_path, tmp, args)
    summary = compare(tables)
    projected = {name: compare(tables, name) for name in tables if name.startswith("project")}
    sizes = {name: run["bytes_per_clip"] for name, run in extracted.items()}
    result = {"settings": {**{k: v for k, v in vars(args).items() if k != "out"}, "clips": len(clips),
                           "groups": int(clips["group"].nunique()), "git": git_state()},
              "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
              "extraction_seconds": {dtype: run["seconds"] for dtype, run in extracted.items()},
              "bytes_per_clip": sizes, "summary": summary.to_dict("records"),
              "projection_summary": {name: table.to_dict("records") for name, table in projected.items()},
              "folds": {dtype: t.to_dict("records") for dtype, t in tables.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"{len(clips)} clips from {result['settings']['groups']} recordings, {args.folds} grouped folds, "
          f"PCA-{args.components} per fold, {args.k}-NN")
    print(table(summary, sizes))
    if projected:
        print(f"\nstored projected (very sparse random projection, seed {args.projection_seed}), then Study 1's "
              f"PCA-{args.components} per fold on the components:")
        print(projection_table(projected, sizes))
    print(f"\nwritten: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
