"""Benchmark of layer-wise YAMNet activation extraction (issue 13: extraction at the hardware's pace).

1. Throughput, all timed in one run on the same clips (batch size and compression shared), repeat by repeat in
   turn so that a change in the machine's load hits every variant alike; each figure is the fastest repeat:

   (a) YAMNet's bare TFLite forward pass: the ``.tflite`` file through ``tf.lite.Interpreter`` (int8 weights,
       the default XNNPACK delegate), one clip per ``invoke`` (the export takes one clip), clips in memory,
       only the model's outputs read;
   (b) compute only: the layer-wise model's forward pass for all 14 layers per batch, clips in memory, no I/O;
   (c) ``audioprobe.activations.extract``: (b) with reading the audio and writing 14 HDF5 files, the three
       overlapped (reader thread, model, writer thread);
   (c0) ``extract(overlap=False)``: the same files, byte for byte, with reading, computing and writing in turn
       (the extractor before the overlap);
   (d) the per-layer approach: 14 full passes, each computing one layer and writing it with ``LayerWriter``
       (instrumented: load / compute / write);
   and (c) storing float16 (``activations.dtype: float16``) for its pace and bytes per clip. Ratios: (c)/(b)
   (goal >= 0.75), (c)/(d) (goal >= 10), (b)/(a), and (c0)/(b) for the before. TF functions are traced
   first; 14 single-layer passes on clips in memory give each layer's prefix cost.
2. Peak memory: extraction of N and 4N clips, each in a fresh subprocess that reports its VmHWM.

    .venv/bin/python bench/extraction.py [--clips 100] [--memory-clips 100 400] [--out bench/out/extraction.json]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.provenance import git_state, write_report  # noqa: E402
from audioprobe import models  # noqa: E402
from audioprobe.activations import clip_samples, extract  # noqa: E402
from audioprobe.datasets import maas_synth, naming  # noqa: E402
from audioprobe.datasets.generate import generate_maas_synth  # noqa: E402
from audioprobe.datasets.manifest import ingest, labels_of, load_clip, read_manifest  # noqa: E402
from audioprobe.io.atomic import write_csv  # noqa: E402
from audioprobe.io.store import LayerWriter  # noqa: E402

CLIP_SECONDS, HOP_SECONDS = 0.975, 0.48
RECORD = {"clip_seconds": CLIP_SECONDS, "model": {"kind": "yamnet"}}  # what extract records for its readers


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

def interleaved(variants: dict, repeats: int) -> dict:
    """Run every variant (a function returning a dict with ``seconds``) once per round, ``repeats`` rounds;
    per variant the fastest run (the least disturbed on a shared machine) plus every time."""
    runs = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            print(f"  {name} ...", file=sys.stderr)
            runs[name].append(run())
    return {name: {**min(done, key=lambda r: r["seconds"]), "all_seconds": [r["seconds"] for r in done]}
            for name, done in runs.items()}


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


def timed_run(work, clips: int) -> dict:
    started, cpu = time.monotonic(), time.process_time()
    extra = work() or {}
    seconds = time.monotonic() - started
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "clips_per_s": clips / seconds, **extra}


def tflite_interpreter(weights: str, threads: int | None):
    """YAMNet's TFLite export as it ships: int8 weights, the default XNNPACK delegate."""
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=weights, num_threads=threads or len(os.sched_getaffinity(0)))
    interpreter.allocate_tensors()
    return interpreter


def run_tflite(interpreter, waves: np.ndarray) -> dict:
    """One ``invoke`` per clip (the export's input is one clip), reading only the model's outputs."""
    source = interpreter.get_input_details()[0]
    outputs = [detail["index"] for detail in interpreter.get_output_details()]
    shape = tuple(source["shape"])

    def work():
        for wave in waves:
            interpreter.set_tensor(source["index"], wave.reshape(shape))
            interpreter.invoke()
            for index in outputs:
                interpreter.get_tensor(index)

    return timed_run(work, len(waves))


