"""Benchmark of layer-wise YAMNet activation extraction.

1. Throughput: ``audioprobe.activations.extract`` (one forward pass per batch for all 14 layers, streamed to
   one HDF5 file per layer) against one full pass per layer (14 passes, each computing only its layer and
   writing it with the same ``LayerWriter``). Same clips, batch size and compression; TF functions are
   traced before timing. The per-layer passes are instrumented (load / compute / write) to show where the
   time goes, and a compute-only run gives each layer's prefix cost.
2. Peak memory: extraction of N and 4N clips, each in a fresh subprocess that reports its VmHWM.

    .venv/bin/python bench/extraction.py [--clips 100] [--memory-clips 100 400] [--out bench/out/extraction.json]
"""

from __future__ import annotations

import argparse
import hashlib
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from audioprobe import models  # noqa: E402
from audioprobe.activations import clip_samples, extract  # noqa: E402
from audioprobe.datasets import maas_synth, naming  # noqa: E402
from audioprobe.datasets.generate import generate_maas_synth  # noqa: E402
from audioprobe.datasets.manifest import ingest, labels_of, load_clip, read_manifest  # noqa: E402
from audioprobe.io.atomic import write_csv  # noqa: E402
from audioprobe.io.store import LayerWriter  # noqa: E402

CLIP_SECONDS, HOP_SECONDS = 0.975, 0.48


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=100, help="clips for the throughput comparison")
    parser.add_argument("--memory-clips", type=int, nargs="*", default=[100, 400],
                        help="dataset sizes for the peak-memory runs (one fresh process each; none to skip)")
    parser.add_argument("--numerics", default="float", choices=["float", "tflite"],
                        help="YAMNet numerics (model config key; the workflow's default is float)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compression", nargs="+", default=["none", "gzip"], choices=["gzip", "lzf", "none"],
                        help="HDF5 compression(s) to compare under; the memory runs use the first (the workflow's "
                             "default is none)")
    parser.add_argument("--threads", type=int, default=None, help="TF intra-op threads (default: TF's choice)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement; the fastest is reported")
    parser.add_argument("--takes", type=int, default=2, help="maas-synth recordings per material x action pair")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--weights", default=str(REPO.parent / "shared/models/yamnet/yamnet.tflite"))
    parser.add_argument("--out", default=str(REPO / "bench/out/extraction.json"))
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- data -------------------------------------------------------------------------------------------------

def make_dataset(folder: Path, clips: int, *, takes: int, seed: int) -> tuple[float, dict]:
    """Seeded maas-synth recordings long enough to give at least ``clips`` clips; a manifest.csv beside them."""
    pairs = len(maas_synth.MATERIALS) * len(maas_synth.ACTIONS)
    per_recording = math.ceil(clips / (pairs * takes))
    settings = {"seed": seed, "takes": takes, "sample_rate": 16000,
                "recording_seconds": round(CLIP_SECONDS + (per_recording - 1) * HOP_SECONDS + 0.01, 3),
                "materials": list(maas_synth.MATERIALS), "actions": list(maas_synth.ACTIONS)}
    started = time.monotonic()
    generate_maas_synth(folder / "audio", settings)
    manifest = ingest(folder / "audio", naming.sources(folder / "audio", {"scheme": "latentaudio"}),
                      clip_seconds=CLIP_SECONDS, hop_seconds=HOP_SECONDS, min_seconds=0.1,
                      on_bad_input="fail").clips
    write_csv(folder / "manifest.csv", manifest)
    return time.monotonic() - started, {**settings, "clips_available": len(manifest)}


def load_clips(folder: Path, count: int):
    clips = read_manifest(folder / "manifest.csv")
    if len(clips) < count:
        raise SystemExit(f"the dataset has {len(clips)} clips, fewer than {count}")
    return clips.iloc[:count].reset_index(drop=True)


def load_model(args):
    return models.load("yamnet", {"kind": "yamnet", "numerics": args.numerics}, args.weights, threads=args.threads)


def batches(clips, root, model, batch_size):
    samples = clip_samples(CLIP_SECONDS, model.sample_rate)
    for first in range(0, len(clips), batch_size):
        rows = clips.iloc[first:first + batch_size]
        yield np.stack([load_clip(root, row, model.sample_rate, samples) for _, row in rows.iterrows()])


# --- throughput -------------------------------------------------------------------------------------------

def best_run(run, repeats: int) -> dict:
    """Call ``run()`` (which returns a dict with ``seconds``) ``repeats`` times; the fastest run, plus all times.

    The fastest is the least disturbed by other processes on a shared machine.
    """
    runs = [run() for _ in range(repeats)]
    return {**min(runs, key=lambda r: r["seconds"]), "all_seconds": [r["seconds"] for r in runs]}