def run_compute(model, loaded: list, layers) -> dict:
    """Forward passes on batches already in memory, nothing written."""
    def work():
        for batch in loaded:
            model.activations(batch, layers)

    return timed_run(work, sum(len(batch) for batch in loaded))


def run_fused(model, clips, root, scratch: Path, batch_size: int, compression: str, *, overlap: bool = True,
              dtype: str = "float32") -> dict:
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        outputs = {layer: f"{out}/{layer}.h5" for layer in model.layers()}

        def work():
            extract(model, clips, root, outputs, clip_seconds=CLIP_SECONDS, batch_size=batch_size, dtype=dtype,
                    compression=compression, attrs={"config": RECORD}, overlap=overlap)

        result = timed_run(work, len(clips))
        written = sum(Path(p).stat().st_size for p in outputs.values())
    return {**result, "bytes_written": written, "bytes_per_clip": written / len(clips)}


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


def single_layer_compute(model, loaded: list, repeats: int) -> dict:
    """Each layer alone on clips in memory (best of ``repeats``): the cost of its prefix of the network."""
    return {layer: min(run_compute(model, loaded, [layer])["seconds"] for _ in range(repeats))
            for layer in model.layers()}


def throughput(args, model, clips, root, scratch: Path) -> dict:
    loaded = list(batches(clips, root, model, args.batch_size))
    waves = np.concatenate(loaded)
    interpreter = tflite_interpreter(args.weights, args.threads)
    run_tflite(interpreter, waves[:4])  # the delegate's first invoke prepares its kernels
    fused = args.compression[0]
    variants = {"tflite": lambda: run_tflite(interpreter, waves),
                "compute_only": lambda: run_compute(model, loaded, model.layers()),
                f"{fused}/float16": lambda: run_fused(model, clips, root, scratch, args.batch_size, fused,
                                                      dtype="float16")}
    for compression in args.compression:
        variants |= {
            f"{compression}/overlapped": lambda c=compression: run_fused(model, clips, root, scratch,
                                                                         args.batch_size, c),
            f"{compression}/in_turn": lambda c=compression: run_fused(model, clips, root, scratch,
                                                                      args.batch_size, c, overlap=False),
            f"{compression}/per_layer": lambda c=compression: run_per_layer(model, clips, root, scratch,
                                                                            args.batch_size, c)}
    best = interleaved(variants, args.repeats)
    print("  compute only, one layer at a time ...", file=sys.stderr)
    return {"runs": best, "ratios": ratios(best, args.compression),
            "single_layer_seconds": single_layer_compute(model, loaded, args.repeats)}


def ratios(best: dict, compressions: list[str]) -> dict:
    rate = {name: run["clips_per_s"] for name, run in best.items()}
    out = {"compute_only/tflite": rate["compute_only"] / rate["tflite"]}
    for c in compressions:
        out |= {f"{c}/overlapped/compute_only": rate[f"{c}/overlapped"] / rate["compute_only"],
                f"{c}/in_turn/compute_only": rate[f"{c}/in_turn"] / rate["compute_only"],
                f"{c}/overlapped/per_layer": rate[f"{c}/overlapped"] / rate[f"{c}/per_layer"],
                f"{c}/in_turn/per_layer": rate[f"{c}/in_turn"] / rate[f"{c}/per_layer"],
                f"{c}/overlapped/in_turn": rate[f"{c}/overlapped"] / rate[f"{c}/in_turn"]}
    return out


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
                clip_seconds=CLIP_SECONDS, batch_size=args.batch_size, compression=args.compression[0],
                attrs={"config": RECORD})
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




def table(result: dict) -> str:
    n, speed = result["settings"]["clips"], result["throughput"]
    runs, ratio = speed["runs"], speed["ratios"]

    def rate(name):
        return f"{runs[name]['clips_per_s']:.1f} clips/s"

    rows = [("(a) bare TFLite forward pass (int8, XNNPACK), clips in memory", rate("tflite"),
             f"{runs['tflite']['seconds']:.2f} s"),
            ("(b) compute only: one pass, all 14 layers, clips in memory", rate("compute_only"),
             f"{runs['compute_only']['seconds']:.2f} s; (b)/(a) = {ratio['compute_only/tflite']:.2f}")]
    for c in result["settings"]["compression"]:
        over, turn, split = runs[f"{c}/overlapped"], runs[f"{c}/in_turn"], runs[f"{c}/per_layer"]
        parts = split["parts_seconds"]
        rows += [
            (f"[{c}] (c) one pass with reads and writes, overlapped (`extract`)", rate(f"{c}/overlapped"),
             f"{over['seconds']:.2f} s, {over['bytes_per_clip'] / 2**20:.2f} MiB per clip"),
            (f"[{c}] (c0) the same in turn (before: `extract(overlap=False)`)", rate(f"{c}/in_turn"),
             f"{turn['seconds']:.2f} s"),
            (f"[{c}] (d) 14 passes, one layer each", rate(f"{c}/per_layer"),
             f"{split['seconds']:.2f} s = load {parts['load']:.2f} + compute {parts['compute']:.2f} "
             f"+ write {parts['write']:.2f}"),
            (f"[{c}] (c)/(b), goal >= 0.75", f"**{ratio[f'{c}/overlapped/compute_only']:.2f}**",
             f"before (c0)/(b): {ratio[f'{c}/in_turn/compute_only']:.2f}"),
            (f"[{c}] (c)/(d), goal >= 10", f"**{ratio[f'{c}/overlapped/per_layer']:.1f}x**",
             f"before (c0)/(d): {ratio[f'{c}/in_turn/per_layer']:.1f}x"),
        ]
    first = result["settings"]["compression"][0]
    half, full = runs[f"{first}/float16"], runs[f"{first}/overlapped"]
    single = sum(speed["single_layer_seconds"].values())
    tracing = speed["tracing_seconds"]
    rows += [
        (f"[{first}] (c) storing float16", rate(f"{first}/float16"),
         f"{half['bytes_per_clip'] / 2**20:.2f} MiB per clip ({half['bytes_per_clip'] / full['bytes_per_clip']:.2f}"
         f" of float32's); {half['clips_per_s'] / runs['compute_only']['clips_per_s']:.2f} of (b)"),
        ("compute only, clips in memory: 14 single-layer passes", f"{n / single:.1f} clips/s",
         f"{single:.2f} s ({single / runs['compute_only']['seconds']:.2f}x (b))"),
        ("TF tracing, not in the times above: all-layer fn / 14 single-layer fns", "",
         f"{tracing['all_layers']:.1f} s / {tracing['single_layers']:.1f} s (batch shapes {tracing['batch_shapes']})"),
    ]
    rows += [(f"peak RSS (VmHWM), extract {m['clips']} clips, fresh process", f"{m['peak_rss_mib']:.0f} MiB",
              f"{m['peak_rss_after_load_mib']:.0f} MiB after model load; {m['seconds_including_tracing']:.1f} s "
              f"incl. tracing") for m in result["memory"]]
    machine = result["machine"]
    rows.append(("load average (1, 5, 15 min) at start / end", "",
                 f"{' '.join(f'{v:.1f}' for v in machine['loadavg_start'])} / "
                 f"{' '.join(f'{v:.1f}' for v in machine['loadavg_end'])} on {machine['sched_affinity']} cores"))
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
        print("throughput, every variant once per round ...", file=sys.stderr)
        speed = throughput(args, model, clips, root, tmp)
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
        "throughput": {"tracing_seconds": tracing, **speed},
        "memory": memory,
    }
    write_report(result, args.out, table(result), load_start)


if __name__ == "__main__":
    main()