def warm_up(model, count: int, batch_size: int) -> dict:
    """Trace the all-layer function and every single-layer one for each batch shape the runs will see."""
    samples = clip_samples(CLIP_SECONDS, model.sample_rate)
    sizes = sorted({min(batch_size, count), count % batch_size} - {0})
    batches = [np.zeros((size, samples), np.float32) for size in sizes]

    def timed(layers):
        started = time.monotonic()
        for batch in batches:
            model.activations(batch, layers)
        return time.monotonic() - started

    return {"all_layers": timed(model.layers()),
            "single_layers": sum(timed([layer]) for layer in model.layers()), "batch_shapes": sizes}


def run_fused(model, clips, root, scratch: Path, batch_size: int, compression: str) -> dict:
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        outputs = {layer: f"{out}/{layer}.h5" for layer in model.layers()}
        started, cpu = time.monotonic(), time.process_time()
        extract(model, clips, root, outputs, clip_seconds=CLIP_SECONDS, batch_size=batch_size,
                compression=compression)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        written = sum(Path(p).stat().st_size for p in outputs.values())
    return {"seconds": seconds, "cpu_seconds": cpu, "clips_per_s": len(clips) / seconds, "bytes_written": written}


def run_per_layer(model, clips, root, scratch: Path, batch_size: int, compression: str) -> dict:
    """The original approach: one full pass over the clips per layer, computing only that layer."""
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        return _per_layer_passes(model, clips, root, Path(out), batch_size, compression)


def _per_layer_passes(model, clips, root, out: Path, batch_size: int, compression: str) -> dict:
    samples = clip_samples(CLIP_SECONDS, model.sample_rate)
    parts = {"load": 0.0, "compute": 0.0, "write": 0.0}
    per_layer = {}
    started, cpu = time.monotonic(), time.process_time()
    for layer in model.layers():
        layer_started = time.monotonic()
        writer = LayerWriter(out / f"{layer}.h5", len(clips), model.layer_shape(layer, samples),
                             compression=compression, attrs={"layer": layer})
        loading = iter(batches(clips, root, model, batch_size))
        while True:
            tick = time.monotonic()
            batch = next(loading, None)
            parts["load"] += time.monotonic() - tick
            if batch is None:
                break
            tick = time.monotonic()
            values = model.activations(batch, [layer])[layer]
            parts["compute"] += time.monotonic() - tick
            tick = time.monotonic()
            writer.write(values)
            parts["write"] += time.monotonic() - tick
        tick = time.monotonic()
        writer.finish(clips["clip_id"].tolist(), labels_of(clips))
        parts["write"] += time.monotonic() - tick
        per_layer[layer] = time.monotonic() - layer_started
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "clips_per_s": len(clips) / seconds, "parts_seconds": parts,
            "pass_seconds": per_layer}


def compute_only(model, clips, root, batch_size: int, repeats: int) -> dict:
    """Forward passes on clips already in memory (best of ``repeats``): all layers at once, each layer alone."""
    loaded = list(batches(clips, root, model, batch_size))

    def timed(layers):
        times = []
        for _ in range(repeats):
            started = time.monotonic()
            for batch in loaded:
                model.activations(batch, layers)
            times.append(time.monotonic() - started)
        return min(times)

    return {"all_layers_seconds": timed(model.layers()),
            "single_layer_seconds": {layer: timed([layer]) for layer in model.layers()}}


# --- memory -----------------------------------------------------------------------------------------------

def vm_hwm_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def memory_child(args) -> None:
    """In a fresh process: load the model, extract ``args.memory_child`` clips, print peak RSS as JSON."""
    data = Path(args.data)
    clips = load_clips(data, args.memory_child)
    model = load_model(args)
    before = vm_hwm_kib()
    with tempfile.TemporaryDirectory(dir=data) as out:
        started = time.monotonic()
        extract(model, clips, data / "audio", {layer: f"{out}/{layer}.h5" for layer in model.layers()},
                clip_seconds=CLIP_SECONDS, batch_size=args.batch_size, compression=args.compression[0])
        seconds = time.monotonic() - started
    print(json.dumps({"clips": len(clips), "peak_rss_after_load_mib": before / 1024,
                      "peak_rss_mib": vm_hwm_kib() / 1024, "seconds_including_tracing": seconds}))


def measure_memory(args, data: Path, count: int) -> dict:
    command = [sys.executable, __file__, "--memory-child", str(count), "--data", str(data),
               "--weights", args.weights, "--batch-size", str(args.batch_size), "--numerics", args.numerics,
               "--compression", args.compression[0]]
    if args.threads:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if result.returncode:
        raise SystemExit(f"memory run with {count} clips failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- report -----------------------------------------------------------------------------------------------

def machine_info() -> dict:
    import h5py
    import tensorflow as tf

    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    return {"nproc": os.cpu_count(), "sched_affinity": len(os.sched_getaffinity(0)), "cpu_model": cpu,
            "python": platform.python_version(), "tensorflow": tf.__version__, "h5py": h5py.__version__,
            "numpy": np.__version__, "platform": platform.platform()}


def git_state() -> dict:
    def git(*command):
        return subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True).stdout.strip()

    package = hashlib.sha256()
    for path in sorted((REPO / "audioprobe").rglob("*.py")):
        package.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return {"head": git("rev-parse", "HEAD"), "modified": git("status", "--short", "--untracked-files=no").splitlines(),
            "audioprobe_sha256": package.hexdigest()}


def table(result: dict) -> str:
    n, throughput = result["settings"]["clips"], result["throughput"]
    rows = []
    for compression, run in throughput["by_compression"].items():
        fused, split, parts = run["fused"], run["per_layer"], run["per_layer"]["parts_seconds"]
        rows += [
            (f"[{compression}] one pass, all 14 layers (`extract`)", f"{fused['clips_per_s']:.1f} clips/s",
             f"{fused['seconds']:.2f} s, {fused['bytes_written'] / 2**20:.0f} MiB written"),
            (f"[{compression}] 14 passes, one layer each", f"{split['clips_per_s']:.1f} clips/s",
             f"{split['seconds']:.2f} s = load {parts['load']:.2f} + compute {parts['compute']:.2f} "
             f"+ write {parts['write']:.2f}"),
            (f"[{compression}] speed-up of one pass", f"**{run['speedup']:.2f}x**", ""),
        ]
    compute = throughput["compute_only"]
    single = sum(compute["single_layer_seconds"].values())
    tracing = throughput["tracing_seconds"]
    rows += [
        ("compute only, clips in memory: one pass, all layers", f"{n / compute['all_layers_seconds']:.1f} clips/s",
         f"{compute['all_layers_seconds']:.2f} s"),
        ("compute only, clips in memory: 14 single-layer passes", f"{n / single:.1f} clips/s",
         f"{single:.2f} s ({single / compute['all_layers_seconds']:.2f}x)"),
        ("TF tracing, not in the times above: all-layer fn / 14 single-layer fns", "",
         f"{tracing['all_layers']:.1f} s / {tracing['single_layers']:.1f} s "
         f"(batch shapes {tracing['batch_shapes']})"),
    ]
    rows += [(f"peak RSS (VmHWM), extract {m['clips']} clips, fresh process", f"{m['peak_rss_mib']:.0f} MiB",
              f"{m['peak_rss_after_load_mib']:.0f} MiB after model load; {m['seconds_including_tracing']:.1f} s "
              f"incl. tracing") for m in result["memory"]]
    lines = ["| measure | value | detail |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_child is not None:
        return memory_child(args)
    git, load_start = git_state(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as tmp:
        tmp = Path(tmp)
        print("generating maas-synth clips ...", file=sys.stderr)
        generate_seconds, dataset = make_dataset(tmp, max(args.clips, *args.memory_clips), takes=args.takes,
                                                 seed=args.seed)
        root, clips = tmp / "audio", load_clips(tmp, args.clips)
        model = load_model(args)
        print("tracing ...", file=sys.stderr)
        tracing = warm_up(model, len(clips), args.batch_size)
        by_compression = {}
        for compression in args.compression:
            print(f"[{compression}] one pass, all layers ...", file=sys.stderr)
            fused = best_run(lambda: run_fused(model, clips, root, tmp, args.batch_size, compression),
                               args.repeats)
            print(f"[{compression}] 14 passes, one layer each ...", file=sys.stderr)
            split = best_run(lambda: run_per_layer(model, clips, root, tmp, args.batch_size, compression),
                               args.repeats)
            by_compression[compression] = {"fused": fused, "per_layer": split,
                                           "speedup": split["seconds"] / fused["seconds"]}
        print("compute only ...", file=sys.stderr)
        compute = compute_only(model, clips, root, args.batch_size, args.repeats)
        print("peak memory ...", file=sys.stderr)
        memory = [measure_memory(args, tmp, count) for count in args.memory_clips]
    result = {
        "settings": {"clips": len(clips), "memory_clips": args.memory_clips, "batch_size": args.batch_size,
                     "repeats": args.repeats, "compression": args.compression,
                     "memory_compression": args.compression[0], "threads": args.threads, "layers": model.layers(),
                     "model_config": {"kind": "yamnet", "numerics": args.numerics}, "weights": args.weights,
                     "weights_sha256": model.weights_sha256, "dataset": dataset,
                     "generate_seconds": generate_seconds, "git": git,
                     "code_changed_during_run": git_state()["audioprobe_sha256"] != git["audioprobe_sha256"]},
        "machine": {**machine_info(), "loadavg_start": load_start, "loadavg_end": os.getloadavg()},
        "throughput": {"tracing_seconds": tracing, "by_compression": by_compression, "compute_only": compute},
        "memory": memory,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    if result["settings"]["code_changed_during_run"]:
        print("warning: audioprobe changed during the run; the figures may mix two versions", file=sys.stderr)
    if load_start[0] > 0.5:
        print(f"warning: load average {load_start[0]:.1f} before the run: other processes may slow it",
              file=sys.stderr)
    print(f"\nwritten: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
